// End to end, fault injection with real processes: a damaged state DB, an unwritable backup dir and change log,
// and the standby going away for 10 s in the middle of a burst while the daemon runs.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, closeSync, copyFileSync, existsSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { compiledBinary } from "../../helpers/binary.ts";
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

describe("bad files never stop the rest", () => {
  test("an unreadable file (run as an unprivileged user: root reads anything) stays pending and named, exit 1; the rest is synced", async () => {
    const w = suite.world();
    writeTree(w.src, { "ok.txt": "ok\n", "n/also.txt": "also\n", "n/secret.txt": "s\n" });
    chmodSync(join(w.src, "n/secret.txt"), 0o000);
    // nobody must reach the world: open it up (the test's temp dir is private), destination local (no ssh key)
    for (const d of [w.src, join(w.src, "n"), w.dest]) chmodSync(d, 0o777);
    // the world's directory, where nobody makes its state directory: sticky, as /tmp (rrdsync refuses to keep its
    // files under a directory others could rename them in)
    chmodSync(w.dir, 0o1777);
    const cfg = w.writeConfig({ remote_sync: { remote_dest_dir: w.dest } });
    chmodSync(cfg, 0o644);
    // the binary copied where nobody can run it, wherever the checkout lives (root's home is private)
    const exe = join(w.dir, "rrdsync");
    copyFileSync(compiledBinary(), exe);
    chmodSync(exe, 0o755);
    const p = Bun.spawn(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", exe, "--once", "--config", cfg], { stdout: "pipe", stderr: "pipe", env: { ...process.env, HOME: w.dir, NO_COLOR: "1" } });
    const [stderr, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
    const r = { code, stderr };
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("n/secret.txt: not synced, stays pending: ");
    expect(readFileSync(join(w.dest, "ok.txt"), "utf8")).toBe("ok\n");
    expect(readFileSync(join(w.dest, "n/also.txt"), "utf8")).toBe("also\n");
    expect(existsSync(join(w.dest, "n/secret.txt"))).toBe(false);
  });

  test("--watch: a file deleted between its event and the transfer is skipped, not a failure", async () => {
    const w = suite.world();
    writeTree(w.src, { "a.txt": "a\n" });
    const d = suite.daemon(["--config", w.writeConfig({ debounce_time: 0.5, rescan_interval: 0 })]);
    await d.waitFor((e) => e.event === "pass", 30_000, "the initial pass");
    writeFileSync(join(w.src, "brief.txt"), "here and gone\n");
    await Bun.sleep(100);
    rmSync(join(w.src, "brief.txt"));
    writeFileSync(join(w.src, "b.txt"), "b\n");
    await eventually(() => existsSync(join(w.dest, "b.txt")), 10_000, "the next file");
    expect(existsSync(join(w.dest, "brief.txt"))).toBe(false);
    expect(d.events.some((e) => e.event === "pending")).toBe(false);
    expect(d.stderr()).not.toMatch(/error/i);
    expect(await d.stop("SIGTERM")).toBe(0);
  });
});
