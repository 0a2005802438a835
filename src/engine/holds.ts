// RRD holds: a damaged-looking RRD (mid-write, truncated, forged, time going backwards) must not overwrite the
// replica's good copy. It is held back and looked at again later; after the configured holds it ships anyway,
// flagged. The count lives on the file's pending record.
import { RRD_NAME, readRrdProbe } from "../track/rrd-read.ts";
import { parseSummary, rrdDamage } from "../track/rrd.ts";
import type { Planned } from "./plan.ts";

export type HoldVerdict =
  /** whole (or not an RRD, or unreadable: the transfer reports that) */
  | { kind: "go" }
  /** looks torn: look again after the delay; `n` of `attempts` holds */
  | { kind: "hold"; n: number; damage: string }
  /** still looks torn after every hold: it ships, flagged (`p.damage` is set) */
  | { kind: "ship-flagged" };

/** Pure: what to do with a file that looks like this after `holdsSoFar` holds. */
export function holdDecision(damage: string | null, holdsSoFar: number, attempts: number): HoldVerdict {
  if (damage === null) return { kind: "go" };
  if (holdsSoFar + 1 > attempts) return { kind: "ship-flagged" };
  return { kind: "hold", n: holdsSoFar + 1, damage };
}

/**
 * Reads the RRD's header (kept on `p` for describing the change: one read per file) and decides. A file shipped
 * flagged gets `p.damage` set, which the audit turns into an ERROR entry.
 */
export function checkHold(p: Planned, holdsSoFar: number, attempts: number): HoldVerdict {
  if (attempts === 0 || !RRD_NAME.test(p.rel)) return { kind: "go" };
  let damage: string | null;
  try {
    if (p.prevSummary === undefined) p.prevSummary = parseSummary(p.prev?.rrd);
    const prev = p.prevSummary;
    p.probe = readRrdProbe(p.abs);
    damage = rrdDamage(p.probe, p.facts.size, prev);
  } catch {
    return { kind: "go" }; // unreadable or gone: the transfer reports it
  }
  const v = holdDecision(damage, holdsSoFar, attempts);
  if (v.kind === "ship-flagged") p.damage = `${damage} (still so after ${attempts} hold${attempts === 1 ? "" : "s"})`;
  return v;
}
