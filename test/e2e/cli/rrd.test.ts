// End to end, RRD-aware: semantic change entries for files rrdtool and JRobin made, torn files held back
// (--once and --watch), and a pass with change tracking off. Real sshd, real rsync, real rrdtool.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { eventually } from "../../helpers/daemon.ts";
import { e2eSuite } from "../../helpers/suite.ts";
import { readTree, runRrdsync, type World } from "../../helpers/world.ts";

setDefaultTimeout(90_000);

const { world, daemon } = e2eSuite("rrd");

const fixtures = join(import.meta.dir, "../../fixtures/rrd");

function rrdtool(cwd: string, ...args: string[]): void {
  const r = Bun.spawnSync(["rrdtool", ...args], { cwd });
  if (r.exitCode !== 0) throw new Error(`rrdtool ${args.join(" ")}: ${r.stderr.toString()}`);
}

/** A whole RRD, and the same file cut short as if caught mid-write. */
function tornRrd(w: World, rel: string): { whole: Buffer; torn: Buffer } {
  rrdtool(w.src, "create", rel, "--start", "1700000000", "--step", "300", "DS:ifInOctets:COUNTER:600:0:U", "RRA:AVERAGE:0.5:1:500");
  const whole = readFileSync(join(w.src, rel));
  return { whole, torn: whole.subarray(0, whole.length - 2000) };
}

