// The inotify system interface: <sys/inotify.h> constants, the libc binding through bun:ffi, and the event parser.
import { dlopen, read as peek } from "bun:ffi";
import { readFileSync } from "node:fs";
import { nameFromBytes } from "../names.ts";

// <sys/inotify.h>
export const IN_MODIFY = 0x2;
export const IN_ATTRIB = 0x4;
export const IN_CLOSE_WRITE = 0x8;
export const IN_MOVED_FROM = 0x40;
export const IN_MOVED_TO = 0x80;
export const IN_CREATE = 0x100;
export const IN_DELETE = 0x200;
export const IN_DELETE_SELF = 0x400;
export const IN_MOVE_SELF = 0x800;
export const IN_UNMOUNT = 0x2000;
export const IN_Q_OVERFLOW = 0x4000;
export const IN_IGNORED = 0x8000;
export const IN_ONLYDIR = 0x0100_0000;
export const IN_DONT_FOLLOW = 0x0200_0000;
export const IN_EXCL_UNLINK = 0x0400_0000;
export const IN_ISDIR = 0x4000_0000;
export const IN_NONBLOCK = 0o4000;
export const IN_CLOEXEC = 0o2000000;
export const FIONREAD = 0x541b;
export const EVENTS = IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF;
// IN_EXCL_UNLINK: a deleted file that a writer still holds open raises nothing more under its old name.
// The root may be a symlink (/var/opennms/rrd → /data/rrd) and is followed, as the tree walk does; nothing below it is.
export const ROOT_MASK = EVENTS | IN_ONLYDIR | IN_EXCL_UNLINK;
export const DIR_MASK = ROOT_MASK | IN_DONT_FOLLOW;

const errnoName: Record<number, string> = { 2: "ENOENT", 12: "ENOMEM", 13: "EACCES", 20: "ENOTDIR", 23: "ENFILE", 24: "EMFILE", 28: "ENOSPC", 40: "ELOOP" };

function bindLibc() {
  return dlopen("libc.so.6", {
    inotify_init1: { args: ["i32"], returns: "i32" },
    inotify_add_watch: { args: ["i32", "ptr", "u32"], returns: "i32" },
    inotify_rm_watch: { args: ["i32", "i32"], returns: "i32" },
    ioctl: { args: ["i32", "u64", "ptr"], returns: "i32" },
    close: { args: ["i32"], returns: "i32" },
    __errno_location: { args: [], returns: "ptr" },
  }).symbols;
}
let libc: ReturnType<typeof bindLibc> | null = null;

/** The FFI binding, loaded once; throws where there is no libc.so.6 (not Linux, musl): the caller falls back. */
export function inotifyLibc(): ReturnType<typeof bindLibc> {
  libc ??= bindLibc();
  return libc;
}

/** errno of the libc call just made (read before any other call can change it). */
export function lastErrno(): string {
  const p = inotifyLibc().__errno_location();
  const n = p === null ? 0 : peek.i32(p, 0);
  return errnoName[n] ?? `errno ${n}`;
}

/** /proc/sys/fs/inotify/NAME, or "?" */
export function inotifySysctl(name: string): string {
  try {
    return readFileSync(`/proc/sys/fs/inotify/${name}`, "utf8").trim();
  } catch {
    return "?";
  }
}

/**
 * Calls `on` for each whole struct inotify_event { int wd; uint32_t mask, cookie, len; char name[len]; } in `buf`
 * (name NUL-padded; "" for an event on the watched directory itself) until it returns false; returns the bytes used
 * (a partial event at the end is left for the next read). Names are read as the walks read them (src/names.ts):
 * a byte that is not valid UTF-8 comes as NUL + two hex digits, so the path can be turned back into its bytes.
 */
export function parseInotifyEvents(buf: Uint8Array, on: (wd: number, mask: number, cookie: number, name: string) => boolean): number {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const bytes = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = 0;
  while (off + 16 <= buf.length) {
    const len = view.getUint32(off + 12, true);
    if (off + 16 + len > buf.length) break;
    let end = off + 16;
    while (end < off + 16 + len && buf[end] !== 0) end++;
    const name = end === off + 16 ? "" : nameFromBytes(bytes, off + 16, end);
    const wd = view.getInt32(off, true);
    const mask = view.getUint32(off + 4, true);
    const cookie = view.getUint32(off + 8, true);
    off += 16 + len;
    if (!on(wd, mask, cookie, name)) break;
  }
  return off;
}
