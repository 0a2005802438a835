// Every local file rrdsync writes is opened so that it cannot be redirected (OpenSSH's and systemd's habit): the
// final name with O_NOFOLLOW (a symlink planted there is refused by the kernel, ELOOP), a replacement written under
// a random name created with O_CREAT|O_EXCL|O_NOFOLLOW in the same directory and renamed over it (rename replaces a
// planted symlink, never follows it), and a directory that another user can write is refused, not trusted (they
// could swap any name in it between a check and an open). Flags come from node's fs.constants, which carry each
// platform's values (O_NOFOLLOW differs on arm64: see libc.ts).
import { randomBytes } from "node:crypto";
import { closeSync, constants, fchmodSync, fstatSync, fsyncSync, lstatSync, openSync, readSync, realpathSync, renameSync, statSync, unlinkSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";

const { O_WRONLY, O_RDONLY, O_RDWR, O_CREAT, O_EXCL, O_APPEND, O_NOFOLLOW, O_NONBLOCK } = constants;

/** An fd for appending to `path` (created if missing), never through a symlink at `path`. */
export function openAppend(path: string | Buffer, mode = 0o644): number {
  return openSync(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW, mode);
}

/** An fd for reading and writing `path` (created if missing), never through a symlink at `path`. */
export function openReadWrite(path: string, mode = 0o644): number {
  return openSync(path, O_RDWR | O_CREAT | O_NOFOLLOW, mode);
}

/** An fd for reading `path`, never through a symlink there (and a fifo put there cannot hang the open). */
export function openRead(path: string | Buffer): number {
  return openSync(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
}

/** A new file at `path`, which must not exist (O_EXCL: not a planted symlink, not a planted file either). */
export function createNew(path: string | Buffer, mode = 0o644): number {
  return openSync(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
}

/** `.NAME.rrdsync-XXXXXXXXXXXX.tmp` beside `path`: unguessable, so nobody can plant anything there in advance. */
export function tempBeside(path: string): string {
  return join(dirname(path), `.${basename(path)}.rrdsync-${randomBytes(6).toString("hex")}.tmp`);
}

function writeAll(fd: number, data: Uint8Array): void {
  for (let off = 0; off < data.length; ) off += writeSync(fd, data, off);
}

/**
 * Replaces `path` with `data`: written under a random name in the same directory (created exclusively, not
 * through a symlink), then renamed over `path`, so a reader sees the old file or the new one, and a symlink
 * planted at `path` is replaced, not written through. `sync`: fsync before the rename (a config, a unit file).
 * Returns the temporary name's fate only through exceptions: on failure it is removed.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, opts: { mode?: number; sync?: boolean } = {}): void {
  const tmp = tempBeside(path);
  const fd = createNew(tmp, opts.mode ?? 0o644);
  try {
    try {
      writeAll(fd, typeof data === "string" ? Buffer.from(data) : data);
      if (opts.sync) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      // renamed already, or never made
    }
    throw e;
  }
}

/**
 * Copies `from` (never through a symlink: a file swapped for one is not read) to the new file `to` (created
 * exclusively, never through a symlink), with `mode` (exactly: the umask does not cut it).
 */
export function copyToNew(from: string | Buffer, to: string, mode = 0o644): void {
  const src = openRead(from);
  try {
    const dst = createNew(to, mode);
    try {
      const buf = Buffer.allocUnsafe(1 << 20);
      for (let n = readSync(src, buf, 0, buf.length, null); n > 0; n = readSync(src, buf, 0, buf.length, null)) writeAll(dst, buf.subarray(0, n));
      fchmodSync(dst, mode);
    } finally {
      closeSync(dst);
    }
  } finally {
    closeSync(src);
  }
}

/** Reads a file of ours whole (at most `max` bytes), never through a symlink; null when it is not there. */
export function readOwnFile(path: string, max = 64 * 1024 * 1024): Buffer | null {
  let fd: number;
  try {
    fd = openRead(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
  try {
    if (!fstatSync(fd).isFile()) throw Object.assign(new Error(`${path} is not a regular file`), { code: "EINVAL" });
    const parts: Buffer[] = [];
    let total = 0;
    for (;;) {
      const b = Buffer.allocUnsafe(65536);
      const n = readSync(fd, b, 0, b.length, null);
      if (n <= 0) break;
      total += n;
      if (total > max) throw Object.assign(new Error(`${path} is larger than ${max} bytes`), { code: "EFBIG" });
      parts.push(b.subarray(0, n));
    }
    return Buffer.concat(parts);
  } finally {
    closeSync(fd);
  }
}

/**
 * What a path that rrdsync (or SQLite for it) opens by name is, before it is opened: null when it is absent or a
 * regular file; else why it must not be opened (a symlink planted there would send the write elsewhere: SQLite
 * follows one at the DB's name).
 */
export function notPlainFile(path: string): string | null {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return null;
  }
  if (st.isSymbolicLink()) return "is a symlink";
  if (!st.isFile()) return st.isDirectory() ? "is a directory" : "is not a regular file";
  return null;
}

/** The user and group rrdsync runs as (effective ids: what the kernel checks). */
function whoAmI(): { uid: number; gid: number } {
  return { uid: process.geteuid?.() ?? process.getuid?.() ?? 0, gid: process.getegid?.() ?? process.getgid?.() ?? 0 };
}

/** The login name of a uid (getent: also LDAP/SSSD users), or null. */
function loginOf(uid: number): string | null {
  const r = Bun.spawnSync(["getent", "passwd", String(uid)], { stdout: "pipe", stderr: "ignore" });
  return (r.exitCode === 0 && r.stdout.toString().split(":")[0]) || null;
}

/** A uid as people know it: "opennms (uid 990)", or "uid 990" where it has no name. */
export function userName(uid: number): string {
  const name = loginOf(uid);
  return name ? `${name} (uid ${uid})` : `uid ${uid}`;
}

export interface DirProblem {
  /** the directory (itself or one above it) that others can write */
  dir: string;
  why: string;
  /** the command that makes it private */
  fix: string;
}

/**
 * Can someone other than the user rrdsync runs as (or root) write `dir`, or a directory above it, and so replace
 * or plant names in it? null when not. The directory itself must belong to us or root and be writable by nobody
 * else (its group only when that is our own group); a directory above it may be writable by others only with the
 * sticky bit (like /tmp: others cannot rename or remove what is ours there). A directory not made yet is judged
 * by the nearest one that exists (we make the rest, private). Symlinks on the way are resolved first: it is the
 * real directories that count.
 */
export function dirProblem(dir: string): DirProblem | null {
  const me = whoAmI();
  let d = dir;
  let own = true; // `d` is the directory itself (or a part of it we would create)
  const exists = (p: string) => {
    try {
      return statSync(p).isDirectory();
    } catch {
      return false; // not there, or under a file: made by us (or it fails where it is made, and says why)
    }
  };
  while (!exists(d)) {
    if (dirname(d) === d) return null;
    d = dirname(d);
  }
  let real: string;
  try {
    real = realpathSync(d);
  } catch {
    return null; // unreadable: the open itself will say so
  }
  own = d === dir;
  for (let p = real; ; p = dirname(p)) {
    const st = statSync(p);
    const mode = st.mode & 0o7777;
    const octal = mode.toString(8).padStart(4, "0");
    if (st.uid !== 0 && st.uid !== me.uid) {
      return { dir: p, why: `${p} belongs to ${userName(st.uid)}, not to the user rrdsync runs as (${userName(me.uid)}), who could replace any file in it`, fix: `run rrdsync as that user (sudo -u ${loginOf(st.uid) ?? `'#${st.uid}'`} rrdsync …), or make it this user's: chown ${me.uid}:${me.gid} ${p}` };
    }
    const sticky = (mode & 0o1000) !== 0;
    const others = (mode & 0o002) !== 0;
    const group = (mode & 0o020) !== 0 && st.gid !== me.gid;
    if ((others || group) && (own || !sticky)) {
      return { dir: p, why: `${p} is writable by ${others ? "every user" : `the members of group ${st.gid}`} (mode ${octal})`, fix: `chmod ${own ? "go-w" : "o-w,g-w (or +t)"} ${p}` };
    }
    own = false;
    if (dirname(p) === p) return null;
  }
}
