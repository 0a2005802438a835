// The engine's plain types: what a pass reports, how far it is, what a batch did, and the log it writes to.
import type { ChangeRow } from "../store/state.ts";

/** The engine logs through this; the screen-aware Logger (colours, progress lines) lives in the cli layer. */
export interface EngineLog {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export interface PassStats {
  scanned: number;
  sent: number;
  bytes: number;
  changes: number;
  /** routine RRD updates rolled up (no entry of their own) */
  routine: number;
  adopted: number;
  /** files the destination did not confirm: they stay pending (a failure) */
  pending: number;
  /** sent, but they changed while being sent: not recorded, the next pass (or the watcher) sends them again */
  changedDuringSend: number;
  /** vanished between the walk and the transfer: not a failure */
  vanished: number;
  /** problems that make the run a failure though replication went on (unreadable dirs, audit gaps) */
  problems: number;
  symlinksSkipped: number;
  /** RRDs held back at least once because they looked torn (mid-write) */
  held: number;
  /** files removed from the replica because they are gone from the source (`delete` on) */
  deleted: number;
  /** renames done as moves on the replica */
  renamed: number;
  /** verify --repair: files sent again because the replica's copy was wrong, confirmed */
  repaired: number;
  seconds: number;
  /** the destination could not be reached or refused a whole batch */
  targetError: string | null;
  /** the target is fenced (the standby was written to, or promoted): nothing more was written there */
  fenced: boolean;
  /** a first sync did not reach its end (the transfer failed): a later pass resumes it */
  firstSyncUnfinished?: boolean;
}

export function newStats(): PassStats {
  return {
    scanned: 0, sent: 0, bytes: 0, changes: 0, routine: 0, adopted: 0, pending: 0, changedDuringSend: 0, vanished: 0, problems: 0, symlinksSkipped: 0,
    held: 0, deleted: 0, renamed: 0, repaired: 0, seconds: 0, targetError: null, fenced: false,
  };
}

/** How far a pass is: what the walk found to send so far, and how much of it the destination has. */
export interface Progress {
  scanned: number;
  /** files found to send (new or changed), and their bytes */
  plannedFiles: number;
  plannedBytes: number;
  doneFiles: number;
  doneBytes: number;
  /** the walk is still finding files: the totals may grow */
  walking: boolean;
}

export interface BatchReport {
  files: number;
  bytes: number;
  seconds: number;
  changes: ChangeRow[];
  /** routine RRD updates rolled up (no change row of their own): for the live view on a terminal */
  routine: string[];
  /** paths the destination did not confirm (they wait in the queue for a retry) */
  pending: string[];
  /** paths that changed while being sent (they go again, no backoff: nothing failed) */
  changed: string[];
  error: string | null;
}

/** What a caller (the --once command, the daemon) hears from a target's engine. */
export interface EngineHooks {
  /** after each batch is committed: the live view */
  onBatch?: (b: BatchReport) => void;
  /** every few hundred files and during transfers: for a progress line on a terminal */
  onProgress?: (p: Progress) => void;
}
