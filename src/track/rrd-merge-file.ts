// The RRD merge on files: both inputs read under rrdtool's read lock, the result written to a new file (a random
// temporary name beside it, then renamed), or in place into a live RRD under rrdtool's write lock (mergeInto, for
// failback: OpenNMS may be writing that file).
//
// Why in place and not temp + rename for a live file: librrd opens the file by name, then locks it. A writer that
// opened the old inode just before our rename and locks it just after we let go updates a file nobody will read
// again, and rrdtool reports success: the sample is lost silently. Written in place, the same inode holds the
// merged bytes, and that writer updates them (test/unit/rrd-merge-file.test.ts pauses a real `rrdtool update`
// between its open and its lock to show it). In place also keeps the file's owner, mode and hard links.
//
// A kill -9 can cut a write short between pages. So mergeInto keeps the local file's ring position (every slot
// stands for the same time before and after), writes the rows first and the header last, and writes only what
// changed: an interrupted merge leaves each slot either as it was or merged, under the old header or the new one,
// and running the same merge again gives the same file. A header over 4 KiB (7 data sources and up with OpenNMS's 4
// archives) spans two pages; a kill landing inside that one write is the only case this does not cover.
import { closeSync, constants, fchmodSync, fchownSync, fstatSync, lstatSync, openSync, readSync, renameSync, type Stats, unlinkSync, writeSync } from "node:fs";
import { ExitCode, UserError } from "../errors.ts";
import { createNew, tempBeside } from "../safe-files.ts";
import type { RrdHeader } from "./rrd.ts";
import { lockWait, LockTimeout } from "./rrd-lock.ts";
import { aligned, type MergeStats, mergeRrd } from "./rrd-merge.ts";

export interface FileMerge {
  stats: MergeStats;
  /** the merged file's header */
  header: RrdHeader;
  /** the inputs as stats' a and b */
  names: [string, string];
  /** how the result was written */
  wrote: "new file" | "in place" | "nothing (dry run)";
  /** bytes that changed (in place) or were written (new file) */
  bytes: number;
}

/**
 * Buffers for a loop of merges, reused from one file to the next (one set per caller running merges at a time):
 * without them each pair of 53 KB files left 160 KB of garbage, and collecting it took as long as the merge.
 */
export class MergeBuffers {
  private readonly bufs: Buffer[] = [Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(0)];

  /** Buffer `i` (0: one input, 1: the other, 2: the output), at least `size` bytes, 8-byte aligned. */
  get(i: 0 | 1 | 2, size: number): Buffer {
    if ((this.bufs[i] as Buffer).length < size) this.bufs[i] = Buffer.allocUnsafeSlow(size);
    return (this.bufs[i] as Buffer).subarray(0, size);
  }
}

/** How long a merge waits for rrdtool's lock before giving up (an update holds it for milliseconds). */
export const LOCK_WAIT_MS = 10_000;
/** Larger files are not RRDs we should read whole into memory (OpenNMS's are kilobytes to a few megabytes). */
const MAX_RRD = 1 << 30;

const errText = (e: unknown) => {
  const code = (e as NodeJS.ErrnoException).code;
  return code === "ELOOP" ? "it is a symlink (rrdsync does not follow one to an RRD it reads or writes: give the file's own path)" : code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : code === "ENOSPC" ? "no space left on the device" : code === "EISDIR" ? "it is a directory" : (e as Error).message;
};

function lockError(e: unknown, path: string, kind: string): never {
  if (e instanceof LockTimeout) {
    throw new UserError(`${path}: rrdtool's lock is held (${e.message})`, ExitCode.Pending, `a process is ${kind === "read" ? "writing" : "using"} the file; try again (an rrdtool update holds the lock for milliseconds)`);
  }
  throw new UserError(`${path}: cannot take rrdtool's lock: ${(e as Error).message}`, ExitCode.Pending, "rrdsync needs Linux ≥ 3.15 (open file description locks)");
}

/** A regular file's whole content (8-byte aligned; into `into` when given), read while `fd` is locked. */
function readWhole(fd: number, st: Stats, path: string, into?: (size: number) => Buffer): Buffer {
  if (!st.isFile()) throw new UserError(`${path}: not a regular file`, ExitCode.Usage);
  if (st.size > MAX_RRD) throw new UserError(`${path}: ${st.size} bytes is too large for an RRD`, ExitCode.Usage);
  const buf = into === undefined ? Buffer.allocUnsafeSlow(st.size) : into(st.size);
  let got = 0;
  while (got < buf.length) {
    const n = readSync(fd, buf, got, buf.length - got, got);
    if (n === 0) break;
    got += n;
  }
  return got === buf.length ? buf : buf.subarray(0, got);
}

