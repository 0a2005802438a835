// `rrdsync failback`'s questions to the replica (issue 26): every regular file it holds with its version (a remote
// GNU find over the kept ssh connection, or a local walk), and the promotion marker removed only while it is the
// one that was read. Pure commands and parsers, and the same done on a local destination. Nothing here follows a
// symlink: find -P never does, the local walk uses lstat, and rrdsync's own names at the root are left out.
import { closeSync, constants, copyFileSync, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, unlinkSync, utimesSync } from "node:fs";
import { dirname, join } from "node:path";
import { fsPath, nameFromBytes } from "../names.ts";
import { FENCED_MARKER, KEPT_DIR, MARKER_MAX_BYTES, PROMOTED_MARKER } from "./marker.ts";
import { readNoFollow } from "./replica-check.ts";
import { PARTIAL_DIR, SFTP_TMP_SUFFIX } from "./temp-names.ts";
import type { Version } from "./types.ts";

const shQuote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

/** A file of the replica's listing: not rrdsync's own (the marker, kept copies, a transfer's leftovers). */
export function listedFile(rel: string): boolean {
  if (rel === PROMOTED_MARKER || rel === FENCED_MARKER || rel === KEPT_DIR || rel.startsWith(`${KEPT_DIR}/`)) return false;
  if (rel.split("/").includes(PARTIAL_DIR)) return false;
  const base = rel.slice(rel.lastIndexOf("/") + 1);
  return !base.endsWith(SFTP_TMP_SUFFIX) && !/^\..+\.rrdsync-[0-9a-f]{12}\.tmp$/.test(base);
}

/**
 * The remote listing: every regular file below the destination (find -P: a symlink is listed as nothing and never
 * entered), `path NUL size NUL mtime NUL` with the mtime in seconds and a fraction (GNU find's %T@: nanoseconds
 * where the file system has them). A destination that does not exist holds nothing.
 */
export function listCommand(destDir: string): string {
  const script = [
    "LC_ALL=C; export LC_ALL",
    '[ -d "$1" ] || exit 0',
    'cd -- "$1" || exit 3',
    `exec find . \\( -path ./${PROMOTED_MARKER} -o -path ./${KEPT_DIR} \\) -prune -o -type f -printf "%P\\0%s\\0%T@\\0"`,
  ].join("; ");
  return `sh -c ${shQuote(script)} rrdsync-list ${shQuote(destDir)}`;
}

/** "1700000000.1234567890" (GNU find prints ten digits) → ns. */
export function mtimeNsOf(text: string): bigint {
  const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(text);
  if (!m) throw new Error(`not an mtime: ${JSON.stringify(text)}`);
  const ns = BigInt(m[2] as string) * 1_000_000_000n + BigInt((m[3] ?? "").padEnd(9, "0").slice(0, 9));
  return m[1] === "-" ? -ns : ns;
}

/** Reads listCommand's output: each file through `onFile` (rrdsync's own names left out); an error text if it is not one. */
export function parseListing(out: Buffer, onFile: (rel: string, v: Version) => void): string | null {
  let at = 0;
  const fields: Buffer[] = [];
  while (at < out.length) {
    const z = out.indexOf(0, at);
    if (z < 0) return "the listing of the standby was cut short";
    fields.push(out.subarray(at, z));
    at = z + 1;
    if (fields.length === 3) {
      const rel = nameFromBytes(fields[0] as Buffer);
      const size = Number((fields[1] as Buffer).toString("latin1"));
      let mtimeNs: bigint;
      try {
        mtimeNs = mtimeNsOf((fields[2] as Buffer).toString("latin1"));
      } catch (e) {
        return `the listing of the standby is not GNU find's: ${(e as Error).message}`;
      }
      if (!Number.isFinite(size)) return "the listing of the standby is not GNU find's";
      // find prints names below ".", never ".." or an absolute one; a listing that does is not find's
      if (rel.startsWith("/") || rel.split("/").some((c) => c === ".." || c === "." || c === "")) return `the listing of the standby names a path outside it: ${JSON.stringify(rel)}`;
      if (listedFile(rel)) onFile(rel, { size, mtimeNs });
      fields.length = 0;
    }
  }
  return fields.length === 0 ? null : "the listing of the standby was cut short";
}

