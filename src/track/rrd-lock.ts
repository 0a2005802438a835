// rrdtool's own lock on an RRD, taken the way librrd takes it so that the two exclude each other.
//
// librrd 1.7.2 (rrd_open.c, rrd_rwlock) locks the whole file with fcntl(F_SETLK): a write lock to update or tune, a
// read lock to fetch, info, dump or lastupdate. F_SETLK never waits: while another process holds a conflicting lock,
// `rrdtool update` fails at once with "ERROR: could not lock RRD" (exit 1; checked with rrdtool 1.7.2 and a lock held
// here, test/unit/rrd-merge-file.test.ts), and a writer that does not retry (collectd, jrrd2) loses that sample. So
// we hold it only while the bytes are read, merged and written, all local, never across the network.
//
// We take open-file-description locks (F_OFD_SETLK, Linux ≥ 3.15): they conflict with librrd's classic ones, and
// unlike those they are not dropped when some other descriptor of this process on the same file is closed.
import { dlopen, ptr, read } from "bun:ffi";

const F_OFD_GETLK = 36;
const F_OFD_SETLK = 37;
const F_RDLCK = 0;
const F_WRLCK = 1;
const F_UNLCK = 2;
const EACCES = 13;
const EAGAIN = 11;

function bind() {
  return dlopen("libc.so.6", {
    fcntl: { args: ["i32", "i32", "ptr"], returns: "i32" },
    __errno_location: { args: [], returns: "ptr" },
  }).symbols;
}

let libc: ReturnType<typeof bind> | null = null;

function c(): ReturnType<typeof bind> {
  libc ??= bind();
  return libc;
}

export type LockKind = "read" | "write";

/** struct flock (x86_64 and arm64 alike): l_type i16 · l_whence i16 · l_start i64 · l_len i64 · l_pid i32. */
function flock(type: number): DataView {
  const v = new DataView(new ArrayBuffer(32));
  v.setInt16(0, type, true); // l_whence SEEK_SET, l_start 0, l_len 0 (the whole file, as librrd), l_pid 0 (OFD)
  return v;
}

/** Takes the lock if it is free: true, or false while another process (or descriptor) holds a conflicting one. */
export function tryLock(fd: number, kind: LockKind): boolean {
  const l = c();
  const v = flock(kind === "write" ? F_WRLCK : F_RDLCK);
  if (l.fcntl(fd, F_OFD_SETLK, ptr(v.buffer)) === 0) return true;
  const errno = read.i32(l.__errno_location() as number);
  if (errno === EAGAIN || errno === EACCES) return false;
  throw Object.assign(new Error(`fcntl(F_OFD_SETLK): errno ${errno}`), { code: errno === 22 ? "EINVAL" : `errno ${errno}` });
}

export function unlock(fd: number): void {
  c().fcntl(fd, F_OFD_SETLK, ptr(flock(F_UNLCK).buffer));
}

/** Who holds a lock that conflicts with `kind`: a pid for a classic lock (librrd's), or null (none, or an OFD lock). */
export function lockHolder(fd: number, kind: LockKind): number | null {
  const v = flock(kind === "write" ? F_WRLCK : F_RDLCK);
  if (c().fcntl(fd, F_OFD_GETLK, ptr(v.buffer)) !== 0 || v.getInt16(0, true) === F_UNLCK) return null;
  const pid = v.getInt32(24, true);
  return pid > 0 ? pid : null;
}

export class LockTimeout extends Error {
  constructor(
    readonly holder: number | null,
    readonly waitedMs: number,
  ) {
    super(`locked by ${holder === null ? "another process" : `pid ${holder}`} for ${(waitedMs / 1000).toFixed(1)} s`);
    this.name = "LockTimeout";
  }
}

/**
 * Waits for the lock, polling (librrd's holders keep it for milliseconds: an update is a few page writes), at most
 * `waitMs`; then throws LockTimeout naming the holder.
 */
export async function lockWait(fd: number, kind: LockKind, waitMs: number): Promise<void> {
  if (tryLock(fd, kind)) return;
  const start = performance.now();
  let pause = 1;
  for (;;) {
    await Bun.sleep(pause);
    if (tryLock(fd, kind)) return;
    const waited = performance.now() - start;
    if (waited >= waitMs) throw new LockTimeout(lockHolder(fd, kind), waited);
    pause = Math.min(pause * 2, 50, Math.max(1, waitMs - waited));
  }
}
