import { expect, test } from "bun:test";
import type { RrdSummary } from "../../src/track/rrd.ts";
import { isStale, judgeRrdUpdate, treeClock } from "../../src/track/rrd-routine.ts";

// The roll-up rule (issue 25) as a table: which RRD updates are rolled up, which stay entries of their own.
const base: RrdSummary = {
  step: 300,
  ds: [["ifHCInOctets", "COUNTER", 600], ["ifHCOutOctets", "COUNTER", 600]],
  rra: [["AVERAGE", 2016, 1], ["MAX", 1488, 12]],
  last: 1_700_000_000,
  lastDs: ["100", "200"],
};
const next = (d: Partial<RrdSummary>): RrdSummary => ({ ...base, last: base.last + 300, lastDs: ["400", "500"], ...d });

test("the roll-up rule: routine vs structural vs stale/resumed, as a table", () => {
  const rows: Array<[what: string, prev: RrdSummary | null, now: RrdSummary, o: { stale: boolean; damaged: boolean }, verdict: string]> = [
    ["+1 step, same structure", base, next({}), { stale: false, damaged: false }, "routine"],
    ["+3 steps (a late collection), same structure", base, next({ last: base.last + 900 }), { stale: false, damaged: false }, "routine"],
    ["+1 step, values unchanged", base, next({ lastDs: base.lastDs }), { stale: false, damaged: false }, "routine"],
    ["+1 step of an RRD logged as stopped", base, next({}), { stale: true, damaged: false }, "resumed"],
    ["no earlier header recorded", null, next({}), { stale: false, damaged: false }, "entry"],
    ["data source added (rrdtool tune)", base, next({ ds: [...base.ds, ["ifInErrors", "COUNTER", 600]] }), { stale: false, damaged: false }, "entry"],
    ["data source removed", base, next({ ds: [base.ds[0] as [string, string, number]] }), { stale: false, damaged: false }, "entry"],
    ["data source retyped", base, next({ ds: [["ifHCInOctets", "DERIVE", 600], base.ds[1] as [string, string, number]] }), { stale: false, damaged: false }, "entry"],
    ["heartbeat changed", base, next({ ds: [["ifHCInOctets", "COUNTER", 900], base.ds[1] as [string, string, number]] }), { stale: false, damaged: false }, "entry"],
    ["archive resized (rrdtool resize)", base, next({ rra: [["AVERAGE", 4032, 1], ["MAX", 1488, 12]] }), { stale: false, damaged: false }, "entry"],
    ["archive added", base, next({ rra: [...base.rra, ["MIN", 1488, 12]] }), { stale: false, damaged: false }, "entry"],
    ["step changed", base, next({ step: 60 }), { stale: false, damaged: false }, "entry"],
    ["last update unchanged (rewritten, not updated)", base, next({ last: base.last }), { stale: false, damaged: false }, "entry"],
    ["last update went backwards (restored from a backup)", base, next({ last: base.last - 300 }), { stale: false, damaged: false }, "entry"],
    ["+1 step but the file looks torn", base, next({}), { stale: false, damaged: true }, "entry"],
    ["stopped, then resumed with a structure change", base, next({ step: 60 }), { stale: true, damaged: false }, "entry"],
  ];
  for (const [what, prev, now, o, verdict] of rows) expect([what, judgeRrdUpdate(prev, now, o)]).toEqual([what, verdict]);
});

test("stale: more than rrd_stale_steps of its own steps behind the tree's clock, never judged without one", () => {
  const now = 1_700_010_000;
  const rows: Array<[what: string, last: number, step: number, clock: number | null, steps: number, stale: boolean]> = [
    ["current", now - 300, 300, now, 3, false],
    ["exactly 3 steps behind", now - 900, 300, now, 3, false],
    ["more than 3 steps behind", now - 901, 300, now, 3, true],
    ["a 60 s RRD 4 steps behind", now - 240, 60, now, 3, true],
    ["behind, but no routine update seen (collection stopped as a whole)", now - 90_000, 300, null, 3, false],
    ["behind, but rrd_stale_steps 0 (off)", now - 90_000, 300, now, 0, false],
  ];
  for (const [what, last, step, clock, steps, stale] of rows) expect([what, isStale(last, step, clock, steps)]).toEqual([what, stale]);
  // the tree's clock is the newest routine update, never ahead of the wall clock (an RRD with a future timestamp)
  expect(treeClock(now - 20, now)).toBe(now - 20);
  expect(treeClock(now + 86_400, now)).toBe(now);
  expect(treeClock(null, now)).toBeNull();
});
