// The full pass's walk, compared with the state as it goes: each directory is listed (getdents64) and its monitored
// files stat'ed relative to its fd (statx, AT_SYMLINK_NOFOLLOW), and a file is compared with its tracked version as
// numbers in one reused buffer: an unchanged file costs two syscalls and no object, which is what a pass over a
// million unchanged files is made of. Only new or changed files, and per directory the tracked names it did not
// find, come out. Directories are opened relative to their parent's fd with O_NOFOLLOW: no symlink is ever
// followed, at any depth. Without the libc binding (not glibc) the same items come from walkTree.
import { ptr } from "bun:ffi";
import {
  AT_FDCWD, AT_SYMLINK_NOFOLLOW, DIRENT, DT_DIR, DT_LNK, DT_REG, DT_UNKNOWN, errnoName, fastLibc, type Libc, O_CLOEXEC, O_DIRECTORY, O_NOFOLLOW,
  O_RDONLY, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, STATX_INO, STATX_MODE, STATX_MTIME, STATX_SIZE, STATX_TYPE, SX,
} from "../libc.ts";
import { cPath, nameFromBytes } from "../names.ts";
import { visitedBefore, walkTree } from "./walk.ts";

/** A tracked version as the state gives it: size, mtime seconds and nanoseconds, inode (see store/state.ts Tracked). */
export type TrackedVersion = [size: number, sec: number, nsec: number, ino: number];

export type ScanItem =
  /** a monitored file that is new or not the tracked version (or could not be compared exactly) */
  | { kind: "file"; rel: string; abs: string }
  /** a directory done: how many of its monitored files were unchanged, and its tracked names not found in it */
  | { kind: "dir"; rel: string; unchanged: number; unseen: string[] }
  /** something to report that makes the pass a failure (an unreadable directory, a file that cannot be stat'ed) */
  | { kind: "problem"; rel: string; reason: string }
  | { kind: "symlink"; rel: string };

export interface ScanOptions {
  extensions: string[];
  /** absolute paths (files or directories) that are rrdsync's own: never replicated */
  exclude: string[];
  /** the tracked versions of a directory's files, by name */
  trackedIn: (dir: string) => Map<string, TrackedVersion>;
  /** those of all of a directory's subdirectories in one go, by subdirectory (null above `limit` files) */
  trackedChildren?: (dir: string, limit: number) => Map<string, Map<string, TrackedVersion>> | null;
  /** stop after this directory (walk order) */
  until?: string;
  /** only these subtrees (relative directories), each from its top: a worker's share of a split walk */
  subtrees?: string[];
  /**
   * the walk reached a directory with these subdirectories (sorted): returns those it goes on with itself (a
   * split walk hands the others to a worker); called until it returns a shorter list
   */
  split?: (rel: string, subdirs: string[]) => string[];
  /**
   * every directory's item is wanted (deletes mark each one seen); else a directory whose tracked files were all
   * found only adds to a count, given every few hundred directories (rel "") — a million files make 200,000 items less
   */
  allDirs?: boolean;
}

/** A directory's subdirectories' tracked files are read in one query up to this many (else one query each). */
const PREFETCH_MAX = 20_000;
const NEEDED = STATX_TYPE | STATX_MODE | STATX_SIZE | STATX_MTIME | STATX_INO;
const TWO32 = 4294967296;
/** a high word from which a u64 is no longer exact as a double */
const HI_EXACT = 1 << 21;

/** Walks the tree under root (or the given subtrees), depth first with sorted directory names (walkTree's order). */
export function* scanTree(root: string, opts: ScanOptions): Generator<ScanItem> {
  const c = fastLibc();
  if (c === null) {
    yield* scanPortable(root, opts);
    return;
  }
  const s = new Scanner(c, opts);
  for (const rel of opts.subtrees ?? [""]) {
    // The root itself may be a symlink (/var/opennms/rrd → /data/rrd) and is followed, as everywhere; nothing below it is.
    const fd = c.openat(AT_FDCWD, cPath(rel === "" ? root : `${root}/${rel}`), O_RDONLY | O_DIRECTORY | O_CLOEXEC | (rel === "" ? 0 : O_NOFOLLOW), 0);
    if (fd < 0) {
      const e = errnoName(c);
      if (rel === "" || (e !== "ENOENT" && e !== "ENOTDIR")) yield { kind: "problem", rel: rel || ".", reason: `cannot read directory: ${e}` };
      continue;
    }
    yield* s.dir(fd, rel, rel === "" ? root : `${root}/${rel}`);
  }
  if (s.pending) yield s.count();
}

