// Pure: is the file on the replica the one rrdsync delivered there? The conflict rule of issue 23, one table
// (test/unit/conflict.test.ts). A file whose replica copy is not a version rrdsync put there (changed, replaced,
// or created on the standby) is a conflict: it is never overwritten, deleted or renamed over, and it fences the
// target. No node:/bun imports: the engine asks the transport what the replica holds and decides here.

import type { ReplicaFile, Version } from "../../transport/types.ts";

export type { ReplicaFile, Version };

/** What the engine is about to do with the file on the replica. */
export type Op = "write" | "delete" | "move-from" | "move-to";

export interface Known {
  /** the version the standby confirmed last (the state row); null: no row, or the seed script's row */
  delivered: Version | null;
  /** the seed script's row: the mtime (seconds) it recorded when it sent the file */
  seedMtime?: number | null;
  /**
   * other versions the replica may hold: sent but not confirmed (a kill -9 between the transfer and the commit),
   * moved there, or taken as the truth by `unfence --keep-replica`; with `uptoNs`, any version (any size) whose
   * mtime lies from `mtimeNs` to `uptoNs`: the file changed while it was sent, and the transfer read one of them
   */
  also?: Array<Version & { uptoNs?: bigint }>;
  /** the source's version that would be written (write, move-to); null for a delete or a move's old name */
  source: Version | null;
  /**
   * when the first sync to this target ended (ms; null while it has not): what the replica held from before then
   * (a pre-seeded copy, or a version a first sync's whole-tree run took) is not the standby's own writing
   */
  settledMs: number | null;
  /**
   * the replica's copy may be replaced unless it is newer than ours: a first sync under way (an older copy is a
   * pre-seeded one), or a file `verify --repair` found wrong
   */
  replaceable?: boolean;
}

export type Judgement =
  | { ok: true; why: "absent" | "not a file" | "delivered" | "same as ours" | "the seed's" | "from before the first sync" | "replaceable" }
  | { ok: false; why: Conflict };

/**
 * changed: rrdsync delivered this file, and the replica's copy is no longer that version;
 * created: rrdsync never delivered it, and a copy appeared there after the first sync;
 * newer: rrdsync never delivered it, and the replica's copy is newer than ours.
 */
export type Conflict = "changed" | "created" | "newer";

/** The words for a conflict, the same in the log, the change log, `status`, `unfence` and `verify`. */
export const CONFLICT_WORDS: Record<Conflict, string> = {
  changed: "changed on the standby since rrdsync delivered it",
  created: "created on the standby, where rrdsync never delivered it",
  newer: "newer on the standby than ours, and never delivered by rrdsync",
};

const NS = 1_000_000_000n;

/**
 * The replica's mtime is ours, at the precision the transport delivered: rsync -a keeps nanoseconds where both
 * ends can, utimes() keeps microseconds, SFTP whole seconds, a coarse file system what it has. The precision is
 * read from the replica's value itself (a fraction of exactly 0 is whole seconds), so no transport has to say.
 */
export function sameMtime(replicaNs: bigint, oursNs: bigint): boolean {
  if (replicaNs === oursNs) return true;
  const unit = unitOf(replicaNs);
  return unit > 1n && replicaNs === floorTo(oursNs, unit);
}

/** replica's mtime is later than ours, compared at the replica's precision */
export function newerThan(replicaNs: bigint, oursNs: bigint): boolean {
  return replicaNs > floorTo(oursNs, unitOf(replicaNs));
}

function unitOf(ns: bigint): bigint {
  const frac = ((ns % NS) + NS) % NS;
  if (frac === 0n) return NS;
  if (frac % 1_000_000n === 0n) return 1_000_000n;
  if (frac % 1_000n === 0n) return 1_000n;
  return 1n;
}

function floorTo(ns: bigint, unit: bigint): bigint {
  return ns - (((ns % unit) + unit) % unit);
}

export function sameVersionOnReplica(r: Version, v: Version): boolean {
  return r.size === v.size && sameMtime(r.mtimeNs, v.mtimeNs);
}

// Python's st_mtime is a double: about a quarter microsecond at today's epoch (as plan.ts reads the seed's rows).
const SEED_TOLERANCE_NS = 1_000n;

/** The decision for one file (see the table in test/unit/conflict.test.ts and the README's Failover and failback). */
export function judgeReplica(op: Op, known: Known, replica: ReplicaFile): Judgement {
  if (replica.kind === "absent") return { ok: true, why: "absent" };
  // A symlink or directory where a file belongs is nobody's data: rsync and SFTP replace a symlink (its target
  // is never written through) and fail on a directory.
  if (replica.kind === "other") return { ok: true, why: "not a file" };
  const r: Version = replica;
  if (known.delivered !== null && sameVersionOnReplica(r, known.delivered)) return { ok: true, why: "delivered" };
  if (known.also?.some((v) => (v.uptoNs === undefined ? sameVersionOnReplica(r, v) : r.mtimeNs >= floorTo(v.mtimeNs, unitOf(r.mtimeNs)) && r.mtimeNs <= v.uptoNs))) {
    return { ok: true, why: "delivered" };
  }
  // Exactly what would be written is there already (a move done before a crash, a copy made by hand): to the
  // nanosecond only. At a coarser precision (SFTP's whole seconds) the standby's own write in the same second as
  // our newest version would pass for it; the versions rrdsync may have put there are noted instead (`also`).
  if ((op === "write" || op === "move-to") && known.source !== null && r.size === known.source.size && r.mtimeNs === known.source.mtimeNs) {
    return { ok: true, why: "same as ours" };
  }
  const notNewer = known.source === null || !newerThan(r.mtimeNs, known.source.mtimeNs);
  if (known.delivered === null && known.seedMtime != null && r.mtimeNs <= BigInt(Math.round(known.seedMtime * 1e9)) + SEED_TOLERANCE_NS) {
    return { ok: true, why: "the seed's" };
  }
  if (known.settledMs !== null && r.mtimeNs <= BigInt(known.settledMs) * 1_000_000n && notNewer) return { ok: true, why: "from before the first sync" };
  if (known.replaceable && notNewer) return { ok: true, why: "replaceable" };
  if (known.delivered !== null) return { ok: false, why: "changed" };
  return { ok: false, why: known.source !== null && !notNewer ? "newer" : "created" };
}
