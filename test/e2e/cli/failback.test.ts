// End to end (issue 26): `rrdsync failback` on the old primary brings back every row the promoted standby
// collected, keeps every row only the primary had, makes both sides byte-equal and lifts the fence. Real sshd, real
// rsync or SFTP, real `rrdtool update`s on each side; a kill -9 in the middle converges on the next run.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { e2eSuite } from "../../helpers/suite.ts";
import { readTree, rrdsyncCommand, runRrdsync, type World } from "../../helpers/world.ts";

setDefaultTimeout(120_000);
const suite = e2eSuite("failback");

const T0 = 1_699_999_800; // a multiple of the step: rrdtool fetch returns the values as written
const MARKER = ".rrdsync-promoted";

function rrdtool(...args: string[]): string {
  const r = Bun.spawnSync(["rrdtool", ...args]);
  if (r.exitCode !== 0) throw new Error(`rrdtool ${args.join(" ")}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

/**
 * Two archives (AVERAGE and MAX) and two data sources, made by rrdtool itself. A heartbeat of one step: a gap in
 * the updates leaves its rows unknown (not interpolated), so each side's rows are exactly the ones it wrote.
 */
function createRrd(path: string, rows = 100): void {
  rrdtool("create", path, "--start", String(T0), "--step", "300", "DS:x:GAUGE:300:U:U", "DS:y:GAUGE:300:U:U", `RRA:AVERAGE:0.5:1:${rows}`, `RRA:MAX:0.5:1:${rows}`);
}

function update(path: string, ...steps: number[]): void {
  rrdtool("update", path, ...steps.map((s) => `${T0 + s * 300}:${s}:${s * 10}`));
}

/** The steps rrdtool fetch holds values for, in both archives (x and y as written). */
function rows(path: string): number[] {
  const seen: number[][] = [];
  for (const cf of ["AVERAGE", "MAX"]) {
    const got: number[] = [];
    for (const line of rrdtool("fetch", path, cf, "--start", String(T0), "--end", String(T0 + 3000)).split("\n")) {
      const m = /^(\d+): (\S+) (\S+)/.exec(line);
      if (!m || Number.isNaN(Number(m[2]))) continue;
      const step = (Number(m[1]) - T0) / 300;
      expect(Number(m[2])).toBe(step);
      expect(Number(m[3])).toBe(step * 10);
      got.push(step);
    }
    seen.push(got);
  }
  expect(seen[1]).toEqual(seen[0] as number[]);
  return seen[0] as number[];
}

function lastUpdate(path: string): number {
  return Number((rrdtool("lastupdate", path).trim().split("\n").at(-1) as string).split(":")[0]);
}

/** SFTP carries whole seconds: the standby's writes must come in a later second than the version delivered. */
const nextSecond = () => Bun.sleep(1100);

const once = (cfg: string) => runRrdsync(["--once", "--config", cfg]);

/** The tree without the promotion marker (the one name rrdsync keeps at the replica's root). */
function tree(root: string): Map<string, string> {
  const t = readTree(root);
  t.delete(MARKER);
  return t;
}

/**
 * The issue's world: the primary replicated a.rrd, b.rrd and a strings.properties; wrote one more row to a.rrd
 * that never reached the standby; the standby was promoted and wrote newer rows to a.rrd, made new.rrd and
 * changed strings.properties.
 */
async function failedOver(w: World): Promise<string> {
  createRrd(join(w.src, "a.rrd"));
  update(join(w.src, "a.rrd"), 1, 2);
  createRrd(join(w.src, "b.rrd"));
  update(join(w.src, "b.rrd"), 1, 2);
  writeFileSync(join(w.src, "strings.properties"), "ifAlias=uplink\n");
  const cfg = w.writeConfig();
  expect((await once(cfg)).code).toBe(0);
  update(join(w.src, "a.rrd"), 3); // the primary's last row: it died before replicating it
  const p = await runRrdsync(["promote", w.dest]);
  expect(p.code).toBe(0);
  await nextSecond();
  update(join(w.dest, "a.rrd"), 4, 5, 6); // OpenNMS on the promoted standby (row 4 unknown: the gap since row 2)
  return cfg;
}

describe("rrdsync failback", () => {
  test("promote, the standby serves, failback: every row of both sides, the new file, byte-equal, fence and marker gone", async () => {
    const w = suite.world();
    const cfg = await failedOver(w);
    Bun.spawnSync(["mkdir", "-p", join(w.dest, "node9")]);
    createRrd(join(w.dest, "node9", "if.rrd"));
    update(join(w.dest, "node9", "if.rrd"), 4, 5, 6);
    writeFileSync(join(w.dest, "strings.properties"), "ifAlias=uplink to core\n");
    const b = readFileSync(join(w.src, "b.rrd"));
    // the old primary is back: refused (exit 4) until failback
    expect((await once(cfg)).code).toBe(4);

    const r = await runRrdsync(["failback", "--config", cfg]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/merged +"?a\.rrd"?: merged from standby: rows added 4, rows kept 4, last update 2023-11-14T22:25:00Z → 2023-11-14T22:40:00Z/);
    expect(r.stdout).toMatch(/copied +"?node9\/if\.rrd"?/);
    expect(r.stdout).toMatch(/taken +"?strings\.properties"?/);
    expect(r.stdout).toContain("failed back");
    // every row of both sides, in every archive
    expect(rows(join(w.src, "a.rrd"))).toEqual([1, 2, 3, 5, 6]);
    expect(lastUpdate(join(w.src, "a.rrd"))).toBe(T0 + 6 * 300);
    expect(rows(join(w.src, "node9", "if.rrd"))).toEqual([5, 6]); // row 4 unknown there too: its first update
    expect(readFileSync(join(w.src, "strings.properties"), "utf8")).toBe("ifAlias=uplink to core\n");
    expect(readFileSync(join(w.src, "b.rrd")).equals(b)).toBe(true); // untouched on both sides
    // both sides byte-equal; the marker and the fence gone; nothing left beside the source
    expect(existsSync(join(w.dest, MARKER))).toBe(false);
    expect(tree(w.dest)).toEqual(tree(w.src));
    expect(readdirSync(w.dir).filter((n) => n.startsWith(".rrdsync-failback-"))).toEqual([]);
    const st = await runRrdsync(["status", "--config", cfg]);
    expect(st.stdout).not.toContain("FENCED");
    expect(st.code).toBe(0);
    // one change-log entry per merged file, a kind of its own
    const log = await runRrdsync(["log", "--kind", "merged", "--json", "--config", cfg]);
    const entries = log.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(entries.map((e) => e.path).sort()).toEqual(["a.rrd", "node9/if.rrd", "strings.properties"]);
    expect(entries.find((e) => e.path === "strings.properties").details).toContain("+ifAlias=uplink to core");
    expect(w.changes()).toContain("merged from standby: rows added 4, rows kept 4");
    // the next rrdtool update and the next --once work as before
    await nextSecond();
    update(join(w.src, "a.rrd"), 7);
    const next = await once(cfg);
    expect(next.code).toBe(0);
    expect(rows(join(w.dest, "a.rrd"))).toEqual([1, 2, 3, 5, 6, 7]);
    expect(tree(w.dest)).toEqual(tree(w.src));
    // and failback again: nothing to do
    const again = await runRrdsync(["failback", "--config", cfg]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain("neither fenced nor promoted");
  });

  test("--dry-run says per file what it would do and the rows each side gives, and changes nothing on either side", async () => {
    const w = suite.world();
    const cfg = await failedOver(w);
    writeFileSync(join(w.dest, "strings.properties"), "ifAlias=uplink to core\n");
    const src = readTree(w.src);
    const dest = readTree(w.dest);
    const r = await runRrdsync(["failback", "--dry-run", "--config", cfg]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/merge +"?a\.rrd"?: would merge: the standby gives 4 rows, ours 2 alone, 4 held by both/);
    expect(r.stdout).toMatch(/take +"?strings\.properties"?/);
    expect(readTree(w.src)).toEqual(src);
    expect(readTree(w.dest)).toEqual(dest);
    expect(readdirSync(w.dir).filter((n) => n.startsWith(".rrdsync-failback-"))).toEqual([]);
    expect((await once(cfg)).code).toBe(4); // still promoted
  });

  test("a target neither fenced nor promoted: says so, exit 0, nothing changed", async () => {
    const w = suite.world();
    createRrd(join(w.src, "a.rrd"));
    update(join(w.src, "a.rrd"), 1);
    const cfg = w.writeConfig();
    expect((await once(cfg)).code).toBe(0);
    const before = readTree(w.dest);
    const r = await runRrdsync(["failback", "--config", cfg]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("neither fenced nor promoted; nothing to fail back");
    expect(readTree(w.dest)).toEqual(before);
  });

  test("an RRD of another structure on the standby: not merged, named, exit 1; both copies kept, the target stays fenced", async () => {
    const w = suite.world();
    const jrb = (name: string) => readFileSync(join(import.meta.dir, "../../fixtures/rrd", name)); // made by JRobin itself
    writeFileSync(join(w.src, "x.jrb"), jrb("multi.jrb"));
    const cfg = await failedOver(w);
    writeFileSync(join(w.dest, "x.jrb"), jrb("multi-updated.jrb")); // the standby's OpenNMS updated it
    // the standby's OpenNMS recreated c.rrd with another archive length (a changed datacollection config)
    createRrd(join(w.src, "c.rrd"));
    update(join(w.src, "c.rrd"), 1);
    await nextSecond();
    createRrd(join(w.dest, "c.rrd"), 50);
    update(join(w.dest, "c.rrd"), 4);
    const ours = readFileSync(join(w.src, "c.rrd"));
    const theirs = readFileSync(join(w.dest, "c.rrd"));
    const r = await runRrdsync(["failback", "--config", cfg]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/left +"?c\.rrd"?: not merged: /);
    expect(r.stdout).toMatch(/left +"?x\.jrb"?: a JRobin file: rrdsync cannot merge it/);
    expect(readFileSync(join(w.src, "x.jrb")).equals(jrb("multi.jrb"))).toBe(true);
    expect(readFileSync(join(w.dest, "x.jrb")).equals(jrb("multi-updated.jrb"))).toBe(true);
    expect(r.stderr).toContain("c.rrd");
    expect(readFileSync(join(w.src, "c.rrd")).equals(ours)).toBe(true);
    expect(readFileSync(join(w.dest, "c.rrd")).equals(theirs)).toBe(true);
    // the rest went through
    expect(rows(join(w.src, "a.rrd"))).toEqual([1, 2, 3, 5, 6]);
    expect(readFileSync(join(w.dest, "a.rrd")).equals(readFileSync(join(w.src, "a.rrd")))).toBe(true);
    const st = await runRrdsync(["status", "--config", cfg]);
    expect(st.code).toBe(4);
    expect(st.stdout).toContain('first: "c.rrd"');
  });

  test("kill -9 in the middle of a failback, then a second run: converges with nothing lost", async () => {
    const w = suite.world();
    const N = 150;
    // one rrdtool process for all the updates (its pipe mode): a process per file costs seconds on a busy machine
    const batch = (dir: string, steps: number[]) => {
      const lines = Array.from({ length: N }, (_, i) => `update ${join(dir, `n${i}.rrd`)} ${steps.map((s) => `${T0 + s * 300}:${s}:${s * 10}`).join(" ")}\n`).join("");
      const r = Bun.spawnSync(["rrdtool", "-"], { stdin: Buffer.from(lines) });
      expect(r.stdout.toString()).not.toContain("ERROR");
    };
    createRrd(join(w.src, "n0.rrd"));
    for (let i = 1; i < N; i++) copyFileSync(join(w.src, "n0.rrd"), join(w.src, `n${i}.rrd`));
    batch(w.src, [1, 2]);
    const cfg = w.writeConfig();
    expect((await once(cfg)).code).toBe(0);
    batch(w.src, [3]);
    expect((await runRrdsync(["promote", w.dest])).code).toBe(0);
    await nextSecond();
    batch(w.dest, [4, 5, 6]);
    const before = new Map(Array.from({ length: N }, (_, i) => [i, readFileSync(join(w.src, `n${i}.rrd`))]));
    // killed once every file is pulled (its temporary directory holds all of them) and the merging has begun
    const p = Bun.spawn([...rrdsyncCommand(), "failback", "--config", cfg], { stdout: "ignore", stderr: "ignore", env: { ...process.env, NO_COLOR: "1" } });
    const deadline = Date.now() + 30_000;
    const pulled = () => {
      const tmp = readdirSync(w.dir).find((n) => n.startsWith(".rrdsync-failback-"));
      return tmp === undefined ? 0 : readdirSync(join(w.dir, tmp)).filter((n) => /^n\d+\.rrd$/.test(n)).length;
    };
    const mtimes = new Map(Array.from({ length: N }, (_, i) => [i, statSync(join(w.src, `n${i}.rrd`)).mtimeMs]));
    const merging = () => [...mtimes].some(([i, m]) => statSync(join(w.src, `n${i}.rrd`)).mtimeMs !== m);
    while (pulled() < N && p.exitCode === null && Date.now() < deadline) await Bun.sleep(1);
    while (!merging() && p.exitCode === null && Date.now() < deadline) await Bun.sleep(0);
    p.kill("SIGKILL");
    await p.exited;
    expect(p.signalCode).toBe("SIGKILL");
    // it was stopped in the middle: its temporary directory is left; the marker is gone already, and the fence
    // (in the state DB) keeps this host's rrdsync off the target until a failback ends
    expect(readdirSync(w.dir).filter((n) => n.startsWith(".rrdsync-failback-")).length).toBe(1);
    expect(existsSync(join(w.dest, MARKER))).toBe(false);
    expect((await runRrdsync(["status", "--config", cfg])).code).toBe(4);
    const mergedBefore = [...before].filter(([i, b]) => !readFileSync(join(w.src, `n${i}.rrd`)).equals(b)).length;
    expect(mergedBefore).toBeGreaterThan(0); // some merged here, their notes not yet recorded: merged again below
    expect(mergedBefore).toBeLessThan(N);
    // the second run converges
    const r = await runRrdsync(["failback", "--config", cfg]);
    expect(r.code).toBe(0);
    for (let i = 0; i < N; i += 10) {
      expect(rows(join(w.src, `n${i}.rrd`))).toEqual([1, 2, 3, 5, 6]);
      expect(lastUpdate(join(w.src, `n${i}.rrd`))).toBe(T0 + 1800);
    }
    expect(tree(w.dest)).toEqual(tree(w.src));
    expect(existsSync(join(w.dest, MARKER))).toBe(false);
    expect(readdirSync(w.dir).filter((n) => n.startsWith(".rrdsync-failback-"))).toEqual([]);
    expect((await once(cfg)).code).toBe(0);
  });
});
