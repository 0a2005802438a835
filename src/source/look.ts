// A look at one path of the source, for events and rechecks: what is there now. lstat only: never follows a symlink.
import { type BigIntStats, constants, lstatSync, openSync } from "node:fs";
import { join } from "node:path";
import { ptr } from "bun:ffi";
import {
  AT_FDCWD, AT_SYMLINK_NOFOLLOW, errnoName, fastLibc, type Libc, O_CLOEXEC, O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK, O_PATH, O_RDONLY, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, STATX_CTIME, STATX_INO, STATX_MODE,
  STATX_MTIME, STATX_SIZE, STATX_TYPE, SX,
} from "../libc.ts";
import { cPath, fsPath, writeCName } from "../names.ts";

/** What a look keeps of a regular file's stat: its version (size, mtime in ns, inode), ctime, and blocks (sparse?). */
export interface FileStat {
  size: bigint;
  mtimeNs: bigint;
  ino: bigint;
  ctimeNs: bigint;
  /** 512-byte blocks allocated: fewer than the size needs means holes */
  blocks: bigint;
  /** the inode's birth time (statx btime), 0n where the file system keeps none (renames.ts needs it) */
  birthtimeNs: bigint;
}

export type Look =
  | { kind: "file"; stat: FileStat | BigIntStats }
  | { kind: "dir" }
  /** a symlink, a device, a fifo: never replicated */
  | { kind: "other" }
  /** ENOENT/ENOTDIR: really not there */
  | { kind: "gone" }
  /** something else went wrong (EACCES on a parent, EIO): proves nothing either way */
  | { kind: "unknown"; code: string };

