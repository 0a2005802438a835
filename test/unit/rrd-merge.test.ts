// The merge rule of issue 26 as a table, on files the real rrdtool made and updated, checked row by row against
// `rrdtool fetch` of both inputs for every archive (AVERAGE, MAX, MIN, LAST), three data sources, archives that
// wrapped around; the live state against `rrdtool info`; then `rrdtool update` goes on on the merged file exactly as
// on the newer side.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type MergeStats, mergeRrd, type Side } from "../../src/track/rrd-merge.ts";
import { fetchRows, infoField, infoLines, rrdtool, updates } from "../helpers/rrdtool.ts";

// Each test runs rrdtool (create, update, fetch) a few dozen times: a loaded 2-core CI machine took over 5 s.
setDefaultTimeout(30_000);

const dir = mkdtempSync(join(tmpdir(), "rrdsync-merge-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const at = (name: string) => join(dir, name);

const STEP = 300;
/** a multiple of every archive's period (300, 900 s), so row times are round */
const T0 = 1_700_000_100;
const t = (i: number) => T0 + STEP * i;
const DS = ["DS:in:COUNTER:600:0:U", "DS:out:DERIVE:600:0:U", "DS:temp:GAUGE:600:-50:150"];
const RRAS: Array<[cf: string, steps: number, rows: number]> = [
  ["AVERAGE", 1, 40],
  ["MAX", 3, 20],
  ["MIN", 3, 20],
  ["LAST", 1, 12],
];

function create(name: string, dsList = DS, rras = RRAS, step = STEP): string {
  const f = at(name);
  rmSync(f, { force: true });
  rrdtool(["create", f, "--start", String(T0), "--step", String(step), ...dsList, ...rras.map(([cf, s, r]) => `RRA:${cf}:0.5:${s}:${r}`)]);
  return f;
}

/** What a device reports at step i: counters that grow, a temperature that wobbles; `side` skews a poller's view. */
const sample = (i: number, side = 0): Array<number | "U"> => [1000 * i + 37 * side * i, 500 * i + (i % 4) * 11 + side * 3 * i, 20 + (i % 7) + side / 2];

async function write(f: string, from: number, to: number, side = 0): Promise<void> {
  const list: Array<[string, number, Array<number | "U">]> = [];
  for (let i = from; i <= to; i++) list.push([f, t(i), sample(i, side)]);
  await updates(list);
}

function merge(a: string, b: string, out: string, opts: { prefer?: Side } = {}): MergeStats {
  const r = mergeRrd(readFileSync(a), readFileSync(b), { ...opts, names: ["a", "b"] });
  if (r.kind !== "merged") throw new Error(r.reason);
  writeFileSync(out, r.out);
  return r.stats;
}

const lastUp = (f: string) => Number(infoField(f, "last_update"));

/**
 * Every row of every archive of `out`, against `rrdtool fetch` of both inputs: the one known value, or the winner's
 * where both are known, or unknown. Returns the per-archive counts the fetches imply (to hold the stats against).
 */
function expectRule(a: string, b: string, out: string, winner: Side) {
  const end = Math.max(lastUp(a), lastUp(b));
  return RRAS.map(([cf, steps, rows]) => {
    const period = steps * STEP;
    const last = end - (end % period);
    const ra = fetchRows(a, cf, period, rows, last);
    const rb = fetchRows(b, cf, period, rows, last);
    const ro = fetchRows(out, cf, period, rows, last);
    const counts = { cf, rows, pdpPerRow: steps, onlyA: 0, onlyB: 0, both: 0, differ: 0, neither: 0 };
    ro.forEach(([time, got], k) => {
      const va = ra[k]?.[1] as string[];
      const vb = rb[k]?.[1] as string[];
      let onlyA = false;
      let onlyB = false;
      let both = false;
      let differ = false;
      const want = got.map((_, i) => {
        const x = va[i] as string;
        const y = vb[i] as string;
        if (x !== "nan" && y !== "nan") {
          both = true;
          if (x !== y) differ = true;
          return winner === "a" ? x : y;
        }
        if (x !== "nan") onlyA = true;
        if (y !== "nan") onlyB = true;
        return x !== "nan" ? x : y;
      });
      expect({ cf, time, values: got }).toEqual({ cf, time, values: want });
      counts.onlyA += onlyA ? 1 : 0;
      counts.onlyB += onlyB ? 1 : 0;
      counts.both += both ? 1 : 0;
      counts.differ += differ ? 1 : 0;
      counts.neither += !onlyA && !onlyB && !both ? 1 : 0;
    });
    return counts;
  });
}

/** The fetches must show each kind of slot at least once, or the scenario would not test the rule. */
function expectEveryKind(counts: ReturnType<typeof expectRule>, kinds: Array<"onlyA" | "onlyB" | "both" | "differ">) {
  for (const k of kinds) expect({ kind: k, rows: counts.reduce((s, c) => s + c[k], 0) > 0 }).toEqual({ kind: k, rows: true });
}

/** Then the same updates on the merged file and on (a copy of) the newer side: rrdtool must see the same file. */
async function expectUpdatesContinue(older: string, newer: string, out: string, from: number, to: number) {
  const newer2 = `${newer}.then`;
  copyFileSync(newer, newer2);
  await write(newer2, from, to, 1);
  await write(out, from, to, 1);
  expect(infoLines(out)).toEqual(infoLines(newer2));
  expect(rrdtool(["lastupdate", out])).toBe(rrdtool(["lastupdate", newer2]));
  // Rows written since are the newer side's; rows from before are still the merge's.
  expectRule(older, newer2, out, "b");
}

describe("the rule per slot, as a table (two files made apart, every archive: AVERAGE, MAX, MIN, LAST)", () => {
  // One GAUGE updated on the step: each row holds the value given at its time, or unknown for "U".
  const ONE = ["DS:v:GAUGE:600:U:U"];
  const EVERY: Array<[string, number, number]> = [["AVERAGE", 1, 30], ["MAX", 1, 30], ["MIN", 1, 30], ["LAST", 1, 30]];
  const b = at("table-b.rrd");
  const byNewer = at("table-m.rrd");
  const byA = at("table-ma.rrd");
  beforeAll(async () => {
    const a = create("table-a.rrd", ONE, EVERY); // the older side: steps 1–20
    create("table-b.rrd", ONE, EVERY); // the newer side: steps 1–26, its own ring position
    const va = (i: number): number | "U" => ([5, 6, 7, 8].includes(i) ? "U" : i);
    const vb = (i: number): number | "U" => ([7, 12, 24].includes(i) ? "U" : 1000 + i);
    await updates(Array.from({ length: 20 }, (_, k) => [a, t(k + 1), [va(k + 1)]] as [string, number, Array<number | "U">]));
    await updates(Array.from({ length: 26 }, (_, k) => [b, t(k + 1), [vb(k + 1)]] as [string, number, Array<number | "U">]));
    merge(a, b, byNewer);
    merge(a, b, byA, { prefer: "a" });
  });
  const row = (f: string, cf: string, i: number) => fetchRows(f, cf, STEP, 1, t(i))[0]?.[1][0];
  const num = (v: number) => v.toExponential(10).replace(/e\+(\d)$/, "e+0$1");

  test.each([
    ["known in both: the newer side's", 3, num(1003), num(3)],
    ["unknown in a, known in b", 6, num(1006), num(1006)],
    ["known in a, unknown in b", 12, num(12), num(12)],
    ["unknown in both", 7, "nan", "nan"],
    ["after a's last update (outside its range), known in b", 23, num(1023), num(1023)],
    ["after a's last update, unknown in b", 24, "nan", "nan"],
  ])("%s (step %d)", (_, step, want, wantPreferA) => {
    for (const [cf] of EVERY) {
      expect({ cf, step, got: row(byNewer, cf, step) }).toEqual({ cf, step, got: want });
      expect({ cf, step, prefer: "a", got: row(byA, cf, step) }).toEqual({ cf, step, prefer: "a", got: wantPreferA });
    }
  });

  test("the live state is the newer side's, with or without --prefer", () => {
    expect(infoLines(byNewer)).toEqual(infoLines(b));
    expect(infoLines(byA)).toEqual(infoLines(b));
  });
});

describe("merge rule (rrdtool-made files, checked with rrdtool fetch/info)", () => {
  test("failover: the old primary's unreplicated rows fill the standby's gap; the standby's newer rows and live state win", async () => {
    const primary = create("p1.rrd");
    await write(primary, 1, 50);
    const standby = at("s1.rrd");
    copyFileSync(primary, standby); // replicated up to step 50
    await write(primary, 51, 58); // never replicated: the primary dies
    await write(standby, 63, 75); // promoted: a gap (heartbeat passed), then its own rows
    const out = at("m1.rrd");
    const stats = merge(primary, standby, out);
    expect(stats.liveFrom).toBe("b");
    expect(stats.winner).toBe("b");
    const counts = expectRule(primary, standby, out, "b");
    expect(stats.archives).toEqual(counts);
    expectEveryKind(counts, ["onlyA", "onlyB", "both"]);
    // The live state is the standby's, byte for byte as rrdtool reports it (last update, last_ds, PDP/CDP, cur_row).
    expect(infoLines(out)).toEqual(infoLines(standby));
    // The LAST archive (12 rows) and AVERAGE (40) wrapped: the primary's rows 51–58 survive only where in range.
    expect(Number(infoField(out, "rra[3].cur_row"))).toBe(Number(infoField(standby, "rra[3].cur_row")));
    await expectUpdatesContinue(primary, standby, out, 76, 90);
  });

  test("split brain: both sides wrote the same slots with different values — the newer side wins, or --prefer's", async () => {
    const p = create("p2.rrd");
    await write(p, 1, 40);
    const s = at("s2.rrd");
    copyFileSync(p, s);
    await write(p, 41, 55, 0); // both poll the device during the split, each its own view
    await write(s, 41, 60, 1);
    const newer = at("m2.rrd");
    const stats = merge(p, s, newer);
    expect([stats.liveFrom, stats.winner]).toEqual(["b", "b"]);
    const counts = expectRule(p, s, newer, "b");
    expect(stats.archives).toEqual(counts);
    expectEveryKind(counts, ["both", "differ", "onlyB"]);

    const preferA = at("m2a.rrd");
    const statsA = merge(p, s, preferA, { prefer: "a" });
    expect([statsA.liveFrom, statsA.winner]).toEqual(["b", "a"]);
    expect(statsA.archives).toEqual(expectRule(p, s, preferA, "a"));
    // --prefer picks values only: the live state is still the newer side's.
    expect(infoLines(preferA)).toEqual(infoLines(s));
  });

  test("files made apart (rings rotated differently), disjoint history: slots aligned by time, not by index", async () => {
    let a = create("a3.rrd");
    let b = create("b3.rrd");
    // rrdtool starts each ring at a random row: make sure these two really are rotated differently.
    for (let k = 0; k < 20 && RRAS.every((_, j) => infoField(a, `rra[${j}].cur_row`) === infoField(b, `rra[${j}].cur_row`)); k++) b = create("b3.rrd");
    expect(RRAS.some((_, j) => infoField(a, `rra[${j}].cur_row`) !== infoField(b, `rra[${j}].cur_row`))).toBe(true);
    await write(a, 1, 30);
    await write(b, 36, 55);
    const out = at("m3.rrd");
    const stats = merge(a, b, out);
    const counts = expectRule(a, b, out, "b");
    expect(stats.archives).toEqual(counts);
    expectEveryKind(counts, ["onlyA", "onlyB"]);
    expect(infoLines(out)).toEqual(infoLines(b));
    await expectUpdatesContinue(a, b, out, 56, 70);
    a = create("a3.rrd"); // the older side given second: the same rule, the live state from a
    await write(a, 1, 45);
    const out2 = at("m3b.rrd");
    const stats2 = merge(a, b, out2);
    expect(stats2.liveFrom).toBe("b");
    const swapped = merge(b, a, at("m3c.rrd"));
    expect([swapped.liveFrom, swapped.winner]).toEqual(["a", "a"]);
    expect(swapped.archives).toEqual(expectRule(b, a, at("m3c.rrd"), "a"));
    expect(infoLines(at("m3c.rrd"))).toEqual(infoLines(b));
  });

  test("the same last update on both sides: a counts as the newer (live state and wins); --prefer b takes b's values", async () => {
    const a = create("a4.rrd");
    await write(a, 1, 20);
    const b = at("b4.rrd");
    copyFileSync(a, b);
    await write(a, 21, 30, 0);
    await write(b, 21, 30, 1);
    const out = at("m4.rrd");
    const stats = merge(a, b, out);
    expect([stats.liveFrom, stats.winner]).toEqual(["a", "a"]);
    expect(stats.archives).toEqual(expectRule(a, b, out, "a"));
    expect(infoLines(out)).toEqual(infoLines(a));
    const outB = at("m4b.rrd");
    const statsB = merge(a, b, outB, { prefer: "b" });
    expect([statsB.liveFrom, statsB.winner]).toEqual(["a", "b"]);
    expect(statsB.archives).toEqual(expectRule(a, b, outB, "b"));
  });

  test("a side whose rows all lie before the other's window adds nothing; a file merged with itself is itself, byte for byte", async () => {
    const a = create("a5.rrd");
    await write(a, 1, 10);
    const b = at("b5.rrd");
    copyFileSync(a, b);
    await write(b, 80, 130);
    const out = at("m5.rrd");
    const stats = merge(a, b, out);
    expect(stats.archives.every((c) => c.onlyA === 0 && c.both === 0)).toBe(true);
    expect(readFileSync(out).equals(readFileSync(b))).toBe(true);
    const self = mergeRrd(readFileSync(b), readFileSync(b));
    expect(self.kind === "merged" && self.out.equals(readFileSync(b))).toBe(true);
  });

  test("a tuned setting (heartbeat) differs: merged with the newer side's settings, and said so", async () => {
    const a = create("a6.rrd");
    await write(a, 1, 10);
    const b = at("b6.rrd");
    copyFileSync(a, b);
    rrdtool(["tune", b, "--heartbeat", "temp:1200"]);
    await write(b, 11, 20);
    const r = mergeRrd(readFileSync(a), readFileSync(b), { names: ["a", "b"] });
    if (r.kind !== "merged") throw new Error(r.reason);
    expect(r.stats.notes).toEqual(["DS temp heartbeat 600 vs 1200"]);
    const out = at("m6.rrd");
    writeFileSync(out, r.out);
    expect(infoField(out, "ds[temp].minimal_heartbeat")).toBe("1200");
  });
});

describe("different structures are refused, naming the difference", () => {
  const base = async (name: string, dsList = DS, rras = RRAS, step = STEP) => {
    const f = create(name, dsList, rras, step);
    await write(f, 1, 3);
    return readFileSync(f);
  };
  const refusal = (a: Buffer, b: Buffer) => {
    const r = mergeRrd(a, b, { names: ["a.rrd", "b.rrd"] });
    return r.kind === "refused" ? r.reason : "merged";
  };

  test.each([
    ["step", () => create("x.rrd", DS, RRAS, 60), "step 300 s vs 60 s"],
    ["a data source renamed", () => create("x.rrd", ["DS:in:COUNTER:600:0:U", "DS:errors:DERIVE:600:0:U", "DS:temp:GAUGE:600:-50:150"]), "data source 1 is out vs errors"],
    ["a data source retyped", () => create("x.rrd", ["DS:in:COUNTER:600:0:U", "DS:out:COUNTER:600:0:U", "DS:temp:GAUGE:600:-50:150"]), "data source out is DERIVE vs COUNTER"],
    ["a data source fewer", () => create("x.rrd", DS.slice(0, 2)), "3 vs 2 data sources (in,out,temp vs in,out)"],
    ["an archive longer", () => create("x.rrd", DS, [["AVERAGE", 1, 41], ...RRAS.slice(1)]), "archive 0 is AVERAGE:1:40 vs AVERAGE:1:41 (CF:steps:rows)"],
    ["an archive more", () => create("x.rrd", DS, [...RRAS, ["MAX", 12, 5]]), "archives AVERAGE:1:40 MAX:3:20 MIN:3:20 LAST:1:12 vs AVERAGE:1:40 MAX:3:20 MIN:3:20 LAST:1:12 MAX:12:5"],
  ])("%s", async (_, make, difference) => {
    const a = await base("a.rrd");
    make();
    const reason = refusal(a, readFileSync(at("x.rrd")));
    expect(reason).toBe(`a.rrd and b.rrd are not copies of one RRD: ${difference}`);
  });

  test("a Holt-Winters archive, a JRobin file, another architecture's file, a truncated file, not an RRD", async () => {
    const a = await base("a.rrd");
    create("hw.rrd", DS, RRAS);
    rmSync(at("hw.rrd"));
    rrdtool(["create", at("hw.rrd"), "--start", String(T0), "--step", "300", ...DS, ...RRAS.map(([cf, s, r]) => `RRA:${cf}:0.5:${s}:${r}`), "RRA:HWPREDICT:100:0.1:0.0035:12"]);
    expect(refusal(a, readFileSync(at("hw.rrd")))).toContain("b.rrd has a HWPREDICT archive (rra[4]): Holt-Winters archives hold a model");
    const jrb = readFileSync(join(import.meta.dir, "../fixtures/rrd/multi.jrb"));
    expect(refusal(jrb, a)).toStartWith("a.rrd is a JRobin file: rrdsync merges only rrdtool's format");
    const foreign = Buffer.from(a);
    foreign.writeDoubleBE(8.642135e130, 16);
    expect(refusal(a, foreign)).toStartWith("b.rrd is an RRD written on another architecture");
    expect(refusal(a, a.subarray(0, a.length - 8))).toBe(`b.rrd is damaged: its header needs ${a.length} bytes, the file has ${a.length - 8} (truncated or still being written?)`);
    expect(refusal(a, a.subarray(0, 500))).toStartWith("b.rrd is truncated: its header alone needs");
    expect(refusal(Buffer.from("ds.properties\n"), a)).toBe("a.rrd is not an RRD file (no RRD cookie at its start)");
    expect(refusal(Buffer.alloc(0), a)).toBe("a.rrd is not an RRD file (empty)");
    // Forged headers: an archive of 0 steps per row, a current row outside the archive.
    const zeroSteps = Buffer.from(a);
    zeroSteps.writeBigUInt64LE(0n, 128 + 120 * 3 + 32);
    expect(refusal(a, zeroSteps)).toBe("b.rrd is damaged: archive 0 has 40 rows of 0 steps");
    const ptrAt = a.length - 8 * (40 + 20 + 20 + 12) * 3 - 8 * 4;
    const farRow = Buffer.from(a);
    farRow.writeBigUInt64LE(40n, ptrAt);
    expect(refusal(farRow, a)).toBe("a.rrd is damaged: archive 0's current row 40 lies outside its 40 rows");
  });
});
