// What the replica holds, asked before a batch writes (issue 23): the rsync transport's one remote command (GNU
// stat over the kept ssh connection, the paths NUL-separated on stdin, the promotion marker read in the same
// round trip, and the fence marker with it), its parser, and the same questions asked of a local destination
// (lstat). Nothing here writes.
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync } from "node:fs";
import { join } from "node:path";
import { fsPath, listEntry, nameFromBytes, replicable } from "../names.ts";
import { FENCED_MARKER, MARKER_MAX_BYTES, PROMOTED_MARKER } from "./marker.ts";
import type { MarkerFound, ReplicaFile, ReplicaState } from "./types.ts";

/** Ends the stat records, then the promotion marker follows; "//" is in no name we ask for. */
const MARKER_SEP = "//rrdsync-marker//";
/** Between the promotion marker and the fence marker (NUL-framed: a marker rrdsync wrote holds no NUL). */
const FENCE_SEP = "//rrdsync-fence//";
/** name, raw mode, size, mtime: one record of the remote stat */
const FIELDS = 4;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

const shQuote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

/**
 * The remote command (for the standby's login shell, as rsync's own is): `stat` of every path on stdin, then the
 * marker. Nothing is looked at before stdin has ended, so the command may be started ahead of its batch (a spare,
 * rsync.ts) and still answer for the moment its paths arrive. The C locale keeps stat's errors in the words
 * parseCheckOutput knows; `%f` is the raw mode (no translated type names), `%.9Y` the mtime in nanoseconds
 * (coreutils 8.7, 2010, and later; an older one's whole seconds are compared as whole seconds). A destination
 * that does not exist yet holds nothing: every path is absent.
 */
export function checkCommand(destDir: string): string {
  const stat = '[ -d "$0" ] || exit 0; cd -- "$0" || exit 255; exec stat --printf "%n\\0%f\\0%s\\0%.9Y\\0" -- "$@"';
  // A marker's section: nothing (none), \001 and why it cannot be read, or \002 and its text (an empty file counts).
  const mark = `mark() { if [ -f "$1" ] && [ ! -L "$1" ]; then printf "\\002"; head -c ${MARKER_MAX_BYTES} -- "$1" || printf "\\001unreadable"; elif [ -L "$1" ] || [ -e "$1" ]; then printf "\\001not a regular file"; fi; }`;
  const script = [
    "LC_ALL=C; export LC_ALL",
    `xargs -0 -r sh -c ${shQuote(stat)} "$1"; rc=$?`,
    mark,
    `printf "${MARKER_SEP}\\0"`,
    `if [ -d "$1" ]; then cd -- "$1" || exit 3; mark ${PROMOTED_MARKER}; printf "\\0${FENCE_SEP}\\0"; mark ${FENCED_MARKER}; else printf "\\0${FENCE_SEP}\\0"; fi`,
    "exit $rc",
  ].join("; ");
  return `sh -c ${shQuote(script)} rrdsync-check ${shQuote(destDir)}`;
}

/** Every path asked for, and each of their parent directories (a file behind a symlinked parent is not in the tree). */
export function withParents(paths: string[]): string[] {
  const dirs = new Set<string>();
  for (const p of paths) {
    for (let i = p.indexOf("/"); i > 0; i = p.indexOf("/", i + 1)) dirs.add(p.slice(0, i));
  }
  return [...dirs, ...paths];
}

/** The stdin of checkCommand: each path NUL-terminated, as bytes where a name is not UTF-8; with its parents, or not. */
export function checkInput(paths: string[], parents = true): Array<string | Buffer> {
  return (parents ? withParents(paths) : paths).map(listEntry);
}

function fileFromMode(mode: number, size: number, mtimeNs: bigint): ReplicaFile {
  const t = mode & S_IFMT;
  if (t === S_IFREG) return { kind: "file", size, mtimeNs };
  return { kind: "other", what: t === S_IFDIR ? "directory" : t === S_IFLNK ? "symlink" : "special file" };
}