export function lookAt(sourceDir: string, rel: string): Look {
  const fast = statPath(join(sourceDir, rel));
  if (fast !== undefined) return fast;
  let st: BigIntStats;
  try {
    st = lstatSync(fsPath(join(sourceDir, rel)), { bigint: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "EIO";
    return code === "ENOENT" || code === "ENOTDIR" ? { kind: "gone" } : { kind: "unknown", code };
  }
  if (st.isFile()) return { kind: "file", stat: st };
  if (st.isDirectory()) return { kind: "dir" };
  return { kind: "other" };
}

const PATH_BUF = Buffer.alloc(4096 + 1);
const PATH_PTR = ptr(PATH_BUF);
const STATX_BLOCKS = 0x400;
const STATX_BTIME = 0x800;
const SX_BLOCKS = 48;
const SX_BTIME_SEC = 80;
const SX_BTIME_NSEC = 88;
const SX1_BUF = new Uint8Array(256);
const SX1_VIEW = new DataView(SX1_BUF.buffer);

/**
 * lstat through one statx call (the daemon looks at every updated file two or three times: an lstat with a
 * BigIntStats costs twice as much); undefined where libc cannot be called or the path cannot be written as a C
 * string (then the caller uses lstat).
 */
export function statPath(abs: string): Look | undefined {
  const c = fastLibc();
  if (c === null || writeCName(PATH_BUF, abs) < 0) return undefined;
  if (c.statx(AT_FDCWD, PATH_PTR, AT_SYMLINK_NOFOLLOW, WANT | STATX_BLOCKS | STATX_BTIME, SX1_BUF) !== 0) {
    const code = errnoName(c);
    return code === "ENOENT" || code === "ENOTDIR" ? { kind: "gone" } : { kind: "unknown", code };
  }
  const v = SX1_VIEW;
  if ((v.getUint32(SX.mask, true) & WANT) !== WANT) return undefined;
  const fmt = v.getUint16(SX.mode, true) & S_IFMT;
  if (fmt === S_IFDIR) return { kind: "dir" };
  if (fmt !== S_IFREG) return { kind: "other" };
  const u64 = (o: number) => BigInt(v.getUint32(o, true)) + (BigInt(v.getUint32(o + 4, true)) << 32n);
  const ns = (secAt: number, nsecAt: number) => BigInt(v.getInt32(secAt + 4, true)) * 4294967296000000000n + BigInt(v.getUint32(secAt, true)) * 1_000_000_000n + BigInt(v.getUint32(nsecAt, true));
  return {
    kind: "file",
    stat: { size: u64(SX.size), mtimeNs: ns(SX.mtimeSec, SX.mtimeNsec), ino: u64(SX.ino), ctimeNs: ns(SX.ctimeSec, SX.ctimeNsec), blocks: u64(SX_BLOCKS),
      birthtimeNs: (v.getUint32(SX.mask, true) & STATX_BTIME) !== 0 ? ns(SX_BTIME_SEC, SX_BTIME_NSEC) : 0n,
    },
  };
}

/** Truly gone from the source: lstat says ENOENT/ENOTDIR (an unreadable directory proves nothing). */
export function goneFromSource(sourceDir: string, rel: string): boolean {
  return lookAt(sourceDir, rel).kind === "gone";
}

/** What a first sync needs of a file: its version (size, mtime in ns, inode, as the state keeps them) and ctime. */
export interface FileLook {
  kind: "file" | "dir" | "symlink" | "other";
  size: number;
  mtimeNs: string;
  ino: string;
  ctimeNs: bigint;
}

const SX_BUF = new Uint8Array(256);
const SX_VIEW = new DataView(SX_BUF.buffer);
const NAME_BUF = Buffer.alloc(4096);
const NAME_PTR = ptr(NAME_BUF);
const WANT = STATX_TYPE | STATX_MODE | STATX_SIZE | STATX_MTIME | STATX_CTIME | STATX_INO;
const TWO32 = 4294967296;

/**
 * The files of one directory looked at in turn: statx relative to the directory's fd (one path walk for the
 * directory, not one per file), no stat object per file. lstat where libc cannot be bound.
 */
export class DirLooker {
  private readonly c: Libc | null = fastLibc();
  private readonly fd: number;
  // one set of buffers for every looker: each call uses them and is done before it returns
  private readonly sx = SX_BUF;
  private readonly view = SX_VIEW;
  private readonly name = NAME_BUF;
  private readonly namePtr = NAME_PTR;

  /** `root`: this is the tree's root, which may be a symlink (followed, as everywhere); no other directory is followed. */
  constructor(private readonly abs: string, root = false) {
    const c = this.c;
    this.fd = c === null ? -1 : c.openat(AT_FDCWD, cPath(abs), O_PATH | O_DIRECTORY | O_CLOEXEC | (root ? 0 : O_NOFOLLOW), 0);
  }

  /** The file `name` of this directory now, or null when it is not there (or cannot be looked at). */
  look(name: string): FileLook | null {
    const c = this.c;
    const n = c === null || this.fd < 0 ? -1 : writeCName(this.name, name);
    if (c === null || n < 0) return lookPortable(`${this.abs}/${name}`);
    if (c.statx(this.fd, this.namePtr, AT_SYMLINK_NOFOLLOW, WANT, this.sx) !== 0) return null;
    const v = this.view;
    if ((v.getUint32(SX.mask, true) & WANT) !== WANT) return lookPortable(`${this.abs}/${name}`);
    const fmt = v.getUint16(SX.mode, true) & S_IFMT;
    const u64 = (o: number) => v.getUint32(o + 4, true) * TWO32 + v.getUint32(o, true);
    const ino = v.getUint32(SX.ino + 4, true) < 1 << 21 ? String(u64(SX.ino)) : (BigInt(v.getUint32(SX.ino, true)) + (BigInt(v.getUint32(SX.ino + 4, true)) << 32n)).toString();
    const ns = (secAt: number, nsecAt: number) => BigInt(v.getInt32(secAt + 4, true)) * 4294967296000000000n + BigInt(v.getUint32(secAt, true)) * 1_000_000_000n + BigInt(v.getUint32(nsecAt, true));
    return {
      kind: fmt === S_IFREG ? "file" : fmt === S_IFDIR ? "dir" : fmt === S_IFLNK ? "symlink" : "other",
      size: u64(SX.size), mtimeNs: ns(SX.mtimeSec, SX.mtimeNsec).toString(), ino, ctimeNs: ns(SX.ctimeSec, SX.ctimeNsec),
    };
  }

  /**
   * Opens `name` to read (relative to the directory: no path walk; never through a symlink; O_NONBLOCK so a fifo
   * put there since the look cannot hang us): an fd, or null.
   */
  open(name: string): number | null {
    const c = this.c;
    const n = c === null || this.fd < 0 ? -1 : writeCName(this.name, name);
    if (c === null || n < 0) {
      try {
        return openSync(fsPath(`${this.abs}/${name}`), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      } catch {
        return null;
      }
    }
    // an O_PATH directory fd serves openat as a base
    const fd = c.openat(this.fd, this.namePtr, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0);
    return fd < 0 ? null : fd;
  }

  close(): void {
    if (this.c !== null && this.fd >= 0) this.c.close(this.fd);
  }
}

function lookPortable(abs: string): FileLook | null {
  const st = lstatSync(fsPath(abs), { bigint: true, throwIfNoEntry: false });
  if (st === undefined) return null;
  return {
    kind: st.isFile() ? "file" : st.isDirectory() ? "dir" : st.isSymbolicLink() ? "symlink" : "other",
    size: Number(st.size), mtimeNs: st.mtimeNs.toString(), ino: st.ino.toString(), ctimeNs: st.ctimeNs,
  };
}