class Scanner {
  private readonly buf = Buffer.alloc(64 * 1024);
  private readonly bufPtr = ptr(this.buf);
  private readonly sx = new Uint8Array(256);
  private readonly view = new DataView(this.sx.buffer);
  private readonly exts: Buffer[];
  private readonly excludeByDir = new Map<string, Set<string>>();
  private stopped = false;
  private splitting: boolean;
  /** unchanged files of directories not reported one by one (allDirs false), and how many directories */
  private unchanged = 0;
  private quiet = 0;

  get pending(): boolean {
    return this.quiet > 0;
  }

  /** The unchanged files counted since the last count, as one item. */
  count(): ScanItem {
    const item: ScanItem = { kind: "dir", rel: "", unchanged: this.unchanged, unseen: [] };
    this.unchanged = 0;
    this.quiet = 0;
    return item;
  }

  constructor(private readonly c: Libc, private readonly opts: ScanOptions) {
    this.exts = opts.extensions.map((e) => Buffer.from(e));
    this.splitting = opts.split !== undefined;
    for (const p of opts.exclude) {
      const i = p.lastIndexOf("/");
      const names = this.excludeByDir.get(p.slice(0, i)) ?? new Set<string>();
      names.add(p.slice(i + 1));
      this.excludeByDir.set(p.slice(0, i), names);
    }
  }

