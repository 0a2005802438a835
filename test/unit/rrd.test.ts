import { expect, test } from "bun:test";
import { previousCopy } from "../../src/track/backup.ts";
import { makeRrd, seededRandom, touchRrdUpdate } from "../../scripts/bench/generate-tree.ts";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeChange } from "../../src/track/change.ts";
import { describeUpdatedRrd, probeRrd, structureChanges, summarize } from "../../src/track/rrd.ts";

// The example of ../shared/reference/rrd-format.md (checked there against `rrdtool info`):
// 3 data sources, RRA:AVERAGE:0.5:1:10 and RRA:MAX:0.5:12:5 → the header ends at 1576, the file is 1936 bytes.
const multi = () => makeRrd(["ifInOctets", "ifOutOctets", "temp"], "COUNTER", 1700000600, seededRandom(1), [["AVERAGE", 1, 10], ["MAX", 12, 5]]);

test("the header of a multi-DS file: sizes as rrdtool lays them out, definitions, last update", () => {
  const p = probeRrd(multi());
  if (p.kind !== "rrd") throw new Error(p.kind);
  expect(p.header.headerSize).toBe(1576);
  expect(p.header.expectedSize).toBe(1936);
  expect(p.header.version).toBe("0003");
  expect(p.header.step).toBe(300);
  expect(p.header.ds.map((d) => d.name)).toEqual(["ifInOctets", "ifOutOctets", "temp"]);
  expect(p.header.rra).toEqual([
    { cf: "AVERAGE", rows: 10, pdpPerRow: 1, xff: 0.5 },
    { cf: "MAX", rows: 5, pdpPerRow: 12, xff: 0.5 },
  ]);
  expect(Math.floor(p.header.lastUpdate)).toBe(1700000600);
});

test("not an RRD, a foreign layout (big-endian cookie), and a header that needs more bytes are told apart", () => {
  expect(probeRrd(Buffer.from("hello world, this is plainly not an rrd file at all")).kind).toBe("not-rrd");
  const be = multi();
  be.writeDoubleBE(8.642135e130, 16);
  expect(probeRrd(be).kind).toBe("foreign");
  expect(probeRrd(multi().subarray(0, 1000))).toEqual({ kind: "need", bytes: 1576 });
});

test("an update is described as steps advanced and last values; a structure change is flagged", () => {
  const before = probeRrd(multi());
  if (before.kind !== "rrd") throw new Error();
  const dir = mkdtempSync(join(tmpdir(), "rrdsync-rrd-"));
  const f = join(dir, "m.rrd");
  writeFileSync(f, multi());
  touchRrdUpdate(f, seededRandom(2), 1700000600 + 600);
  const after = probeRrd(readFileSync(f));
  if (after.kind !== "rrd") throw new Error();
  const d = describeUpdatedRrd(summarize(before.header), after.header, 1936, 1936);
  expect(d.summary).toBe("rrd +2 steps");
  expect(d.text.split("\n")[0]).toBe("RRD file updated: last update 2023-11-14T22:23:20Z → 2023-11-14T22:33:20Z (+2 steps)");
  expect(d.text).toContain(`ifInOctets: ${before.header.lastDs[0]} → ${after.header.lastDs[0]}`);
  const tuned = { ...summarize(after.header), ds: [...summarize(after.header).ds, ["errors", "DERIVE", 600] as [string, string, number]] };
  expect(structureChanges(summarize(after.header), tuned)).toEqual(["DS errors added (DERIVE)"]);
});

test("describeChange reads only the header of an RRD: created with its definition, then updated, no hash", async () => {
  const dir = mkdtempSync(join(tmpdir(), "rrdsync-rrd-"));
  const f = join(dir, "m.rrd");
  writeFileSync(f, multi());
  const created = await describeChange({ srcPath: f, relPath: "m.rrd", copy: () => previousCopy(dir, "m.rrd", null), previous: null });
  expect(created?.fileKind).toBe("rrd");
  expect(created?.sha256).toBeNull();
  expect(created?.details.split("\n").slice(0, 2)).toEqual([
    "RRD file created (format 0003): step 300 s, 3 data sources, 2 archives",
    "DS ifInOctets COUNTER heartbeat 600 min 0 max U",
  ]);
  writeFileSync(f, multi().subarray(0, 1800)); // torn: shorter than its header says
  const torn = await describeChange({ srcPath: f, relPath: "m.rrd", copy: () => previousCopy(dir, "m.rrd", null), previous: { size: 1936, sha256: null, rrd: created!.rrd } });
  expect(torn?.details).toContain("WARNING: the header needs 1936 bytes, the file has 1800");
});

test("a file rrdtool made parses to what `rrdtool info` reports (fixture: test/fixtures/rrd/README.md)", () => {
  const p = probeRrd(readFileSync(join(import.meta.dir, "../fixtures/rrd/multi.rrd")));
  if (p.kind !== "rrd") throw new Error(p.kind);
  expect(p.header.step).toBe(300);
  expect(p.header.lastUpdate).toBe(1700000600);
  expect(p.header.lastDs).toEqual(["250", "400", "22"]);
  expect(p.header.ds.map((d) => [d.name, d.type, d.heartbeat])).toEqual([
    ["ifInOctets", "COUNTER", 600], ["ifOutOctets", "COUNTER", 600], ["temp", "GAUGE", 600],
  ]);
  expect([p.header.ds[2]?.min, p.header.ds[2]?.max]).toEqual([-50, 150]);
  expect(Number.isNaN(p.header.ds[0]?.max)).toBe(true);
  expect([p.header.headerSize, p.header.expectedSize]).toEqual([1576, 1936]);
});
