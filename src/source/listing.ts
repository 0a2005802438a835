// One directory's names as a walk needs them, through getdents64 (bun:ffi): its subdirectories and its candidate
// files (monitored names of regular files), sorted, with no object per entry (node:fs's readdir makes a Dirent
// each: at a million files that is most of a first sync's listing). walk.ts listDir does the same through node:fs
// where libc cannot be bound.
import { ptr } from "bun:ffi";
import {
  AT_FDCWD, AT_SYMLINK_NOFOLLOW, DIRENT, DT_DIR, DT_LNK, DT_REG, DT_UNKNOWN, errnoName, fastLibc, type Libc, O_CLOEXEC, O_DIRECTORY, O_NOFOLLOW,
  O_RDONLY, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, STATX_TYPE, SX,
} from "../libc.ts";
import { cPath, nameFromBytes } from "../names.ts";
import { listDir, type WalkOptions } from "./walk.ts";

const BUF = Buffer.alloc(64 * 1024);
const BUF_PTR = ptr(BUF);
const SX_BUF = new Uint8Array(256);
const SX_VIEW = new DataView(SX_BUF.buffer);
const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The subdirectories (relative paths, sorted) and candidate file names (sorted) of one directory, or null if unreadable (reported). */
export function listNames(relDir: string, absDir: string, opts: Pick<WalkOptions, "extensions" | "exclude" | "onProblem" | "onSymlink">): { subdirs: string[]; names: string[] } | null {
  const c = fastLibc();
  if (c === null) return listDir(relDir, absDir, opts);
  // the root may be a symlink (followed, as everywhere); nothing below it is
  const fd = c.openat(AT_FDCWD, cPath(absDir), O_RDONLY | O_DIRECTORY | O_CLOEXEC | (relDir === "" ? 0 : O_NOFOLLOW), 0);
  if (fd < 0) {
    const e = errnoName(c);
    if (e === "ELOOP") opts.onSymlink?.(relDir); // replaced by a symlink since it was listed: not followed
    else if (e !== "ENOENT" && e !== "ENOTDIR") opts.onProblem(relDir || ".", `cannot read directory: ${e}`);
    return null;
  }
  try {
    return list(c, fd, relDir, absDir, opts);
  } finally {
    c.close(fd);
  }
}

function list(c: Libc, fd: number, relDir: string, absDir: string, opts: Pick<WalkOptions, "extensions" | "exclude" | "onProblem" | "onSymlink">): { subdirs: string[]; names: string[] } | null {
  const exts = opts.extensions;
  const subdirs: string[] = [];
  const names: string[] = [];
  const join = (name: string) => (relDir === "" ? name : `${relDir}/${name}`);
  for (;;) {
    const got = Number(c.getdents64(fd, BUF, BUF.length));
    if (got < 0) {
      opts.onProblem(relDir || ".", `cannot read directory: ${errnoName(c)}`);
      return null;
    }
    if (got === 0) break;
    for (let off = 0; off < got; off += BUF.readUInt16LE(off + DIRENT.reclen)) {
      let type = BUF[off + DIRENT.type] as number;
      const at = off + DIRENT.name;
      const end = BUF.indexOf(0, at);
      if (type === DT_DIR && BUF[at] === 0x2e && (end === at + 1 || (BUF[at + 1] === 0x2e && end === at + 2))) continue; // . and ..
      if (type !== DT_DIR && type !== DT_LNK && type !== DT_REG && type !== DT_UNKNOWN) continue; // devices, fifos, sockets
      const name = nameFromBytes(BUF, at, end);
      if (opts.exclude.has(`${absDir}/${name}`)) continue;
      if (type === DT_UNKNOWN) {
        // a file system without d_type: statx says what it is
        if (c.statx(fd, BUF_PTR + at, AT_SYMLINK_NOFOLLOW, STATX_TYPE, SX_BUF) !== 0) continue;
        const fmt = SX_VIEW.getUint16(SX.mode, true) & S_IFMT;
        type = fmt === S_IFDIR ? DT_DIR : fmt === S_IFLNK ? DT_LNK : fmt === S_IFREG ? DT_REG : -1;
      }
      if (type === DT_DIR) subdirs.push(join(name));
      else if (type === DT_LNK) opts.onSymlink?.(join(name));
      else if (type === DT_REG && (exts.length === 0 || exts.some((e) => name.endsWith(e)))) names.push(name);
    }
  }
  subdirs.sort(byName);
  names.sort(byName);
  return { subdirs, names };
}
