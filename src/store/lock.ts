// One run at a time per state file: an flock(2) on `<state_file>.lock`, which the kernel drops when its holder
// dies however it dies (kill -9, power cut), so a stale lock cannot exist and a reused pid never blocks a run.
// The file also holds the holder's pid, only for messages.
import { closeSync, fstatSync, ftruncateSync, lstatSync, mkdirSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { dlopen, read as peek } from "bun:ffi";
import { ExitCode, LockHeldError, UserError } from "../errors.ts";
import { describeFsError } from "../text.ts";
import { openRead, openReadWrite, readOwnFile } from "../safe-files.ts";

export interface Lock {
  path: string;
  release(): void;
}

const LOCK_SH = 1;
const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;
/** EWOULDBLOCK (= EAGAIN on Linux): someone else holds the lock */
const EWOULDBLOCK = 11;

function bindLibc() {
  return dlopen("libc.so.6", {
    flock: { args: ["i32", "i32"], returns: "i32" },
    __errno_location: { args: [], returns: "ptr" },
  }).symbols;
}
let libc: ReturnType<typeof bindLibc> | null = null;

/** node:fs has no flock: libc's, through bun:ffi, bound on first use (the read-side commands mostly never need it). */
function loadLibc(): { flock(fd: number, op: number): number; errno(): number } {
  libc ??= bindLibc();
  const c = libc;
  return {
    flock: (fd, op) => c.flock(fd, op),
    errno: () => {
      const p = c.__errno_location();
      return p === null ? 0 : peek.i32(p, 0);
    },
  };
}

/** flock with LOCK_NB: true when taken, false when someone else holds it; other failures throw. */
function tryFlock(fd: number, op: number, path: string): boolean {
  const c = loadLibc();
  if (c.flock(fd, op | LOCK_NB) === 0) return true;
  const errno = c.errno();
  if (errno === EWOULDBLOCK) return false;
  throw new UserError(`cannot lock ${path}: flock failed (errno ${errno})`, ExitCode.Usage,
    "keep the state file on a local file system that supports locks (or an NFS mount with locking), or set state_file elsewhere");
}

function readPid(path: string): number {
  try {
    const pid = Number.parseInt(readOwnFile(path, 4096)?.toString("utf8").trim() ?? "", 10);
    return Number.isInteger(pid) && pid > 0 ? pid : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/**
 * The pid of the rrdsync holding the lock for this state file, NaN when one holds it but its pid is unreadable,
 * or null when none does. Asks the kernel (a shared lock is refused while a run holds the exclusive one), so a
 * pid left in the file by a dead run, now belonging to another process, never reads as running.
 */
export function lockHolder(stateFile: string): number | null {
  const path = `${stateFile}.lock`;
  let fd: number;
  try {
    fd = openRead(path);
  } catch {
    return null; // no lock file: nobody has run yet, or the last holder released it
  }
  try {
    if (tryFlock(fd, LOCK_SH, path)) {
      loadLibc().flock(fd, LOCK_UN);
      return null;
    }
    return readPid(path);
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

/**
 * An rrdsync of an earlier version (a pid file, no flock) still running with this state file: the pid in the lock
 * file is alive and its command line is an rrdsync's. Asked only before the state DB is upgraded: such a daemon
 * would still write the old layout. null when there is none.
 */
export function pidFileHolder(stateFile: string): number | null {
  const pid = readPid(`${stateFile}.lock`);
  if (Number.isNaN(pid) || pid === process.pid) return null;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "latin1").includes("rrdsync") ? pid : null;
  } catch {
    return null; // gone
  }
}

/** `status` probes with a shared lock for a few microseconds: a run starting right then tries again, briefly. */
const BUSY_RETRIES = 10;
const BUSY_WAIT_MS = 20;

export function acquireLock(stateFile: string): Lock {
  const path = `${stateFile}.lock`;
  const dir = dirname(stateFile);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o750 });
  } catch (e) {
    throw placeError(`cannot create the state directory ${dir}`, e);
  }
  for (let attempt = 0; attempt < BUSY_RETRIES; attempt++) {
    let fd: number;
    try {
      // O_CLOEXEC (Bun's default for openSync): rsync and ssh children must not inherit the lock and keep it.
      // O_NOFOLLOW: a symlink planted at the lock's name (by whoever else could write the directory) is refused,
      // never followed: the pid below would truncate whatever it names.
      fd = openReadWrite(path);
    } catch (e) {
      throw placeError(`cannot create the lock file ${path}`, e);
    }
    let taken = false;
    try {
      taken = tryFlock(fd, LOCK_EX, path);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    if (!taken) {
      closeSync(fd);
      if (attempt < BUSY_RETRIES - 1) {
        Bun.sleepSync(BUSY_WAIT_MS);
        continue;
      }
      throw new LockHeldError(readPid(path), path);
    }
    // A holder that releases unlinks the file while still holding it: the file we locked must still be the one
    // at the path, or a third run could lock a new file there beside us.
    if (!samePath(fd, path)) {
      closeSync(fd);
      continue;
    }
    try {
      ftruncateSync(fd, 0);
      writeSync(fd, `${process.pid}\n`, 0);
    } catch {
      // The pid is only for messages; a full disk is said where it matters (the state DB's first write).
    }
    return {
      path,
      release() {
        try {
          if (samePath(fd, path)) unlinkSync(path);
        } catch {
          // a lock file we cannot remove stays; the kernel lock goes with the close below all the same
        }
        closeSync(fd);
      },
    };
  }
  throw new LockHeldError(readPid(path), path);
}

function samePath(fd: number, path: string): boolean {
  try {
    const a = fstatSync(fd);
    const b = lstatSync(path);
    return a.ino === b.ino && a.dev === b.dev;
  } catch {
    return false;
  }
}

/** A state directory or lock file that cannot be made: what is wrong with the place, and the fix. */
function placeError(what: string, e: unknown): UserError {
  if ((e as NodeJS.ErrnoException).code === "ELOOP") {
    return new UserError(`${what}: it is a symlink, and rrdsync never writes through one`, ExitCode.Usage, "remove the symlink (someone who can write the state directory put it there), or set state_file elsewhere");
  }
  return new UserError(`${what}: ${describeFsError(e)}`, ExitCode.Usage, "set state_file (or --state) to a writable place, or fix the directory's permissions");
}
