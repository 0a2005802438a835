// `rrdsync merge` as an admin runs it (the source, or the compiled binary with RRDSYNC_BIN), on RRDs the real
// rrdtool made: the report, the merged file as rrdtool reads it, in place with --to A, and every refusal with its
// exit code and message. The rule itself is tested row by row in test/unit/rrd-merge.test.ts.
import { afterAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fetchRows, infoLines, rrdtool, updates } from "../../helpers/rrdtool.ts";
import { runRrdsync } from "../../helpers/world.ts";

const dir = mkdtempSync(join(tmpdir(), "rrdsync-merge-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const at = (name: string) => join(dir, name);

const T0 = 1_700_000_100;
const t = (i: number) => T0 + 300 * i;
const LAYOUT = ["DS:ifInOctets:COUNTER:600:0:U", "RRA:AVERAGE:0.5:1:2016", "RRA:AVERAGE:0.5:12:1488", "RRA:MAX:0.5:12:1488", "RRA:MIN:0.5:12:1488"];

async function pair(tag: string): Promise<{ primary: string; standby: string }> {
  const primary = at(`${tag}-primary.rrd`);
  rrdtool(["create", primary, "--start", String(T0), "--step", "300", ...LAYOUT]);
  const w = (f: string, from: number, to: number) => updates(Array.from({ length: to - from + 1 }, (_, k) => [f, t(from + k), [1000 * (from + k)]] as [string, number, number[]]));
  await w(primary, 1, 200);
  const standby = at(`${tag}-standby.rrd`);
  copyFileSync(primary, standby);
  await w(primary, 201, 230); // never replicated
  await w(standby, 240, 300); // written while promoted
  return { primary, standby };
}

describe("rrdsync merge", () => {
  test("A + B → OUT: the report, and OUT as rrdtool reads it (both sides' rows, the standby's live state)", async () => {
    const { primary, standby } = await pair("new");
    const out = at("out.rrd");
    const r = await runRrdsync(["merge", primary, standby, "--to", out]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n").slice(0, 4)).toEqual([
      `merged ${primary} + ${standby} → ${out} (a new file, renamed into place)`,
      `  live state from ${standby}: last update 2023-11-15T23:15:00Z (${primary}: 2023-11-15T17:25:00Z)`,
      `  where both hold a value: ${standby}'s kept (updated last)`,
      `  AVERAGE 1×2016: 30 rows from ${primary} alone, 60 from ${standby} alone, 199 held by both (0 differed), 1,727 unknown in both`,
    ]);
    expect(infoLines(out)).toEqual(infoLines(standby));
    const rows = fetchRows(out, "AVERAGE", 300, 300, t(300));
    const known = rows.filter(([, v]) => v[0] !== "nan").map(([time]) => (time - T0) / 300);
    // 2..200 both, 201..230 the primary's alone, 241..300 the standby's (each side's first row after a gap is unknown)
    expect(known).toEqual([...Array.from({ length: 229 }, (_, k) => k + 2), ...Array.from({ length: 60 }, (_, k) => k + 241)]);
    expect(readdirSync(dir).filter((n) => n.includes("rrdsync-merge"))).toEqual([]);
  });

  test("--to A merges B into A in place (same inode), --dry-run and --json write nothing and report the same", async () => {
    const { primary, standby } = await pair("inplace");
    const before = readFileSync(primary);
    const dry = await runRrdsync(["merge", primary, standby, "--to", primary, "--dry-run", "--json"]);
    expect(dry.code).toBe(0);
    const report = JSON.parse(dry.stdout);
    expect(report).toMatchObject({ a: primary, b: standby, to: primary, wrote: "nothing (dry run)", live_state_from: "b", kept_where_both: "b" });
    expect(report.archives[0]).toEqual({ cf: "AVERAGE", steps: 1, rows: 2016, only_a: 30, only_b: 60, both: 199, differed: 0, unknown: 1727 });
    expect(readFileSync(primary).equals(before)).toBe(true);
    const ino = statSync(primary).ino;
    const r = await runRrdsync(["merge", primary, standby, "--to", primary]);
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n")[0]).toBe(`merged ${primary} + ${standby} → ${primary} (in place, under rrdtool's lock)`);
    expect(statSync(primary).ino).toBe(ino);
    const ring = (l: string[]) => l.filter((x) => !/^rra\[\d+\]\.cur_row/.test(x));
    expect(ring(infoLines(primary))).toEqual(ring(infoLines(standby)));
    // rrdtool goes on with it
    rrdtool(["update", primary, `${t(301)}:301000`]);
    expect(fetchRows(primary, "AVERAGE", 300, 1, t(301))[0]?.[1]).toEqual(["3.3333333333e+00"]);
    // --quiet prints nothing
    expect((await runRrdsync(["merge", primary, standby, "--to", primary, "-q"])).stdout).toBe("");
  });

  test("refusals: exit 2 naming the difference or the mistake, nothing written", async () => {
    const { primary, standby } = await pair("refuse");
    const other = at("other-step.rrd");
    rrdtool(["create", other, "--start", String(T0), "--step", "60", ...LAYOUT]);
    const cases: Array<[string[], string]> = [
      [["merge", primary, other, "--to", at("x.rrd")], `rrdsync: ${primary} and ${other} are not copies of one RRD: step 300 s vs 60 s`],
      [["merge", primary, join(import.meta.dir, "../../fixtures/rrd/multi.jrb"), "--to", at("x.rrd")], "is a JRobin file: rrdsync merges only rrdtool's format"],
      [["merge", primary, at("missing.rrd"), "--to", at("x.rrd")], `rrdsync: ${at("missing.rrd")}: cannot read: no such file`],
      [["merge", primary, standby], "rrdsync: merge needs --to OUT"],
      [["merge", primary, standby, "--to", at("x.rrd"), "--prefer", "newest"], 'rrdsync: --prefer "newest": expected a or b'],
      [["merge", primary, primary, "--to", at("x.rrd")], `rrdsync: ${primary} and ${primary} are the same file`],
    ];
    for (const [args, message] of cases) {
      const r = await runRrdsync(args);
      expect({ args, code: r.code, message: r.stderr.includes(message), stack: r.stderr.includes("    at ") }).toEqual({ args, code: 2, message: true, stack: false });
    }
    expect(existsSync(at("x.rrd"))).toBe(false);
    writeFileSync(at("taken.rrd"), "mine");
    const taken = await runRrdsync(["merge", primary, standby, "--to", at("taken.rrd")]);
    expect([taken.code, taken.stderr]).toEqual([2, `rrdsync: ${at("taken.rrd")} exists\n  hint: give --force to replace it, or --to one of the inputs to merge into it in place\n`]);
    expect(readFileSync(at("taken.rrd"), "utf8")).toBe("mine");
    expect((await runRrdsync(["merge", primary, standby, "--to", at("taken.rrd"), "--force"])).code).toBe(0);
  });

  test("an OUT that cannot be written is exit 1, and no temporary file is left", async () => {
    const { primary, standby } = await pair("nowrite");
    const r = await runRrdsync(["merge", primary, standby, "--to", join(at("nowhere"), "out.rrd")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toStartWith(`rrdsync: ${join(at("nowhere"), "out.rrd")}: cannot create a temporary file beside it: no such file`);
    // A full disk: a 16 KiB tmpfs (the merged file is 53 KB). Mounting needs root, as the suite runs in CI.
    const small = at("small");
    mkdirSync(small);
    const mount = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", small]);
    if (mount.exitCode !== 0) console.log(`  (full-disk case not run: mount: ${mount.stderr.toString().trim()})`);
    else {
      try {
        const full = await runRrdsync(["merge", primary, standby, "--to", join(small, "out.rrd")]);
        expect(full.code).toBe(1);
        expect(full.stderr).toContain("no space left on the device");
        expect(readdirSync(small)).toEqual([]);
      } finally {
        Bun.spawnSync(["umount", small]);
      }
    }
  });
});
