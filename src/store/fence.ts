// The fence of a target (issue 23), kept in its state DB's meta table: set when a batch found the standby written
// to (or promoted), read by every command (status, check, metrics, --once, --watch, unfence, failback), lifted only
// by `rrdsync unfence`. One JSON value, written in one statement: a kill -9 leaves it set or not, never half.
import type { StateStore } from "./state.ts";

export const FENCE_KEY = "fence";
/** When the first sync to this target ended (ms): the conflict rule's `settledMs`. */
export const SETTLED_KEY = "replica_settled";
/** Conflicts listed in the record (the log and the change log name every one). */
export const FENCE_SAMPLE = 20;

/** One side of a conflict, for people: size, mtime, and an RRD's last update when it could be read. */
export interface SideNote {
  size: number;
  mtime: string;
  lastUpdate?: string;
}

export interface ConflictNote {
  path: string;
  /** "changed" | "created" | "newer" (engine/policy/conflict.ts) */
  why: string;
  /** the standby's copy */
  replica: SideNote | null;
  /** ours (null: a delete, the source has none) */
  ours: SideNote | null;
}

export interface PromotionNote {
  host: string;
  promotedAt: string;
  user?: string;
  by?: string;
  newest?: { path: string; mtime: string } | null;
  /** the marker is there but could not be read (or is not ours): it counts all the same */
  unreadable?: string;
}

export interface FenceRecord {
  /** when the fence went up (ms) */
  since: number;
  kind: "conflict" | "promoted";
  /** conflicting files found (0 for a promotion, which stops before any file is compared) */
  files: number;
  /** the first of them */
  conflicts: ConflictNote[];
  promotion?: PromotionNote;
  /**
   * a conflict's fence is recorded on the standby too (FENCED_MARKER): false until that marker was written (a run
   * killed in between, a standby that refused it: a later run writes it); absent in a record from before the marker
   */
  onStandby?: boolean;
  /** taken from the standby's fence marker (a new or rebuilt state DB): the host that fenced it, or why it cannot be read */
  standby?: { host: string; unreadable?: string };
}

export function readFence(store: Pick<StateStore, "meta">): FenceRecord | null {
  return store.meta<FenceRecord>(FENCE_KEY);
}

export function writeFence(store: Pick<StateStore, "setMeta">, f: FenceRecord | null): void {
  store.setMeta(FENCE_KEY, f);
}

/** `FENCED since 2026-12-01 03:04:05 (3 files changed on the standby, first: "a.rrd")`, without the time. */
export function fenceSummary(f: FenceRecord): string {
  if (f.kind === "promoted") {
    const p = f.promotion;
    if (p?.unreadable !== undefined) return `the standby holds a promotion marker that cannot be read (${p.unreadable})`;
    return `the standby ${p?.host ?? "?"} was promoted at ${p?.promotedAt ?? "?"}`;
  }
  if (f.standby?.unreadable !== undefined) return `the standby holds a fence marker that cannot be read (${f.standby.unreadable})`;
  const first = f.conflicts[0]?.path;
  return `${f.files} file${f.files === 1 ? "" : "s"} changed on the standby${first === undefined ? "" : `, first: ${JSON.stringify(first)}`}`;
}