/** An input RRD's bytes, read under rrdtool's read lock (an update in progress finishes first; others wait briefly). */
export async function readRrdLocked(path: string, waitMs = LOCK_WAIT_MS, into?: (size: number) => Buffer): Promise<{ bytes: Buffer; st: Stats }> {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO planted under the name must not hang the open (it is refused below as not a regular file).
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    throw new UserError(`${path}: cannot read: ${errText(e)}`, ExitCode.Usage);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new UserError(`${path}: not a regular file`, ExitCode.Usage);
    await lockWait(fd, "read", waitMs).catch((e) => lockError(e, path, "read"));
    return { bytes: readWhole(fd, st, path, into), st };
  } finally {
    closeSync(fd); // drops the lock
  }
}

const refused = (reason: string) => new UserError(reason, ExitCode.Usage, "rrdsync merge takes two copies of one RRD made by rrdtool on Linux (same step, data sources and archives), e.g. the primary's file and the standby's");

/**
 * Merges `other` (a pulled copy's path, or its bytes) into the live RRD `local`, in place, under rrdtool's write
 * lock. `prefer`: whose value to keep where both hold one (default: the side with the later last update).
 * names: how local and other are named in messages. The result's stats name local as a and other as b.
 */
export async function mergeInto(
  local: string,
  other: Buffer | string,
  opts: { prefer?: "local" | "other"; names?: [string, string]; dryRun?: boolean; waitMs?: number; buffers?: MergeBuffers } = {},
): Promise<FileMerge> {
  const names = opts.names ?? [local, typeof other === "string" ? other : "the other copy"];
  const buffers = opts.buffers;
  // Read before the local file is locked: the lock is held only for the local read, the merge and the write.
  if (typeof other === "string") other = (await readRrdLocked(other, opts.waitMs, buffers && ((n) => buffers.get(1, n)))).bytes;
  let fd: number;
  try {
    fd = openSync(local, (opts.dryRun ? constants.O_RDONLY : constants.O_RDWR) | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === "ENOENT";
    throw new UserError(`${local}: cannot open${opts.dryRun ? "" : " to write"}: ${errText(e)}`, missing ? ExitCode.Usage : ExitCode.Pending);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new UserError(`${local}: not a regular file`, ExitCode.Usage);
    await lockWait(fd, opts.dryRun ? "read" : "write", opts.waitMs ?? LOCK_WAIT_MS).catch((e) => lockError(e, local, "write"));
    const mine = readWhole(fd, st, local, buffers && ((n) => buffers.get(0, n)));
    const prefer = opts.prefer === undefined ? undefined : opts.prefer === "local" ? "a" : "b";
    const r = mergeRrd(mine, aligned(other), { prefer, layout: "a", names, into: buffers?.get(2, mine.length) });
    if (r.kind === "refused") throw refused(r.reason);
    if (opts.dryRun) return { stats: r.stats, header: r.header, names, wrote: "nothing (dry run)", bytes: 0 };
    const dataAt = r.header.headerSize;
    let bytes = 0;
    try {
      // The rows first, then the header: see the top of this file.
      bytes += writeChanged(fd, mine, r.out, dataAt, r.out.length);
      bytes += writeChanged(fd, mine, r.out, 0, dataAt);
    } catch (e) {
      throw new UserError(`${local}: cannot write the merge in place: ${errText(e)}`, ExitCode.Pending, "the file is as it was, or partly merged; run the merge again once the cause is fixed (it converges)");
    }
    return { stats: r.stats, header: r.header, names, wrote: "in place", bytes };
  } finally {
    closeSync(fd); // drops the lock
  }
}

/** Writes the span of [from, to) where `next` differs from `prev` (one write): the count of bytes written. */
function writeChanged(fd: number, prev: Buffer, next: Buffer, from: number, to: number): number {
  let lo = from;
  while (lo < to && prev[lo] === next[lo]) lo++;
  if (lo === to) return 0;
  let hi = to;
  while (hi > lo && prev[hi - 1] === next[hi - 1]) hi--;
  let done = lo;
  while (done < hi) done += writeSync(fd, next, done, hi - done, done);
  return hi - lo;
}

/** The same file (device and inode), or not there at all. */
function sameFile(a: Stats, b: Stats | null): boolean {
  return b !== null && a.dev === b.dev && a.ino === b.ino;
}

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new UserError(`${path}: cannot look at it: ${errText(e)}`, ExitCode.Usage);
  }
}