/** "1700000000.123456789" (or "1700000000", or "-5.000000001") → ns. */
function mtimeNs(text: string): bigint {
  const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(text);
  if (!m) throw new Error(`not an mtime: ${JSON.stringify(text)}`);
  const ns = BigInt(m[2] as string) * 1_000_000_000n + BigInt((m[3] ?? "").padEnd(9, "0").slice(0, 9));
  return m[1] === "-" ? -ns : ns;
}

/**
 * Reads checkCommand's output (stdout, as bytes) for the paths asked: a file is absent unless stat named it, and
 * (when the parents were asked too) behind a parent that is not a real directory it is absent too. `stderr`: the lines stat wrote; any but "no such
 * file" and "not a directory" means the answer is not to be trusted (permissions, I/O, no GNU stat).
 */
export function parseCheckOutput(out: Buffer, paths: string[], code: number, stderr: string[], parents = true): ReplicaState {
  const files = new Map<string, ReplicaFile>();
  const tokens: Buffer[] = [];
  let at = 0;
  let markerFrom = -1;
  while (at < out.length) {
    const z = out.indexOf(0, at);
    if (z < 0) break;
    const tok = out.subarray(at, z);
    at = z + 1;
    if (tokens.length % FIELDS === 0) {
      if (tok.toString("latin1") === MARKER_SEP) {
        markerFrom = at;
        break;
      }
    }
    tokens.push(tok);
  }
  const bad = stderr.filter((l) => l.trim() !== "" && !/No such file or directory|Not a directory/.test(l));
  if (markerFrom < 0 || bad.length > 0 || (code !== 0 && code !== 123) || tokens.length % FIELDS !== 0) {
    const why = bad[0] ?? stderr.find((l) => l.trim() !== "") ?? `exit ${code}`;
    return { files, marker: null, fence: null, error: `the replica check on the standby failed: ${why.trim()}${/unrecognized option|invalid option|--printf/.test(why) ? " (it needs GNU coreutils' stat there; or use the sftp transport)" : ""}` };
  }
  const seen = new Map<string, ReplicaFile>();
  try {
    for (let i = 0; i < tokens.length; i += FIELDS) {
      const name = nameFromBytes(tokens[i] as Buffer);
      const mode = Number.parseInt((tokens[i + 1] as Buffer).toString("latin1"), 16);
      const size = Number((tokens[i + 2] as Buffer).toString("latin1"));
      seen.set(name, fileFromMode(mode, size, mtimeNs((tokens[i + 3] as Buffer).toString("latin1"))));
    }
  } catch (e) {
    return { files, marker: null, fence: null, error: `the replica check on the standby failed: ${(e as Error).message} (it needs GNU coreutils' stat there; or use the sftp transport)` };
  }
  for (const p of paths) files.set(p, parents && behindNonDir(p, seen) ? { kind: "absent" } : (seen.get(p) ?? { kind: "absent" }));
  const rest = out.subarray(markerFrom);
  const sep = rest.lastIndexOf(`\0${FENCE_SEP}\0`, undefined, "latin1");
  if (sep < 0) return { files: new Map(), marker: null, fence: null, error: "the replica check on the standby failed: its answer was cut short" };
  return { files, marker: markerSection(rest.subarray(0, sep)), fence: markerSection(rest.subarray(sep + FENCE_SEP.length + 2)) };
}

/** A marker's section of checkCommand's output (see `mark` there). */
function markerSection(b: Buffer): MarkerFound | null {
  if (b.length === 0) return null;
  if (b[0] === 1) return { unreadable: b.subarray(1).toString("utf8") };
  return { text: b.subarray(b[0] === 2 ? 1 : 0).toString("utf8") };
}

/** Is a parent of `p` (below the destination) missing, or something other than a real directory? */
function behindNonDir(p: string, seen: Map<string, ReplicaFile>): boolean {
  for (let i = p.indexOf("/"); i > 0; i = p.indexOf("/", i + 1)) {
    const d = seen.get(p.slice(0, i));
    if (d === undefined || d.kind !== "other" || d.what !== "directory") return true;
  }
  return false;
}

