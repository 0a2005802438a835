// The few libc calls that a million files make worth calling directly, through bun:ffi: directories listed with
// getdents64, files stat'ed with statx relative to their directory's fd, and the first bytes of a file read with
// open/pread/close (no path walk per file, no object per file; node:fs's calls cost 2–5× as much each, measured).
// Where they cannot be bound (not Linux/glibc) callers use node:fs.
import { closeSync, constants, openSync, readSync } from "node:fs";
import { dlopen, read } from "bun:ffi";
import { fsPath, writeCName } from "./names.ts";

function bind() {
  return dlopen("libc.so.6", {
    openat: { args: ["i32", "ptr", "i32", "i32"], returns: "i32" },
    getdents64: { args: ["i32", "ptr", "u64"], returns: "i64" },
    statx: { args: ["i32", "ptr", "i32", "u32", "ptr"], returns: "i32" },
    close: { args: ["i32"], returns: "i32" },
    pread: { args: ["i32", "ptr", "u64", "i64"], returns: "i64" },
    __errno_location: { args: [], returns: "ptr" },
  }).symbols;
}

export type Libc = ReturnType<typeof bind>;

let libc: Libc | null | undefined;

export function fastLibc(): Libc | null {
  if (libc === undefined) {
    try {
      libc = process.platform === "linux" && process.env.RRDSYNC_NO_FFI === undefined ? bind() : null;
    } catch {
      libc = null; // not glibc (or older than 2.30, without getdents64)
    }
  }
  return libc;
}

export const AT_FDCWD = -100;
export const AT_SYMLINK_NOFOLLOW = 0x100;
export const O_RDONLY = 0;
// arm64 has ARM's values for these two (0o200000 there is O_DIRECT: getdents64 on such an fd fails with EINVAL)
const ARM = process.arch === "arm64";
export const O_DIRECTORY = ARM ? 0o40000 : 0o200000;
export const O_NOFOLLOW = ARM ? 0o100000 : 0o400000;
export const O_NONBLOCK = 0o4000;
export const O_PATH = 0o10000000;
export const O_CLOEXEC = 0o2000000;
export const STATX_TYPE = 0x1;
export const STATX_MODE = 0x2;
export const STATX_MTIME = 0x40;
export const STATX_CTIME = 0x80;
export const STATX_INO = 0x100;
export const STATX_SIZE = 0x200;
/** struct statx offsets (linux/stat.h) */
export const SX = { mask: 0, mode: 28, ino: 32, size: 40, ctimeSec: 96, ctimeNsec: 104, mtimeSec: 112, mtimeNsec: 120 } as const;
/** struct linux_dirent64 offsets */
export const DIRENT = { reclen: 16, type: 18, name: 19 } as const;
export const DT_UNKNOWN = 0;
export const DT_DIR = 4;
export const DT_REG = 8;
export const DT_LNK = 10;
export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;

const ERRNO: Record<number, string> = { 1: "EPERM", 2: "ENOENT", 5: "EIO", 13: "EACCES", 20: "ENOTDIR", 21: "EISDIR", 24: "EMFILE", 40: "ELOOP" };

/** The last call's errno as its name (ENOENT, EACCES, …). */
export function errnoName(c: Libc): string {
  const n = read.i32(c.__errno_location() as number);
  return ERRNO[n] ?? `errno ${n}`;
}

function fail(c: Libc, what: string, path: string): never {
  const code = errnoName(c);
  throw Object.assign(new Error(`${code}: ${what} '${path}'`), { code });
}

const pathBuf = Buffer.alloc(8192);

/** Opens a file to read (never through a symlink at its last component): an fd for readAt/closeFd. */
export function openRead(path: string): number {
  const c = fastLibc();
  const n = c === null ? -1 : writeCName(pathBuf, path);
  if (c === null || n < 0) return openSync(fsPath(path), constants.O_RDONLY | constants.O_NOFOLLOW);
  const fd = c.openat(AT_FDCWD, pathBuf, O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0);
  if (fd < 0) fail(c, "open", path);
  return fd;
}

/** Reads up to `len` bytes at `pos` into buf (from its start): the count read. */
export function readAt(fd: number, buf: Buffer, len: number, pos: number): number {
  const c = fastLibc();
  if (c === null) return readSync(fd, buf, 0, len, pos);
  const n = Number(c.pread(fd, buf, len, pos));
  if (n < 0) fail(c, "read", `fd ${fd}`);
  return n;
}

export function closeFd(fd: number): void {
  const c = fastLibc();
  if (c === null) closeSync(fd);
  else c.close(fd);
}