/**
 * `rrdsync merge A B --to OUT`: A and B merged into OUT. OUT may be A or B itself: then the other is merged into it
 * in place, under rrdtool's lock (mergeInto), so it can run beside a live OpenNMS. Any other existing OUT is
 * replaced only with `force`; a new OUT is written under a random temporary name beside it and renamed.
 */
export async function mergeRrdFiles(
  a: string,
  b: string,
  out: string | null,
  opts: { prefer?: "a" | "b"; force?: boolean; dryRun?: boolean; waitMs?: number; buffers?: MergeBuffers } = {},
): Promise<FileMerge> {
  const buffers = opts.buffers;
  const stA = lstatOrNull(a);
  const stB = lstatOrNull(b);
  if (stA !== null && sameFile(stA, stB)) throw new UserError(`${a} and ${b} are the same file`, ExitCode.Usage, "name the two copies to merge (e.g. the primary's and the standby's)");
  const stOut = out === null ? null : lstatOrNull(out);
  const into = stOut === null ? null : stA !== null && sameFile(stA, stOut) ? "a" : stB !== null && sameFile(stB, stOut) ? "b" : null;
  if (out !== null && into !== null) {
    const otherPath = into === "a" ? b : a;
    const prefer = opts.prefer === undefined ? undefined : opts.prefer === into ? "local" : "other";
    const r = await mergeInto(out, otherPath, { prefer, names: into === "a" ? [a, b] : [b, a], dryRun: opts.dryRun, waitMs: opts.waitMs, buffers });
    return into === "a" ? r : swap(r);
  }
  if (out !== null && stOut !== null && !opts.force && !opts.dryRun) {
    throw new UserError(`${out} exists`, ExitCode.Usage, "give --force to replace it, or --to one of the inputs to merge into it in place");
  }
  if (out !== null && stOut !== null && stOut.isDirectory()) throw new UserError(`${out} is a directory`, ExitCode.Usage, "--to names the merged file");
  const ra = await readRrdLocked(a, opts.waitMs, buffers && ((n) => buffers.get(0, n)));
  const rb = await readRrdLocked(b, opts.waitMs, buffers && ((n) => buffers.get(1, n)));
  const r = mergeRrd(ra.bytes, rb.bytes, { prefer: opts.prefer, names: [a, b], into: buffers?.get(2, Math.max(ra.bytes.length, rb.bytes.length)) });
  if (r.kind === "refused") throw refused(r.reason);
  if (out === null || opts.dryRun) return { stats: r.stats, header: r.header, names: [a, b], wrote: "nothing (dry run)", bytes: 0 };
  writeNew(out, r.out, stOut !== null && stOut.isFile() ? stOut : null);
  return { stats: r.stats, header: r.header, names: [a, b], wrote: "new file", bytes: r.out.length };
}

/** The result as seen from the other side (mergeInto merged b ← a: its a is our b). */
function swap(r: FileMerge): FileMerge {
  const flip = (s: "a" | "b") => (s === "a" ? "b" : "a");
  const s = r.stats;
  return {
    ...r,
    names: [r.names[1], r.names[0]],
    stats: {
      ...s,
      liveFrom: flip(s.liveFrom),
      winner: flip(s.winner),
      lastUpdate: { a: s.lastUpdate.b, b: s.lastUpdate.a },
      archives: s.archives.map((x) => ({ ...x, onlyA: x.onlyB, onlyB: x.onlyA })),
      notes: s.notes,
    },
  };
}

/**
 * Writes `data` as `path`: a random temporary name beside it (O_CREAT|O_EXCL|O_NOFOLLOW: a planted file or symlink
 * is never written through), then renamed over it. The file it replaces lends its mode and owner (a merged RRD must
 * stay writable by OpenNMS's user). No fsync: like rrdtool restore and rsync.
 */
function writeNew(path: string, data: Buffer, replaces: Stats | null): void {
  const tmp = tempBeside(path);
  let fd: number;
  try {
    fd = createNew(tmp, replaces === null ? 0o644 : replaces.mode & 0o7777);
  } catch (e) {
    throw new UserError(`${path}: cannot create a temporary file beside it: ${errText(e)}`, ExitCode.Pending, "check that the directory exists and is writable");
  }
  try {
    try {
      if (replaces !== null) {
        if (process.getuid?.() === 0 && (replaces.uid !== 0 || replaces.gid !== 0)) fchownSync(fd, replaces.uid, replaces.gid);
        fchmodSync(fd, replaces.mode & 0o7777);
      }
      let done = 0;
      while (done < data.length) done += writeSync(fd, data, done, data.length - done, done);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // already gone
    }
    throw new UserError(`${path}: cannot write: ${errText(e)}`, ExitCode.Pending, "nothing was replaced; fix the cause and run the merge again");
  }
}