/** The first `bytes` of each file, hex-encoded by od (binary-safe through any shell); paths as arguments. */
export function headsCommand(destDir: string, paths: string[], bytes: number): string {
  const script = [
    'cd -- "$1" || exit 3',
    "shift",
    `for p do printf "%s\\0" "$p"; if [ -f "$p" ] && [ ! -L "$p" ]; then head -c ${bytes} -- "$p" | od -An -v -tx1 | tr -d " \\n"; fi; printf "\\0"; done`,
  ].join("; ");
  return `sh -c ${shQuote(script)} rrdsync-heads ${shQuote(destDir)} ${paths.filter(replicable).map(shQuote).join(" ")}`;
}

export function parseHeads(out: Buffer): Map<string, Buffer> {
  const heads = new Map<string, Buffer>();
  const parts = out.toString("latin1").split("\0");
  for (let i = 0; i + 1 < parts.length; i += 2) {
    const hex = parts[i + 1] as string;
    if (hex !== "") heads.set(nameFromBytes(Buffer.from(parts[i] as string, "latin1")), Buffer.from(hex, "hex"));
  }
  return heads;
}

/** A local destination's answer: lstat, never through a symlinked parent. */
export function localReplicaState(destDir: string, paths: string[]): ReplicaState {
  const files = new Map<string, ReplicaFile>();
  const dirs = new Map<string, boolean>();
  const realDir = (rel: string): boolean => {
    let ok = dirs.get(rel);
    if (ok === undefined) {
      const slash = rel.lastIndexOf("/");
      try {
        ok = (slash < 0 || realDir(rel.slice(0, slash))) && lstatSync(fsPath(join(destDir, rel))).isDirectory();
      } catch {
        ok = false;
      }
      dirs.set(rel, ok);
    }
    return ok;
  };
  for (const p of paths) {
    const slash = p.lastIndexOf("/");
    if (slash > 0 && !realDir(p.slice(0, slash))) {
      files.set(p, { kind: "absent" });
      continue;
    }
    const st = lstatSync(fsPath(join(destDir, p)), { bigint: true, throwIfNoEntry: false });
    files.set(p, st === undefined ? { kind: "absent" } : fileFromMode(Number(st.mode), Number(st.size), st.mtimeNs));
  }
  return { files, marker: localMarker(destDir, PROMOTED_MARKER), fence: localMarker(destDir, FENCED_MARKER) };
}

function localMarker(destDir: string, name: string): MarkerFound | null {
  const path = join(destDir, name);
  const st = lstatSync(path, { throwIfNoEntry: false });
  if (st === undefined) return null;
  if (!st.isFile()) return { unreadable: "not a regular file" };
  try {
    return { text: readNoFollow(path, MARKER_MAX_BYTES).toString("utf8") };
  } catch (e) {
    return { unreadable: (e as NodeJS.ErrnoException).code ?? (e as Error).message };
  }
}

/** Up to `max` bytes of a regular file, never through a symlink at its name. */
export function readNoFollow(path: string | Buffer, max: number): Buffer {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    if (!fstatSync(fd).isFile()) throw Object.assign(new Error("not a regular file"), { code: "EINVAL" });
    const buf = Buffer.allocUnsafe(max);
    let n = 0;
    for (let r = 1; r > 0 && n < max; n += r) r = readSync(fd, buf, n, max - n, n);
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/** A local destination's heads: each a regular file read without following a symlink at its name. */
export function localHeads(destDir: string, paths: string[], bytes: number): Map<string, Buffer> {
  const heads = new Map<string, Buffer>();
  for (const p of paths) {
    try {
      heads.set(p, readNoFollow(fsPath(join(destDir, p)), bytes));
    } catch {
      // gone, or not a file: shown without its header
    }
  }
  return heads;
}
