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
  /** the first pending files with when each became pending (kept across runs: the oldest time wins) */
  pendingFiles?: Array<{ path: string; since: number }>;
  /** counters since the state DB was made (monitoring's `_total` metrics: they only grow) */
  totals?: Partial<Totals>;
  /** the last `rrdsync verify` of this target: what it checked and found */
  lastVerify?: VerifyRecord;
  /**
   * the replica lag as the engine last computed it (after a full pass, and in the daemon after its batches): what
   * `status` shows for a tree too large to stat every RRD of on each call
   */
  lag?: RecordedLag;
}

/** The replica lag's figures (engine/lag.ts ReplicaLag) with the time they were taken. */
export interface RecordedLag {
  time: number;
  rrds: number;
  behind: number;
  maxSeconds: number;
  medianSeconds: number;
  estimated: number;
}

export interface Totals {
  filesTransferred: number;
  /** the confirmed files' sizes */
  bytesTransferred: number;
  /** bytes on the wire: rsync's own count, or the SFTP writes */
  bytesSent: number;
  filesDeleted: number;
  filesRenamed: number;
  filesRepaired: number;
  /** batches (and deletes, moves) the standby failed as a whole, files it refused, audit gaps */
  errors: number;
}

/** What a verify found: drift by kind (differences rrdsync did not know of), and the differences it knew of. */
export interface VerifyCounts {
  differs: number;
  missing: number;
  newer: number;
  extra: number;
  /** files that could not be compared */
  errors: number;
  /** differences rrdsync knew of (pending changes, kept deleted files): not drift */
  known: number;
}

export interface VerifyRecord extends VerifyCounts {
  time: number;
  seconds: number;
  checked: number;
  /** the random share checked (--sample), as a percentage; null: every file (of `pattern`) */
  sample: number | null;
  pattern: string | null;
  /** --repair: files sent again and confirmed, and those that could not be */
  repaired: number;
  repairFailed: number;
  /** the check could not be completed */
  error: string | null;
}

/** An update: a key set to undefined is left as it is, null removes it. */
export type StatusUpdate = { [K in keyof StatusRecord]?: StatusRecord[K] | null };

/** The meta key of a sliced first sync in progress (engine/first-sync.ts FirstSyncRecord). */
export const FIRST_SYNC_KEY = "first_sync";