describe("RRD-aware change tracking", () => {
  test("rrd_updates \"every\" (the seed's log): rrdtool updates, a DS added by `rrdtool tune`, and a JRobin update each get a semantic entry", async () => {
    const w = world();
    rrdtool(w.src, "create", "if.rrd", "--start", "1700000000", "--step", "300", "DS:ifInOctets:COUNTER:600:0:U", "DS:ifOutOctets:COUNTER:600:0:U", "RRA:AVERAGE:0.5:1:100");
    copyFileSync(join(fixtures, "multi.jrb"), join(w.src, "node.jrb"));
    const cfg = w.writeConfig({ change_tracking: { backup_dir: w.backupDir, change_log_file: w.changeLog, rrd_updates: "every" } });
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    const created = w.changes();
    expect(created).toContain("File: if.rrd\nChanges:\nRRD file created (format 0003): step 300 s, 2 data sources, 1 archives\n");
    expect(created).toContain("File: node.jrb\nChanges:\nJRobin file created (JRobin, version 0.1): step 300 s, 3 data sources, 2 archives\n");

    rrdtool(w.src, "update", "if.rrd", "1700000300:1000:2000", "1700000600:1500:2600");
    copyFileSync(join(fixtures, "multi-updated.jrb"), join(w.src, "node.jrb"));
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    const updated = w.changes().slice(created.length);
    expect(updated).toContain("RRD file updated: last update 2023-11-14T22:13:20Z → 2023-11-14T22:23:20Z (+2 steps)\nifInOctets: U → 1500\nifOutOctets: U → 2600\n");
    expect(updated).toContain("JRobin file updated: last update 2023-11-14T22:23:20Z → 2023-11-14T22:38:20Z (+3 steps)\nifInOctets: 250 → 400\n");
    expect(updated).not.toContain("SHA256");

    rrdtool(w.src, "tune", "if.rrd", "DS:ifInErrors:DERIVE:600:0:U");
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    expect(w.changes()).toContain("STRUCTURE CHANGED: DS ifInErrors added (DERIVE)");
    expect(readTree(w.dest)).toEqual(readTree(w.src));
  });

  test("--once: a torn RRD is held back, looked at again, and ships once it is whole; the rest is not kept waiting", async () => {
    const w = world();
    const { whole, torn } = tornRrd(w, "mid-write.rrd");
    writeFileSync(join(w.src, "mid-write.rrd"), torn);
    const cfg = w.writeConfig({ rrd_hold: { attempts: 10, delay: 0.3 }, monitored_extensions: [".txt"] });
    writeFileSync(join(w.src, "first.txt"), "x\n");
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0); // a state to start from: no first sync
    writeFileSync(join(w.src, "other.txt"), "x\n");
    w.writeConfig({ rrd_hold: { attempts: 10, delay: 0.3 } });
    const run = runRrdsync(["--once", "--config", cfg]);
    await eventually(() => existsSync(join(w.dest, "other.txt")), 20_000, "other.txt on the replica");
    expect(existsSync(join(w.dest, "mid-write.rrd"))).toBe(false);
    writeFileSync(join(w.src, "mid-write.rrd"), whole); // the writer finishes
    const r = await run;
    expect(r.code).toBe(0);
    expect(readFileSync(join(w.dest, "mid-write.rrd")).equals(whole)).toBe(true);
    expect(r.stderr).toMatch(/mid-write\.rrd: held back \(1\/10\): size mismatch: the header needs \d+ bytes, the file has \d+/);
    expect(w.changes()).not.toContain("ERROR");
  });

  test("first sync: a torn RRD the whole-tree run took is not recorded; it goes again through the holds", async () => {
    const w = world();
    const { whole, torn } = tornRrd(w, "t.rrd");
    writeFileSync(join(w.src, "t.rrd"), torn);
    const run = runRrdsync(["--once", "--config", w.writeConfig({ rrd_hold: { attempts: 20, delay: 0.3 } })]);
    await eventually(() => existsSync(w.logFile) && readFileSync(w.logFile, "utf8").includes("t.rrd: held back (1/20)"), 20_000, "the hold");
    writeFileSync(join(w.src, "t.rrd"), whole);
    expect((await run).code).toBe(0);
    expect(readFileSync(join(w.dest, "t.rrd")).equals(whole)).toBe(true);
    expect(w.changes()).not.toContain("WARNING");
    expect(w.changes().match(/^File: t\.rrd$/gm)?.length).toBe(1);
  });

  test("--once: an RRD still damaged after its holds ships anyway, flagged in the log and the change log (exit 1)", async () => {
    const w = world();
    const { torn } = tornRrd(w, "bad.rrd");
    writeFileSync(join(w.src, "bad.rrd"), torn);
    writeFileSync(join(w.src, "forged.rrd"), Buffer.concat([Buffer.from("XRD\0"), torn.subarray(4)]));
    const r = await runRrdsync(["--once", "--config", w.writeConfig({ rrd_hold: { attempts: 2, delay: 0.2 } })]);
    expect(r.code).toBe(1);
    expect(readTree(w.dest)).toEqual(readTree(w.src)); // the replica does not fall behind either
    expect(r.stderr).toContain("bad.rrd: shipped although it looks damaged: size mismatch");
    const log = w.changes();
    expect(log).toMatch(/File: bad\.rrd\nChanges:\nERROR: shipped although it looks damaged: size mismatch: the header needs \d+ bytes, the file has \d+ \(still so after 2 holds\)\n/);
    expect(log).toContain("File: forged.rrd\nChanges:\nERROR: shipped although it looks damaged: not an RRD file (wrong cookie) (still so after 2 holds)\n");
  });

  test("an update whose last update went backwards is held, not shipped over the newer copy", async () => {
    const w = world();
    rrdtool(w.src, "create", "t.rrd", "--start", "1700000000", "--step", "300", "DS:x:GAUGE:600:U:U", "RRA:AVERAGE:0.5:1:10");
    rrdtool(w.src, "update", "t.rrd", "1700003000:5");
    const cfg = w.writeConfig({ rrd_hold: { attempts: 1, delay: 0.1 } });
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    const good = readFileSync(join(w.src, "t.rrd"));
    rrdtool(w.src, "create", "t.rrd", "--start", "1700000000", "--step", "300", "DS:x:GAUGE:600:U:U", "RRA:AVERAGE:0.5:1:10");
    const r = await runRrdsync(["--once", "--config", cfg]);
    expect(r.stderr).toContain("t.rrd: held back (1/1): last update went backwards (2023-11-14T23:03:20Z → 2023-11-14T22:13:20Z)");
    expect(r.code).toBe(1); // shipped after its one hold, flagged
    expect(w.changes()).toContain("ERROR: shipped although it looks damaged: last update went backwards");
    expect(good.equals(readFileSync(join(w.dest, "t.rrd")))).toBe(false);
  });

  test("--watch: a torn RRD is held back and ships when whole, without stalling other files", async () => {
    const w = world();
    const { whole } = tornRrd(w, "live.rrd");
    // the next version, as OpenNMS's next update writes it; caught first half-written
    rrdtool(w.dir, "create", "next.rrd", "--start", "1700000000", "--step", "300", "DS:ifInOctets:COUNTER:600:0:U", "RRA:AVERAGE:0.5:1:500");
    rrdtool(w.dir, "update", "next.rrd", "1700000300:42");
    const next = readFileSync(join(w.dir, "next.rrd"));
    const d = daemon(["--config", w.writeConfig({ debounce_time: 0.3, rescan_interval: 0, rrd_hold: { attempts: 20, delay: 0.5 }, change_tracking: { backup_dir: w.backupDir, change_log_file: w.changeLog, rrd_updates: "every" } })]);
    await d.waitFor((e) => e.event === "pass", 30_000, "the initial pass");
    writeFileSync(join(w.src, "live.rrd"), next.subarray(0, next.length - 2000));
    await eventually(() => /live\.rrd: held back \(1\/20\)/.test(d.stderr()), 10_000, "the hold");
    writeFileSync(join(w.src, "note.txt"), "meanwhile\n");
    await eventually(() => existsSync(join(w.dest, "note.txt")), 10_000, "note.txt on the replica");
    expect(readFileSync(join(w.dest, "live.rrd")).equals(whole)).toBe(true); // the good copy was not overwritten
    writeFileSync(join(w.src, "live.rrd"), next);
    await eventually(() => w.changes().includes("RRD file updated: last update 2023-11-14T22:13:20Z → 2023-11-14T22:18:20Z (+1 step)"), 10_000, "the update's entry");
    expect(readFileSync(join(w.dest, "live.rrd")).equals(next)).toBe(true);
    expect(w.changes()).not.toContain("ERROR");
  });

  test("routine updates are rolled up: no entry each, one summary per interval; stopped and resumed RRDs and a structure change are entries; log, verify and lag keep working", async () => {
    const w = world();
    const T0 = Math.floor(Date.now() / 1000) - 7200; // in the past: the tree's clock is the newest update
    for (const n of ["a", "b", "c"]) rrdtool(w.src, "create", `${n}.rrd`, "--start", String(T0), "--step", "60", "DS:v:GAUGE:120:U:U", "RRA:AVERAGE:0.5:1:100");
    writeFileSync(join(w.src, "strings.properties"), "ifAlias=uplink\n");
    const cfg = w.writeConfig({ change_tracking: { backup_dir: w.backupDir, change_log_file: w.changeLog, rrd_summary_interval: 2, rrd_stale_steps: 3 } });
    const once = async () => {
      const r = await runRrdsync(["--once", "--config", cfg]);
      expect([r.code, r.stderr]).toEqual([0, r.stderr]);
      return r;
    };
    await once();
    const created = w.changes();
    expect(created.match(/RRD file created/g)?.length).toBe(3);
    const update = (names: string[], step: number) => {
      for (const n of names) rrdtool(w.src, "update", `${n}.rrd`, `${T0 + 60 * step}:${step}`);
    };
    update(["a", "b", "c"], 1);
    await once();
    expect(w.changes()).not.toContain("RRD file updated"); // routine: rolled up, no entry of its own
    expect(readTree(w.dest)).toEqual(readTree(w.src));
    for (let step = 2; step <= 5; step++) {
      update(["a", "b"], step);
      await once();
    }
    // c stopped at step 1 while a and b went on to step 5: more than 3 of its steps behind
    expect(w.changes()).toMatch(/File: c\.rrd\nChanges:\nRRD stopped updating: its last update \S+ is 240 s behind the tree's newest/);
    expect(w.changes()).not.toMatch(/File: [ab]\.rrd\nChanges:\nRRD stopped/);
    await Bun.sleep(2100); // the roll-up period (2 s) ends
    update(["c"], 6);
    rrdtool(w.src, "tune", "a.rrd", "DS:w:GAUGE:120:U:U");
    await once();
    await Bun.sleep(2100);
    await once(); // the last period's summary
    const log = w.changes();
    expect(log).toMatch(/File: c\.rrd\nChanges:\nRRD updating again \(logged as stopped at /);
    expect(log).toContain("STRUCTURE CHANGED: DS w added (GAUGE)");
    // the summaries (one per 2 s period that saw updates) count every routine update: 3 + 4 × 2 + c's resumed one
    const counted = [...log.matchAll(/File: \(RRD summary\)\nChanges:\nRRD updates .* rolled up: \d+ RRDs? updated (\d+) times?/g)].reduce((n, m) => n + Number(m[1]), 0);
    expect(counted).toBe(12);
    expect(log).toMatch(/ {2}stopped updating \(1\): c\.rrd/);
    expect(log).toMatch(/ {2}resumed \(1\): c\.rrd/);
    expect(log.match(/RRD file updated/g)?.length ?? 0).toBe(2); // the tune's entry and c's resumed one
    expect(readTree(w.dest)).toEqual(readTree(w.src));
    // the history and the tools that read it
    const hist = await runRrdsync(["log", "c.rrd", "--config", cfg]);
    expect(hist.code).toBe(0);
    expect(hist.stdout).toContain("RRD stopped updating");
    expect(hist.stdout).toContain("RRD updating again");
    const kinds = await runRrdsync(["log", "--stat", "--config", cfg]);
    expect(kinds.stdout).toMatch(/rrd summary/);
    expect((await runRrdsync(["verify", "--config", cfg])).code).toBe(0);
    const st = await runRrdsync(["status", "--config", cfg]);
    expect(st.stdout).toMatch(/replica lag\s+max 0 s/);
    expect(st.stdout).toMatch(/history\s+[\d.]+ (B|KiB|MiB)/);
    expect((await runRrdsync(["restore", "strings.properties", "--config", cfg])).stdout).toBe("ifAlias=uplink\n");
  });

  test("change tracking off: the replica is complete; no change log, no backups", async () => {
    const w = world();
    rrdtool(w.src, "create", "a.rrd", "--start", "1700000000", "--step", "300", "DS:x:GAUGE:600:U:U", "RRA:AVERAGE:0.5:1:10");
    writeFileSync(join(w.src, "ds.properties"), "a=1\n");
    const cfg = w.writeConfig({ change_tracking: { enabled: false, backup_dir: w.backupDir, change_log_file: w.changeLog } });
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    writeFileSync(join(w.src, "ds.properties"), "a=2\n");
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    expect(readTree(w.dest)).toEqual(readTree(w.src));
    expect(existsSync(w.changeLog)).toBe(false);
    expect(existsSync(w.backupDir) ? readTree(w.backupDir).size : 0).toBe(0);
  });
});
