// The header parsers against files the real tools made: rrdtool (run here; .ci/run installs it) checked field by
// field against `rrdtool info`, and JRobin files made by the JRobin library (fixtures: test/fixtures/rrd/README.md).
import { expect, test } from "bun:test";
import { previousCopy } from "../../src/track/backup.ts";
import { copyFileSync, mkdtempSync, readFileSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeChange } from "../../src/track/change.ts";
import { readRrdProbe } from "../../src/track/rrd-read.ts";
import { type RrdHeader, rrdDamage, summarize } from "../../src/track/rrd.ts";

const dir = mkdtempSync(join(tmpdir(), "rrdsync-rrdtool-"));
const fixtures = join(import.meta.dir, "../fixtures/rrd");

function rrdtool(...args: string[]): string {
  const r = Bun.spawnSync(["rrdtool", ...args], { cwd: dir });
  if (r.exitCode !== 0) throw new Error(`rrdtool ${args.join(" ")}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

function info(file: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of rrdtool("info", file).split("\n")) {
    const i = line.indexOf(" = ");
    if (i > 0) m.set(line.slice(0, i), line.slice(i + 3).replace(/^"(.*)"$/, "$1"));
  }
  return m;
}

function header(file: string): RrdHeader {
  const p = readRrdProbe(join(dir, file));
  if (p.kind !== "rrd") throw new Error(`${file}: ${p.kind}`);
  return p.header;
}

const sameNumber = (text: string, v: number) => (text === "NaN" ? Number.isNaN(v) : Number(text) === v);

/** Every field the parser reads, compared with what `rrdtool info` prints for the same file. */
function expectMatchesInfo(file: string): RrdHeader {
  const h = header(file);
  const i = info(file);
  expect(h.version).toBe(i.get("rrd_version") as string);
  expect(h.step).toBe(Number(i.get("step")));
  expect(Math.floor(h.lastUpdate)).toBe(Number(i.get("last_update")));
  expect(h.headerSize).toBe(Number(i.get("header_size")));
  expect(h.expectedSize).toBe(statSync(join(dir, file)).size);
  h.ds.forEach((d, k) => {
    const at = (f: string) => i.get(`ds[${d.name}].${f}`) as string;
    expect(Number(at("index"))).toBe(k);
    expect(d.type).toBe(at("type"));
    expect(d.heartbeat).toBe(Number(at("minimal_heartbeat")));
    expect(sameNumber(at("min"), d.min) && sameNumber(at("max"), d.max)).toBe(true);
    expect(h.lastDs[k]).toBe(at("last_ds"));
  });
  expect(h.ds.length).toBe([...i.keys()].filter((k) => /^ds\[[^\]]+\]\.index$/.test(k)).length);
  h.rra.forEach((r, k) => {
    const at = (f: string) => i.get(`rra[${k}].${f}`) as string;
    expect([r.cf, r.rows, r.pdpPerRow, h.curRow[k]]).toEqual([at("cf"), Number(at("rows")), Number(at("pdp_per_row")), Number(at("cur_row"))]);
    if (i.has(`rra[${k}].xff`)) expect(r.xff).toBe(Number(at("xff"))); // Holt-Winters archives keep alpha/beta there instead
  });
  expect(h.rra.length).toBe([...i.keys()].filter((k) => /^rra\[\d+\]\.cf$/.test(k)).length);
  return h;
}

test("a single-DS file and its update: every field equals `rrdtool info`", () => {
  rrdtool("create", "single.rrd", "--start", "1700000000", "--step", "60", "DS:load:GAUGE:120:0:U",
    "RRA:AVERAGE:0.5:1:100", "RRA:MIN:0.5:5:20", "RRA:MAX:0.5:5:20", "RRA:LAST:0.5:1:10");
  const before = expectMatchesInfo("single.rrd");
  rrdtool("update", "single.rrd", "1700000060:0.5", "1700000120:1.25", "1700000180:0.75");
  const after = expectMatchesInfo("single.rrd");
  expect([before.lastUpdate, after.lastUpdate, after.lastDs[0]]).toEqual([1700000000, 1700000180, "0.75"]);
});

test("an OpenNMS storeByGroup file (many DS, the default RRAs): every field equals `rrdtool info`", () => {
  const ds = ["ifInOctets", "ifOutOctets", "ifInErrors", "ifOutErrors", "ifInDiscards", "ifOutDiscards", "ifHCInUcastPkts", "ifHCOutUcastPkts", "ifHighSpeed"];
  rrdtool("create", "group.rrd", "--start", "1700000000", "--step", "300",
    ...ds.map((n, k) => `DS:${n}:${k === ds.length - 1 ? "GAUGE" : "COUNTER"}:600:0:U`),
    "RRA:AVERAGE:0.5:1:2016", "RRA:AVERAGE:0.5:12:1488", "RRA:AVERAGE:0.5:288:366", "RRA:MAX:0.5:288:366", "RRA:MIN:0.5:288:366");
  rrdtool("update", "group.rrd", `1700000300:${ds.map((_, k) => 1000 * (k + 1)).join(":")}`);
  const h = expectMatchesInfo("group.rrd");
  expect(h.headerSize).toBeGreaterThan(4096); // past the first probe: the second, exact read was taken
  expect(h.ds.map((d) => d.name)).toEqual(ds);
});

test("format 0005 (DCOUNTER/DDERIVE) and Holt-Winters archives: every field equals `rrdtool info`", () => {
  rrdtool("create", "v5.rrd", "--start", "1700000000", "--step", "300", "DS:octets:DCOUNTER:600:0:U", "DS:delta:DDERIVE:600:U:U", "RRA:AVERAGE:0.5:1:50");
  rrdtool("update", "v5.rrd", "1700000300:10.5:3", "1700000600:20.25:-4");
  expect(expectMatchesInfo("v5.rrd").version).toBe("0005");
  rrdtool("create", "hw.rrd", "--start", "1700000000", "--step", "300", "DS:x:GAUGE:600:0:U", "RRA:AVERAGE:0.5:1:100", "RRA:HWPREDICT:288:0.1:0.0035:288");
  rrdtool("update", "hw.rrd", "1700000300:5", "1700000600:7");
  expect(expectMatchesInfo("hw.rrd").rra.map((r) => r.cf)).toEqual(["AVERAGE", "HWPREDICT", "SEASONAL", "DEVSEASONAL", "DEVPREDICT", "FAILURES"]);
});

test("a DS added with `rrdtool tune` is a structure change; the tuned file still matches `rrdtool info`", async () => {
  rrdtool("create", "tune.rrd", "--start", "1700000000", "--step", "300", "DS:ifInOctets:COUNTER:600:0:U", "RRA:AVERAGE:0.5:1:10");
  rrdtool("update", "tune.rrd", "1700000300:100");
  const path = join(dir, "tune.rrd");
  const first = await describeChange({ srcPath: path, relPath: "tune.rrd", copy: () => previousCopy(dir, "tune.rrd", null), previous: null });
  rrdtool("tune", "tune.rrd", "DS:ifInErrors:DERIVE:600:0:U");
  const tuned = expectMatchesInfo("tune.rrd");
  const rec = await describeChange({ srcPath: path, relPath: "tune.rrd", copy: () => previousCopy(dir, "tune.rrd", null), previous: { size: first!.size, sha256: null, rrd: first!.rrd } });
  expect(rec?.summary).toContain("STRUCTURE CHANGED");
  expect(rec?.details).toContain("STRUCTURE CHANGED: DS ifInErrors added (DERIVE)");
  expect(tuned.ds.map((d) => d.name)).toEqual(["ifInOctets", "ifInErrors"]);
});

test("a truncated copy, a forged cookie and a last update that went backwards are damage; a whole file is not", () => {
  const whole = join(dir, "single.rrd");
  const size = statSync(whole).size;
  expect(rrdDamage(readRrdProbe(whole), size, null)).toBeNull();

  const cut = join(dir, "cut.rrd");
  copyFileSync(whole, cut);
  truncateSync(cut, size - 100);
  expect(rrdDamage(readRrdProbe(cut), size - 100, null)).toBe(`size mismatch: the header needs ${size} bytes, the file has ${size - 100}`);
  truncateSync(cut, 300);
  expect(rrdDamage(readRrdProbe(cut), 300, null)).toMatch(/^truncated: its header alone needs \d+ bytes, the file has 300$/);

  const forged = join(dir, "forged.rrd");
  const b = readFileSync(whole);
  b.write("XRD", 0, "latin1");
  writeFileSync(forged, b);
  expect(rrdDamage(readRrdProbe(forged), size, null)).toBe("not an RRD file (wrong cookie)");

  const later = { ...summarize(header("single.rrd")), last: 1800000000 };
  expect(rrdDamage(readRrdProbe(whole), size, later)).toBe("last update went backwards (2027-01-15T08:00:00Z → 2023-11-14T22:16:20Z)");
});

test("JRobin files the JRobin library made: definitions, step, last update and last values", () => {
  const p = readRrdProbe(join(fixtures, "multi.jrb"));
  if (p.kind !== "rrd") throw new Error(p.kind);
  const h = p.header;
  expect([h.format, h.version, h.step, h.lastUpdate, h.expectedSize]).toEqual(["jrobin", "JRobin, version 0.1", 300, 1700000600, 1040]);
  expect(h.ds).toEqual([
    { name: "ifInOctets", type: "COUNTER", heartbeat: 600, min: 0, max: Number.NaN },
    { name: "ifOutOctets", type: "COUNTER", heartbeat: 600, min: 0, max: Number.NaN },
    { name: "temp", type: "GAUGE", heartbeat: 600, min: -50, max: 150 },
  ]);
  expect(h.rra).toEqual([{ cf: "AVERAGE", xff: 0.5, pdpPerRow: 1, rows: 10 }, { cf: "MAX", xff: 0.5, pdpPerRow: 12, rows: 5 }]);
  expect(h.lastDs).toEqual(["250", "400", "22"]);
  const single = readRrdProbe(join(fixtures, "single.jrb"));
  expect(single.kind === "rrd" && [single.header.ds.length, single.header.rra.map((r) => r.rows), single.header.expectedSize]).toEqual([1, [12, 4], 472]);
});

test("a JRobin update is described like an RRD's; a truncated JRobin file is damage", async () => {
  const before = await describeChange({ srcPath: join(fixtures, "multi.jrb"), relPath: "multi.jrb", copy: () => previousCopy(dir, "multi.jrb", null), previous: null });
  expect(before?.details.split("\n")[0]).toBe("JRobin file created (JRobin, version 0.1): step 300 s, 3 data sources, 2 archives");
  const after = await describeChange({ srcPath: join(fixtures, "multi-updated.jrb"), relPath: "multi.jrb", copy: () => previousCopy(dir, "multi.jrb", null), previous: { size: 1040, sha256: null, rrd: before!.rrd } });
  expect(after?.summary).toBe("rrd +3 steps");
  expect(after?.details.split("\n")).toEqual([
    "JRobin file updated: last update 2023-11-14T22:23:20Z → 2023-11-14T22:38:20Z (+3 steps)",
    "ifInOctets: 250 → 400", "ifOutOctets: 400 → 700", "temp: 22 → 23.25", "Size: 1040 bytes",
  ]);
  const cut = join(dir, "cut.jrb");
  copyFileSync(join(fixtures, "multi.jrb"), cut);
  truncateSync(cut, 900);
  expect(rrdDamage(readRrdProbe(cut), 900, null)).toBe("size mismatch: the header needs 1040 bytes, the file has 900");
  truncateSync(cut, 500);
  expect(rrdDamage(readRrdProbe(cut), 500, null)).toBe("truncated: its header alone needs 504 bytes, the file has 500");
});
