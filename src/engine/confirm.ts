// The confirm step, pure: a batch's per-file outcomes (and each file as it is now) in, one verdict per file out.
// A file is recorded only when the destination confirmed it AND it is still the version that was sent; any doubt
// leaves it pending. Nothing here sends, logs or writes: the pass acts on the verdicts.
import { RRD_NAME } from "../track/rrd-read.ts";
import type { BatchResult } from "../transport/types.ts";
import type { Described } from "./describe.ts";
import { type Planned, sameVersion, type StatFacts } from "./plan.ts";

export type Verdict =
  /** on the replica, as sent: record it (audit + state) */
  | { kind: "record"; f: Planned; d: Described | undefined }
  /** not confirmed: stays pending; `reason` for the log */
  | { kind: "pending"; f: Planned; d: Described | undefined; reason: string }
  /** gone from the source before or while it was sent: nothing to record, not a failure */
  | { kind: "vanished"; f: Planned; d: Described | undefined; before: boolean }
  /** the destination has a version, but the file moved on meanwhile: not ours to record, it goes again */
  | { kind: "changed"; f: Planned; d: Described | undefined }
  /** a whole-tree run could not vouch for it: send it again at once in a list batch (exact outcomes) */
  | { kind: "resend"; f: Planned; d: Described | undefined }
  /** the whole-tree run took an RRD that looks torn: not recorded, it goes through the holds */
  | { kind: "rehold"; f: Planned; d: Described | undefined };

export interface ConfirmInput {
  files: Planned[];
  result: BatchResult;
  /** the description made during the transfer (taken: each is handed out once) */
  described: (rel: string) => Described | undefined;
  /** the file as it is now, or null if it is gone; used only when the transport did not say what it read */
  statNow: (f: Planned) => StatFacts | null;
  /** rrd_hold.attempts > 0 */
  holdsOn: boolean;
}

export function confirmBatch(i: ConfirmInput): Verdict[] {
  const out: Verdict[] = [];
  for (const f of i.files) {
    const outcome = i.result.outcomes.get(f.rel);
    const d = i.described(f.rel);
    if (outcome === undefined || !outcome.ok) {
      if (outcome?.vanished) out.push({ kind: "vanished", f, d, before: true });
      else if (outcome?.resend) out.push({ kind: "resend", f, d });
      else out.push({ kind: "pending", f, d, reason: outcome?.reason ?? i.result.error ?? "not confirmed by the destination" });
      continue;
    }
    // The destination has the version the transport read; if the file moved on meanwhile, that version is not
    // the one we planned (and described): recording it would claim a version the replica may not hold.
    const now = outcome.seen ?? i.statNow(f);
    if (now === null) {
      out.push({ kind: "vanished", f, d, before: false });
      continue;
    }
    if (!sameVersion(now, f.facts)) {
      out.push({ kind: "changed", f, d });
      continue;
    }
    const rec = d?.rec;
    if (rec && !(rec instanceof Error) && rec.damage && !f.damage && RRD_NAME.test(f.rel) && i.holdsOn) {
      out.push({ kind: "rehold", f, d });
      continue;
    }
    out.push({ kind: "record", f, d });
  }
  return out;
}
