// The stat sweep: which tracked files changed or went away without any event (a writer that keeps the file mapped
// and open, as JRobin's NIO backend or a pooled RRD handle does: inotify reports nothing until the close).
import { ptr } from "bun:ffi";
import { lstatSync } from "node:fs";
import { AT_FDCWD, AT_SYMLINK_NOFOLLOW, fastLibc, O_CLOEXEC, O_DIRECTORY, O_PATH, STATX_INO, STATX_MTIME, STATX_SIZE } from "../libc.ts";
import { fsPath, writeCName } from "../names.ts";

export interface TrackedEntry {
  /** relative to the root, '/'-separated */
  rel: string;
  /** the version last recorded: `${size}:${mtimeNs}:${ino}`, the format of engine/plan.ts versionKey */
  key: string;
}

export interface SweepOptions {
  /** run at most this long before yielding to the event loop (default 10 ms) */
  sliceMs?: number;
  signal?: AbortSignal;
}

const NEEDED = STATX_MTIME | STATX_INO | STATX_SIZE;
const TWO32 = 4294967296;
/** above this a u64 high word would make a double inexact: such values take the BigInt path */
const HI_EXACT = 1 << 21;

/**
 * Yields the rel of every entry whose file is gone or whose version key differs (size, mtime in ns, inode: a file
 * replaced by rename has a new inode). Give the entries in path order: files of one directory are stat'ed relative to
 * one O_PATH directory fd (no path walk per file), and nothing is allocated per unchanged file (the key is compared
 * digit by digit against statx's fields in one reused buffer). Symlinks are never followed (a file replaced by a
 * symlink has another inode: it is yielded).
 */
export async function* sweepChanged(root: string, entries: Iterable<TrackedEntry>, opts: SweepOptions = {}): AsyncGenerator<string> {
  const sliceMs = opts.sliceMs ?? 10;
  const c = fastLibc(); // null off glibc: lstat does the same, at about twice the cost
  let slice = performance.now();
  let n = 0;
  if (c === null) {
    for (const e of entries) {
      const st = lstatSync(fsPath(`${root}/${e.rel}`), { bigint: true, throwIfNoEntry: false });
      if (st === undefined || `${st.size}:${st.mtimeNs}:${st.ino}` !== e.key) yield e.rel;
      if ((++n & 255) === 0 && performance.now() - slice > sliceMs) {
        if (opts.signal?.aborted) return;
        await new Promise((r) => setImmediate(r));
        slice = performance.now();
      }
    }
    return;
  }
  const nameBuf = Buffer.alloc(8192);
  const dirBuf = Buffer.alloc(8192);
  const sx = new Uint8Array(256);
  const view = new DataView(sx.buffer);
  const namePtr = ptr(nameBuf);
  let dir: string | null = null;
  let dirFd = -1;
  try {
    for (const e of entries) {
      const rel = e.rel;
      const slash = rel.lastIndexOf("/");
      const sameDir = dir !== null && (slash < 0 ? dir === "" : slash === dir.length && rel.startsWith(dir));
      if (!sameDir) {
        if (dirFd >= 0) c.close(dirFd);
        dir = slash < 0 ? "" : rel.slice(0, slash);
        const w = writeCName(dirBuf, dir === "" ? root : `${root}/${dir}`);
        // A directory that cannot be opened (gone, unreadable): -1 makes every statx below fail, so all its files are yielded.
        dirFd = w >= 0 ? c.openat(AT_FDCWD, dirBuf, O_PATH | O_DIRECTORY | O_CLOEXEC, 0) : -1;
      }
      const w = writeCName(nameBuf, rel);
      // the name's first byte: after the last '/' in the encoded bytes (not the string index: names may be non-ASCII)
      let nameOff = w;
      while (nameOff > 0 && nameBuf[nameOff - 1] !== 0x2f) nameOff--;
      let same = false;
      if (w >= 0 && c.statx(dirFd, namePtr + nameOff, AT_SYMLINK_NOFOLLOW, NEEDED, sx) === 0) {
        same = (view.getUint32(0, true) & NEEDED) === NEEDED ? keyMatches(e.key, view) : slowKey(`${root}/${rel}`) === e.key;
      }
      if (!same) yield rel;
      if ((++n & 255) === 0 && performance.now() - slice > sliceMs) {
        if (opts.signal?.aborted) return;
        await new Promise((r) => setImmediate(r));
        slice = performance.now();
      }
    }
  } finally {
    if (dirFd >= 0) c.close(dirFd);
  }
}

function slowKey(abs: string): string | null {
  const st = lstatSync(fsPath(abs), { bigint: true, throwIfNoEntry: false });
  return st === undefined ? null : `${st.size}:${st.mtimeNs}:${st.ino}`;
}

/** struct statx: stx_ino at 32, stx_size at 40, stx_mtime { i64 tv_sec; u32 tv_nsec } at 112. */
function keyMatches(key: string, v: DataView): boolean {
  const inoHi = v.getUint32(36, true);
  const sizeHi = v.getUint32(44, true);
  const secHi = v.getInt32(116, true);
  if (inoHi >= HI_EXACT || sizeHi >= HI_EXACT || secHi < 0 || secHi >= HI_EXACT) return key === bigKey(v);
  const sec = secHi * TWO32 + v.getUint32(112, true);
  const nsec = v.getUint32(120, true);
  let p = matchDigits(key, 0, sizeHi * TWO32 + v.getUint32(40, true), 1);
  if (p < 0 || key.charCodeAt(p) !== 58) return false;
  // mtimeNs = sec·10⁹ + nsec: the digits of sec, then nsec padded to 9 (a sec of 0 has no leading digits)
  if (sec > 0) {
    p = matchDigits(key, p + 1, sec, 1);
    if (p < 0) return false;
    p = matchDigits(key, p, nsec, 9);
  } else p = matchDigits(key, p + 1, nsec, 1);
  if (p < 0 || key.charCodeAt(p) !== 58) return false;
  p = matchDigits(key, p + 1, inoHi * TWO32 + v.getUint32(32, true), 1);
  return p === key.length;
}

/** Compares the decimal digits of `n` (at least `width` of them, zero-padded) at `pos`; the position after, or -1. */
function matchDigits(key: string, pos: number, n: number, width: number): number {
  let len = 1;
  for (let x = n; x >= 10; x = Math.floor(x / 10)) len++;
  if (len < width) len = width;
  if (pos + len > key.length) return -1;
  let x = n;
  for (let i = pos + len - 1; i >= pos; i--) {
    if (key.charCodeAt(i) !== 48 + (x % 10)) return -1;
    x = Math.floor(x / 10);
  }
  return pos + len;
}

/** The exact key with BigInt, for the values a double cannot hold (huge inode numbers, mtimes before 1970). */
function bigKey(v: DataView): string {
  const mtimeNs = v.getBigInt64(112, true) * 1_000_000_000n + BigInt(v.getUint32(120, true));
  return `${v.getBigUint64(40, true)}:${mtimeNs}:${v.getBigUint64(32, true)}`;
}
