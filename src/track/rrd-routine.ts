// The roll-up rule (issue 25): which RRD changes are routine (rolled up into the file's row and an hourly summary)
// and which stay change-log entries of their own. Pure: summaries and times in, a verdict out.
import { type RrdSummary, structureChanges } from "./rrd.ts";

/**
 * - routine: same structure, last update moved forward (every RRD, once per collection step): no entry of its own
 * - resumed: a routine update of an RRD that had been logged as stopped: an entry ("resumed")
 * - entry: anything else (no earlier header, structure changed, last update unchanged or backwards, damaged)
 */
export type RrdVerdict = "routine" | "resumed" | "entry";

export function judgeRrdUpdate(prev: RrdSummary | null, now: RrdSummary, o: { stale: boolean; damaged: boolean }): RrdVerdict {
  if (prev === null || o.damaged) return "entry";
  if (!(now.last > prev.last)) return "entry";
  if (structureChanges(prev, now).length > 0) return "entry";
  return o.stale ? "resumed" : "routine";
}

/**
 * The tree's clock for stale RRDs: the newest last update that routine updates brought in, never ahead of the wall
 * clock (an RRD written with a future timestamp must not make every other one look stale); null while no routine
 * update was seen (collection as a whole stopped, or rrdsync just started): then nothing is judged stale.
 */
export function treeClock(newestRoutineLast: number | null, wallSeconds: number): number | null {
  return newestRoutineLast === null ? null : Math.min(newestRoutineLast, wallSeconds);
}

/** An RRD stopped updating: its last update is more than `staleSteps` of its steps behind the tree's clock. */
export function isStale(last: number, step: number, clock: number | null, staleSteps: number): boolean {
  return clock !== null && staleSteps > 0 && step > 0 && last < clock - staleSteps * step;
}

/** The newest last update below which an RRD of this step counts as stale (for one SQL scan per check). */
export function staleBefore(step: number, clock: number, staleSteps: number): number {
  return clock - staleSteps * step;
}
