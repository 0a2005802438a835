// `rrdsync unfence --overwrite | --keep-replica` for one fenced target: every file the standby changed behind
// rrdsync is settled in the chosen way (engine/guard.ts's modes), then one full pass sends what changed here
// meanwhile, and only when both went through is the fence lifted. A kill -9 anywhere leaves the target fenced
// (the fence is lifted last); running unfence again settles what is left. A standby still marked as promoted is
// refused: unfencing cannot undo a promotion (rrdsync failback, or re-pointing). So is a fence found on the standby
// (its marker) by a new or rebuilt state DB: it cannot tell the standby's changes from older copies.
import { keptDirFor } from "../transport/marker.ts";
import { Pass } from "./pass.ts";
import type { TargetEngine } from "./target.ts";
import type { PassStats } from "./types.ts";

export type UnfenceHow = "overwrite" | "keep";

export interface UnfenceReport {
  /** settled: the standby's copies kept aside and ours written (overwrite), or the standby's versions taken (keep) */
  kept: number;
  accepted: number;
  /** where the kept copies are, relative to the destination (overwrite) */
  keptDir: string | null;
  /** the settling pass and the full pass */
  stats: PassStats[];
  /** the fence is lifted */
  lifted: boolean;
  /** why not: the standby is still promoted, or could not be reached */
  refused: string | null;
  /**
   * refused because the fence was found on the standby (its marker) by a state DB that knows nothing delivered
   * (new or rebuilt): it cannot tell which files the standby changed, so it cannot keep or take them
   */
  blind: boolean;
  error: string | null;
}

export async function unfenceTarget(engine: TargetEngine, how: UnfenceHow, signal?: AbortSignal, now = new Date()): Promise<UnfenceReport> {
  const { guard, transport } = engine.ctx;
  const report: UnfenceReport = { kept: 0, accepted: 0, keptDir: null, stats: [], lifted: false, refused: null, blind: false, error: null };
  const contact = await transport.replicaState([], signal);
  if (contact.error !== undefined) return { ...report, error: contact.error };
  if (contact.marker !== null) {
    return { ...report, refused: "the standby is still marked as promoted: unfencing cannot undo a promotion" };
  }
  if (contact.fence !== null && guard.fenced?.standby !== undefined && !guard.knowsDeliveries) {
    // A first sync would replace every standby copy not newer than ours, unkept: the standby's rows written in the
    // same minutes as ours would go. Only the state DB that fenced it knows which files the standby changed.
    return { ...report, blind: true, refused: "the fence was found on the standby by a state DB that knows nothing rrdsync delivered there (new or rebuilt): it cannot tell which files the standby changed" };
  }
  guard.suspend();
  guard.mode = how === "overwrite" ? { kind: "overwrite", keptDir: keptDirFor(now), by: "unfence --overwrite" } : { kind: "keep", by: "unfence --keep-replica" };
  report.keptDir = how === "overwrite" ? guard.mode.kind === "overwrite" ? guard.mode.keptDir : null : null;
  const settled = await new Pass(engine.ctx, signal).settleReplica();
  report.stats.push(settled);
  if (settled.targetError === null && !settled.fenced && settled.pending === 0 && !signal?.aborted) report.stats.push(await engine.runPass(signal));
  report.kept = guard.resolved.kept;
  report.accepted = guard.resolved.accepted;
  const failed = report.stats.find((s) => s.targetError !== null || s.fenced);
  // The settling pass sends only the files the standby changed: one still pending there was not settled (its copy
  // could not be kept aside, or ours not written), so the standby still holds a version rrdsync did not deliver.
  const unsettled = settled.pending;
  const settledAll = failed === undefined && unsettled === 0 && report.stats.length === 2 && !signal?.aborted;
  // the standby's fence marker goes first: lift() keeps the fence when it cannot be removed
  const unmarked = settledAll ? await guard.lift(signal) : null;
  if (settledAll && unmarked === null) {
    report.lifted = true;
  } else if (unmarked !== null) {
    report.error = unmarked;
  } else {
    report.error = failed?.targetError ?? (failed?.fenced ? "the standby was marked as promoted meanwhile"
      : unsettled > 0 ? `${unsettled} of the files the standby changed could not be settled (named in the log)` : "interrupted");
  }
  guard.mode = { kind: "fence" };
  return report;
}
