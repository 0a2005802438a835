// The status record: the few facts `rrdsync status` (and monitoring) reads about a target, written by the engine
// into the state DB's meta table. One type for both sides.

export interface StatusRecord {
  /** the last full pass (--once, or the daemon's initial pass and rescans) */
  lastPass?: { time: number; seconds: number; scanned: number; sent: number; pending: number; problems: number };
  /** the last batch the destination confirmed */
  lastBatch?: { time: number; files: number; bytes: number };
  lastError?: { time: number; message: string };
  /** the target has been failing since (absent: reachable) */
  downSince?: number;
  /** the daemon found the source directory gone (moved away, unmounted) at this time: nothing is replicated */
  sourceMissing?: number;
  /** files the destination has not confirmed yet, and the first of them */
  pending?: number;
  pendingSample?: string[];
}

/** An update: a key set to undefined is left as it is, null removes it. */
export type StatusUpdate = { [K in keyof StatusRecord]?: StatusRecord[K] | null };

/** The meta key of a sliced first sync in progress (engine/first-sync.ts FirstSyncRecord). */
export const FIRST_SYNC_KEY = "first_sync";
