// Pure planning: decide per file whether to send it, and cut the stream of files into bounded batches.
import type { FileState } from "../store/state.ts";
import type { RrdProbe, RrdSummary } from "../track/rrd.ts";

/** What identifies a version of a file without reading it (rsync's quick check, plus the inode for replaced files). */
export interface StatFacts {
  size: number;
  mtimeNs: string;
  ino: string;
}

export type Decision =
  /** new or changed since the destination last confirmed it */
  | "send"
  | "unchanged"
  /** the seed script already synced this version: record it without sending */
  | "adopt";

export function statFacts(st: { size: bigint; mtimeNs: bigint; ino: bigint }): StatFacts {
  return { size: Number(st.size), mtimeNs: st.mtimeNs.toString(), ino: st.ino.toString() };
}

/** The same identity as sameVersion, as one string (the state's bulk-loaded keys compare against it). */
export function versionKey(f: StatFacts): string {
  return `${f.size}:${f.mtimeNs}:${f.ino}`;
}

export function sameVersion(a: StatFacts, b: StatFacts): boolean {
  return a.size === b.size && a.mtimeNs === b.mtimeNs && a.ino === b.ino;
}

// Python's st_mtime is a double: about a quarter microsecond of precision at today's epoch.
const SEED_MTIME_TOLERANCE_S = 1e-6;

export function decide(now: StatFacts, prev: FileState | null): Decision {
  if (prev === null) return "send";
  if (prev.seedMtime !== null && prev.size < 0) {
    // The seed sent a file when its mtime was newer than the recorded one; mirror that rule once.
    const nowS = Number(BigInt(now.mtimeNs) / 1000n) / 1e6;
    return nowS <= prev.seedMtime + SEED_MTIME_TOLERANCE_S ? "adopt" : "send";
  }
  return sameVersion(now, prev) ? "unchanged" : "send";
}

export interface BatchLimits {
  maxFiles: number;
  maxBytes: number;
}

/** Would adding a file of `size` bytes overflow the batch? A batch always takes at least one file. */
export function batchWouldOverflow(batch: { files: number; bytes: number }, size: number, limits: BatchLimits): boolean {
  if (batch.files === 0) return false;
  return batch.files + 1 > limits.maxFiles || batch.bytes + size > limits.maxBytes;
}

/** A file on its way: what the check stage found, handed through send, confirm and audit. */
export interface Planned {
  rel: string;
  abs: string;
  facts: StatFacts;
  prev: FileState | null;
  /** an RRD that still looked damaged after every hold: shipped anyway, flagged in the change log */
  damage?: string;
  /** the header the hold check read, handed on to describe the change (one read per file, not two) */
  probe?: RrdProbe;
  /** verify --repair: why the replica's copy was wrong (the audit records the file as repaired) */
  repair?: string;
  /** first sync: the walk's inode change time (the whole-tree run's outcomes use it) */
  ctimeNs?: bigint;
  /** the previous RRD summary, parsed once (the hold check, the description and the damage check all need it) */
  prevSummary?: RrdSummary | null;
  /** the stat that planned it found holes (fewer blocks than the size needs): the batch goes with --sparse */
  sparse?: boolean;
  /** sent by a first sync: the replica's copy, older than ours, is a pre-seeded one (policy/conflict.ts) */
  replaceable?: boolean;
}
