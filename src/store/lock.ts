// One run at a time per state file: a pid lock beside it, taken over when its owner is dead.
import { linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { ExitCode, LockHeldError, UserError } from "../errors.ts";

export interface Lock {
  path: string;
  release(): void;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else: still alive.
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The pid of a live rrdsync holding the lock for this state file, or null (none, or a stale lock). */
export function lockHolder(stateFile: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(`${stateFile}.lock`, "utf8").trim(), 10);
    return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : null;
  } catch {
    return null;
  }
}

export function acquireLock(stateFile: string): Lock {
  const path = `${stateFile}.lock`;
  try {
    mkdirSync(dirname(stateFile), { recursive: true });
  } catch (e) {
    throw new UserError(`cannot create the state directory ${dirname(stateFile)}: ${(e as NodeJS.ErrnoException).code}`, ExitCode.Usage, "set state_file (or --state) to a writable place");
  }
  // Bounded: one takeover attempt per stale lock; a racing peer that wins makes us report it.
  for (let attempt = 0; attempt < 3; attempt++) {
    // link() of a filled temp file creates the lock atomically WITH its pid, so nobody sees it empty.
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, `${process.pid}\n`, { mode: 0o644 });
    try {
      linkSync(tmp, path);
      return {
        path,
        release() {
          try {
            if (readFileSync(path, "utf8").trim() === String(process.pid)) unlinkSync(path);
          } catch {
            // already gone: nothing to release
          }
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    } finally {
      unlinkSync(tmp);
    }
    let pid = NaN;
    try {
      pid = Number.parseInt(readFileSync(path, "utf8").trim(), 10);
    } catch {
      continue; // removed between our open and read: try again
    }
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) throw new LockHeldError(pid, path);
    // Stale (dead pid, or empty/garbled from a crash mid-write): take it over.
    try {
      unlinkSync(path);
    } catch {
      // someone else took it over first; the next attempt sees their pid
    }
  }
  throw new LockHeldError(NaN, path);
}