  /** One directory (its fd is closed here), then its subdirectories, recursively. `known`: its tracked files, if read already. */
  *dir(fd: number, rel: string, abs: string, known?: Map<string, TrackedVersion>): Generator<ScanItem> {
    const { c, buf, bufPtr, sx, view, opts } = this;
    try {
      const tracked = known ?? opts.trackedIn(rel);
      const excluded = this.excludeByDir.get(abs);
      let subdirs: string[] = [];
      const changed: string[] = [];
      const later: ScanItem[] = [];
      let unchanged = 0;
      for (;;) {
        const got = Number(c.getdents64(fd, buf, buf.length));
        if (got < 0) later.push({ kind: "problem", rel: rel || ".", reason: `cannot read directory: ${errnoName(c)}` });
        if (got <= 0) break;
        for (let off = 0; off < got; off += buf.readUInt16LE(off + DIRENT.reclen)) {
          const type = buf[off + DIRENT.type] as number;
          const at = off + DIRENT.name;
          const end = buf.indexOf(0, at);
          if (type === DT_DIR) {
            if (buf[at] === 0x2e && (end === at + 1 || (buf[at + 1] === 0x2e && end === at + 2))) continue; // . and ..
            const name = nameFromBytes(buf, at, end);
            if (!excluded?.has(name)) subdirs.push(name);
            continue;
          }
          if (type === DT_LNK) {
            later.push({ kind: "symlink", rel: join(rel, nameFromBytes(buf, at, end)) });
            continue;
          }
          if (type !== DT_REG && type !== DT_UNKNOWN) continue; // devices, fifos, sockets: never replicated
          const monitored = this.monitored(at, end);
          if (!monitored && type === DT_REG) continue;
          const name = nameFromBytes(buf, at, end);
          if (excluded?.has(name)) continue;
          if (c.statx(fd, bufPtr + at, AT_SYMLINK_NOFOLLOW, NEEDED, sx) !== 0) {
            const e = errnoName(c);
            if (e !== "ENOENT") later.push({ kind: "problem", rel: join(rel, name), reason: `cannot stat: ${e}` });
            continue;
          }
          const fmt = view.getUint16(SX.mode, true) & S_IFMT;
          if (fmt === S_IFDIR) {
            if (!excluded?.has(name)) subdirs.push(name);
            continue;
          }
          if (fmt === S_IFLNK) {
            later.push({ kind: "symlink", rel: join(rel, name) });
            continue;
          }
          if (fmt !== S_IFREG || !monitored) continue;
          const known = tracked.get(name);
          if (known !== undefined) {
            tracked.delete(name);
            if ((view.getUint32(SX.mask, true) & NEEDED) === NEEDED && sameAsTracked(known, view)) {
              unchanged++;
              continue;
            }
          }
          changed.push(name);
        }
      }
      yield* later;
      changed.sort(byName); // stable, predictable batches
      for (const name of changed) yield { kind: "file", rel: join(rel, name), abs: `${abs}/${name}` };
      if (opts.allDirs !== false || tracked.size > 0) yield { kind: "dir", rel, unchanged, unseen: [...tracked.keys()] };
      else {
        this.unchanged += unchanged;
        if (++this.quiet >= 256) yield this.count();
      }
      subdirs.sort(byName);
      if (this.splitting && opts.split) {
        const mine = opts.split(rel, subdirs);
        if (mine.length < subdirs.length) this.splitting = false; // one split point: below it, each goes on alone
        subdirs = mine;
      }
      // A directory of many subdirectories (a node's interfaces): their tracked files in one query, not one each.
      const prefetched = subdirs.length >= 4 ? (opts.trackedChildren?.(rel, PREFETCH_MAX) ?? null) : null;
      for (const name of subdirs) {
        if (this.stopped) return;
        const childRel = join(rel, name);
        if (opts.until !== undefined && !visitedBefore(childRel, opts.until)) {
          this.stopped = true; // every later directory is past it too
          return;
        }
        const child = c.openat(fd, cPath(name), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
        if (child < 0) {
          const e = errnoName(c);
          if (e === "ELOOP") yield { kind: "symlink", rel: childRel }; // replaced by a symlink since the listing: not followed
          else if (e !== "ENOENT" && e !== "ENOTDIR") yield { kind: "problem", rel: childRel, reason: `cannot read directory: ${e}` };
          continue;
        }
        yield* this.dir(child, childRel, `${abs}/${name}`, prefetched === null ? undefined : (prefetched.get(childRel) ?? new Map()));
      }
    } finally {
      c.close(fd);
    }
  }

  /** Does the name (bytes at..end of the listing buffer) end with a monitored extension? */
  private monitored(at: number, end: number): boolean {
    if (this.exts.length === 0) return true;
    const { buf } = this;
    for (const e of this.exts) {
      const n = e.length;
      if (end - at < n) continue;
      let i = 0;
      while (i < n && buf[end - n + i] === e[i]) i++;
      if (i === n) return true;
    }
    return false;
  }
}

const join = (rel: string, name: string) => (rel === "" ? name : `${rel}/${name}`);
const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Is the file statx described the tracked version? Compared as exact numbers; a value a double cannot hold
 * exactly (an inode or size beyond 2^53, a time before 1970) is "not the same" here: the engine then compares
 * it exactly (and finds it unchanged, if it is).
 */
export function sameAsTracked(t: TrackedVersion, v: DataView): boolean {
  const inoHi = v.getUint32(SX.ino + 4, true);
  const sizeHi = v.getUint32(SX.size + 4, true);
  const secHi = v.getInt32(SX.mtimeSec + 4, true);
  if (inoHi >= HI_EXACT || sizeHi >= HI_EXACT || secHi < 0 || secHi >= HI_EXACT) return false;
  return (
    t[0] === sizeHi * TWO32 + v.getUint32(SX.size, true) &&
    t[2] === v.getUint32(SX.mtimeNsec, true) &&
    t[1] === secHi * TWO32 + v.getUint32(SX.mtimeSec, true) &&
    t[3] === inoHi * TWO32 + v.getUint32(SX.ino, true) &&
    t[3] <= Number.MAX_SAFE_INTEGER
  );
}

/** The same items from node:fs (no libc binding); subtrees and splits are the fast walk's, not needed here. */
function* scanPortable(root: string, opts: ScanOptions): Generator<ScanItem> {
  let dir: string | null = null;
  let tracked = new Map<string, TrackedVersion>();
  let unchanged = 0;
  const done = (): ScanItem => ({ kind: "dir", rel: dir as string, unchanged, unseen: [...tracked.keys()] });
  const later: ScanItem[] = [];
  const walk = walkTree(root, {
    extensions: opts.extensions, exclude: new Set(opts.exclude), until: opts.until,
    onProblem: (rel, reason) => later.push({ kind: "problem", rel, reason }),
    onSymlink: (rel) => later.push({ kind: "symlink", rel }),
  });
  for (const f of walk) {
    yield* later.splice(0);
    const i = f.rel.lastIndexOf("/");
    const d = i < 0 ? "" : f.rel.slice(0, i);
    if (d !== dir) {
      if (dir !== null) yield done();
      dir = d;
      tracked = opts.trackedIn(d);
      unchanged = 0;
    }
    const name = f.rel.slice(i + 1);
    const t = tracked.get(name);
    tracked.delete(name);
    const sec = f.stat.mtimeNs / 1_000_000_000n;
    const same = t !== undefined && t[0] === Number(f.stat.size) && t[1] === Number(sec) && t[2] === Number(f.stat.mtimeNs - sec * 1_000_000_000n) && t[3] === Number(f.stat.ino) && t[3] <= Number.MAX_SAFE_INTEGER;
    if (same) unchanged++;
    else yield { kind: "file", rel: f.rel, abs: f.abs };
  }
  yield* later.splice(0);
  if (dir !== null) yield done();
}
