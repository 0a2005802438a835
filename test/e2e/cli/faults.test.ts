// End to end, fault injection with real processes: a damaged state DB, an unwritable backup dir and change log,
// and the standby going away for 10 s in the middle of a burst while the daemon runs.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { closeSync, existsSync, openSync, readdirSync, readFileSync, statSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { eventually } from "../../helpers/daemon.ts";
import { e2eSuite } from "../../helpers/suite.ts";
import { readTree, runRrdsync, writeTree } from "../../helpers/world.ts";

setDefaultTimeout(120_000);
const suite = e2eSuite("fault");

describe("faults", () => {
  test("a damaged state DB is moved aside and rebuilt by one pass; the replica's unchanged files are not rewritten", async () => {
    const w = suite.world();
    const files: Record<string, string> = {};
    for (let i = 0; i < 400; i++) files[`n${i % 8}/f${i}.txt`] = `${i}\n${"x".repeat(200)}\n`;
    writeTree(w.src, files);
    const cfg = w.writeConfig();
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    const inodes = new Map([...readTree(w.dest).keys()].map((k) => [k, statSync(join(w.dest, k)).ino]));
    const fd = openSync(w.stateFile, "r+");
    writeSync(fd, Buffer.alloc(16384, 0x41), 0, 16384, 8192); // pages of the files table
    closeSync(fd);
    writeTree(w.src, { "n0/f0.txt": "changed meanwhile\n" });
    await Bun.sleep(2200); // settled files: the rebuilding whole-tree run vouches for them without resending
    const r = await runRrdsync(["--once", "--config", cfg]);
    expect(r.code).toBe(0);
    // found damaged on opening, or during the pass (damage outside the pages the opening checks read): either way
    expect(r.stderr).toMatch(/the state DB (was|turned out) damaged.*; it is kept as .*state\.db\.corrupt-\d{4}-\d\d-\d\dT[\d-]+Z and a new one is rebuilt/);
    expect(readdirSync(join(w.dir, "state")).filter((n) => n.startsWith("state.db.corrupt-")).length).toBeGreaterThan(0);
    expect(readTree(w.dest)).toEqual(readTree(w.src));
    const rewritten = [...inodes].filter(([k, ino]) => statSync(join(w.dest, k)).ino !== ino).map(([k]) => k);
    expect(rewritten).toEqual(["n0/f0.txt"]); // only the changed file: rsync's quick check skipped the rest
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0); // and the rebuilt DB is sound
  });

  test("backup dir and change log unwritable: replication goes on, the audit gap names the files, exit 1", async () => {
    const w = suite.world();
    writeTree(w.src, { "a.txt": "a\n", "b.properties": "k=v\n" });
    const blocker = join(w.dir, "not-a-dir");
    writeFileSync(blocker, "a file where a directory should be\n");
    const cfg = w.writeConfig({ change_tracking: { backup_dir: join(blocker, "backup"), change_log_file: join(blocker, "change_log.txt") } });
    const r = await runRrdsync(["--once", "--config", cfg]);
    expect(r.code).toBe(1);
    expect(readTree(w.dest)).toEqual(readTree(w.src));
    expect(r.stderr).toMatch(/audit gap/);
    expect(r.stderr).toContain("a.txt");
    expect(r.stderr).toContain("b.properties");
    // the state advanced (the replica has them): the next run has nothing to send
    const again = await runRrdsync(["--once", "--config", cfg]);
    expect(again.stdout + again.stderr).not.toMatch(/[1-9]\d* files .* synced/);
  });

  test("--watch: sshd stopped for 10 s during a 500-file burst; the replica is complete within 15 s of its restart", async () => {
    const w = suite.world();
    const files: Record<string, string> = {};
    for (let i = 0; i < 500; i++) files[`b/${i % 10}/f${i}.txt`] = "v1\n";
    writeTree(w.src, files);
    const d = suite.daemon(["--config", w.writeConfig({ debounce_time: 0.5, rescan_interval: 0 })]);
    await d.waitFor((e) => e.event === "pass", 30_000, "the initial pass");
    await suite.sshd().stop();
    for (let i = 0; i < 500; i++) writeTree(w.src, { [`b/${i % 10}/f${i}.txt`]: `v2 ${i}\n` });
    await d.waitFor((e) => e.event === "pending", 15_000, "the failed batch");
    await Bun.sleep(10_000);
    await suite.sshd().start();
    const took = await eventually(() => {
      for (let i = 0; i < 500; i++) {
        try {
          if (readFileSync(join(w.dest, `b/${i % 10}/f${i}.txt`), "utf8") !== `v2 ${i}\n`) return false;
        } catch {
          return false;
        }
      }
      return true;
    }, 15_000, "all 500 on the replica after the restart");
    expect(took).toBeLessThan(15_000);
    await eventually(() => readFileSync(w.logFile, "utf8").includes("is reachable again"), 5_000, "the (info) line saying it is back");
    // one warning and one error for the outage, not a line per retry
    expect(d.stderr().match(/is unreachable/g)?.length).toBe(1);
    expect(d.stderr().match(/stay pending/g)?.length).toBe(1);
    expect(existsSync(w.changeLog)).toBe(true);
  });
});