/** A local destination's listing: lstat only, never into a symlinked directory. */
export function listLocally(destDir: string, onFile: (rel: string, v: Version) => void): string | null {
  const walk = (rel: string): void => {
    let names: Buffer[];
    try {
      // names as bytes (any name is listed), each looked at with lstat (Bun 1.4 gives no Dirent with buffer names)
      names = readdirSync(fsPath(rel === "" ? destDir : join(destDir, rel)), { encoding: "buffer" });
    } catch (e) {
      if (rel === "" && (e as NodeJS.ErrnoException).code === "ENOENT") return;
      throw e;
    }
    for (const b of names) {
      const name = nameFromBytes(b);
      const r = rel === "" ? name : `${rel}/${name}`;
      const st = lstatSync(fsPath(join(destDir, r)), { bigint: true, throwIfNoEntry: false });
      if (st?.isDirectory()) {
        if (!(rel === "" && name === KEPT_DIR)) walk(r);
      } else if (st?.isFile() && listedFile(r)) {
        onFile(r, { size: Number(st.size), mtimeNs: st.mtimeNs });
      }
    }
  };
  try {
    walk("");
    return null;
  } catch (e) {
    return `cannot list ${destDir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
  }
}

/**
 * Copies replica files of a local destination into `into` (a directory of ours), each keeping its mtime: only a
 * regular file, never through a symlink at its name or a symlinked parent.
 */
export function pullLocally(destDir: string, paths: string[], into: string): Set<string> {
  const pulled = new Set<string>();
  for (const p of paths) {
    try {
      if (!realParents(destDir, p)) continue;
      const from = fsPath(join(destDir, p));
      const fd = openSync(from, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      try {
        const st = fstatSync(fd);
        if (!st.isFile()) continue;
        const to = join(into, p);
        mkdirSync(fsPath(dirname(to)), { recursive: true, mode: 0o700 });
        copyFileSync(`/proc/self/fd/${fd}`, fsPath(to), constants.COPYFILE_EXCL);
        utimesSync(fsPath(to), st.atime, st.mtime);
      } finally {
        closeSync(fd);
      }
      pulled.add(p);
    } catch {
      // gone, or not a plain file: not pulled
    }
  }
  return pulled;
}

function realParents(root: string, rel: string): boolean {
  for (let i = rel.indexOf("/"); i > 0; i = rel.indexOf("/", i + 1)) {
    const st = lstatSync(fsPath(join(root, rel.slice(0, i))), { throwIfNoEntry: false });
    if (!st?.isDirectory()) return false;
  }
  return true;
}

/** Removes the marker at the destination's root only while its text is `text` (compare, then unlink; in sh). */
export function clearMarkerCommand(destDir: string): string {
  const script = [
    'cd -- "$1" || exit 3',
    `m=${PROMOTED_MARKER}`,
    '[ -e "$m" ] || [ -L "$m" ] || exit 0',
    '[ -f "$m" ] && [ ! -L "$m" ] || exit 5',
    `[ "$(head -c ${MARKER_MAX_BYTES} -- "$m")" = "$(cat)" ] || exit 5`,
    'rm -f -- "$m"',
  ].join("; ");
  return `sh -c ${shQuote(script)} rrdsync-unpromote ${shQuote(destDir)}`;
}

/** The same on a local destination: "cleared", "gone" (none there), or "changed" (another marker: left). */
export function clearMarkerLocally(destDir: string, text: string): "cleared" | "gone" | "changed" {
  const path = join(destDir, PROMOTED_MARKER);
  let now: string;
  try {
    now = readNoFollow(path, MARKER_MAX_BYTES).toString("utf8");
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "ENOENT" ? "gone" : "changed";
  }
  if (now.replace(/\n+$/, "") !== text.replace(/\n+$/, "")) return "changed";
  try {
    unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  return "cleared";
}
