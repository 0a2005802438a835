// A local note, beside the state DB, of the replica directories an SFTP batch writes temporary files into, kept
// while the batch runs: after a kill -9 or a dropped connection it says exactly where leftovers can be, so they
// are swept there without listing every directory on every run.
import { rmSync } from "node:fs";
import { readOwnFile, writeFileAtomic } from "../../safe-files.ts";

/** The directories an unfinished earlier batch was writing into; [] if none (or the note is unreadable). */
export function readJournal(path: string): string[] {
  try {
    const j = JSON.parse(readOwnFile(path, 64 * 1024 * 1024)?.toString("utf8") ?? "{}") as { dirs?: unknown };
    return Array.isArray(j.dirs) ? j.dirs.filter((d): d is string => typeof d === "string") : [];
  } catch {
    return [];
  }
}

/** Notes `dirs` (atomically: a kill mid-write leaves the previous note); false if it cannot be written. */
export function writeJournal(path: string, dirs: Iterable<string>): boolean {
  try {
    writeFileAtomic(path, JSON.stringify({ dirs: [...dirs] }));
    return true;
  } catch {
    return false;
  }
}

export function clearJournal(path: string): void {
  rmSync(path, { force: true });
}
