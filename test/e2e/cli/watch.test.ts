// End to end: `rrdsync --watch` with the real watcher against a real sshd and rsync (or the compiled binary).
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Daemon, eventually } from "../../helpers/daemon.ts";
import { e2eSuite } from "../../helpers/suite.ts";
import { fakeBinary, readTree, runRrdsync, TRANSPORT, type World, writeTree } from "../../helpers/world.ts";

setDefaultTimeout(90_000); // real sshd + rsync (+ the watcher): seconds, not milliseconds

const suite = e2eSuite("watch");
const world = suite.world;
const daemon = (cfg: string) => suite.daemon(["--config", cfg]);

const fast = { debounce_time: 1, rescan_interval: 0 };
const started = (d: Daemon) => d.waitFor((e) => e.event === "pass", 30_000, "the initial pass");
const fileOnReplica = (w: World, rel: string, content: string) => () => {
  try {
    return readFileSync(join(w.dest, rel), "utf8") === content;
  } catch {
    return false;
  }
};

describe("rrdsync --watch", () => {
  test("modify, create in a new nested directory, rename, delete, atomic write: each is handled", async () => {
    const w = world();
    writeTree(w.src, { "a.txt": "one\n", "n/old.txt": "old\n", "gone.txt": "bye\n" });
    const d = daemon(w.writeConfig(fast));
    await started(d);
    expect(readFileSync(join(w.dest, "a.txt"), "utf8")).toBe("one\n");

    rmSync(join(w.src, "gone.txt")); // the event is harmless: deletes are not propagated (the seed's behaviour)
    appendFileSync(join(w.src, "a.txt"), "two\n");
    mkdirSync(join(w.src, "deep/er/still"), { recursive: true });
    writeFileSync(join(w.src, "deep/er/still/new.txt"), "fresh\n");
    renameSync(join(w.src, "n/old.txt"), join(w.src, "n/renamed.txt"));
    writeFileSync(join(w.src, "n/.strings.properties.tmp123"), "k=v\n"); // not monitored: ignored until renamed
    renameSync(join(w.src, "n/.strings.properties.tmp123"), join(w.src, "n/strings.properties"));

    await eventually(fileOnReplica(w, "a.txt", "one\ntwo\n"), 10_000, "modified a.txt");
    await eventually(fileOnReplica(w, "deep/er/still/new.txt", "fresh\n"), 10_000, "new file in a new nested dir");
    await eventually(fileOnReplica(w, "n/renamed.txt", "old\n"), 10_000, "renamed file");
    await eventually(fileOnReplica(w, "n/strings.properties", "k=v\n"), 10_000, "atomically written file");
    // the replica never sees the temp name; the change log has the appended line
    expect(existsSync(join(w.dest, "n/.strings.properties.tmp123"))).toBe(false);
    expect(readFileSync(join(w.dest, "gone.txt"), "utf8")).toBe("bye\n");
    expect(d.stderr()).not.toMatch(/error|gone\.txt.*pending/i);
    await d.waitFor((e) => e.event === "change" && e.path === "a.txt" && String(e.summary).includes("+1"), 5000, "a.txt change event");
    expect(w.changes()).toContain("File: a.txt\nChanges:\n--- before\n+++ after\n@@ -1,0 +2,1 @@\n+two\n");
    expect(await d.stop("SIGTERM")).toBe(0);
  });

  test("a burst of 1,000 file updates lands completely, in few batches", async () => {
    const w = world();
    const files: Record<string, Uint8Array> = {};
    for (let i = 0; i < 1000; i++) files[`snmp/${i % 20}/if${i}/ifHCInOctets.bin`] = fakeBinary(4096, i + 1);
    writeTree(w.src, files);
    const d = daemon(w.writeConfig(fast));
    await started(d);
    const before = d.events.length;
    for (let i = 0; i < 1000; i++) writeFileSync(join(w.src, `snmp/${i % 20}/if${i}/ifHCInOctets.bin`), fakeBinary(4096, i + 5000));
    const burstEnd = Date.now();
    const shipped = () => d.events.slice(before).filter((e) => e.event === "batch").reduce((n, e) => n + Number(e.files), 0);
    await eventually(() => shipped() >= 1000, 20_000, "1,000 files confirmed in batch events");
    const last = d.events.slice(before).filter((e) => e.event === "batch").at(-1);
    const took = Date.parse(String(last?.time)) - burstEnd;
    const batches = d.events.slice(before).filter((e) => e.event === "batch").length;
    expect(batches).toBeLessThanOrEqual(5);
    const dest = readTree(w.dest);
    for (const [k, v] of readTree(w.src)) expect(dest.get(k) === v).toBe(true);
    console.log(`1,000 updates confirmed ${took} ms after the burst ended, in ${batches} batches`);
  });

  test("a file rewritten every 100 ms for 5 s (debounce 1 s) still ships at least twice while it is busy", async () => {
    const w = world();
    writeTree(w.src, { "busy.txt": "0\n" });
    const d = daemon(w.writeConfig({ ...fast, max_delay: 1.5 }));
    await started(d);
    // What the replica holds, sampled while the file is being rewritten (and a little after, for a transfer
    // in flight): each intermediate value seen there is a version shipped while the file was busy.
    const seen = new Set<string>();
    const sample = () => {
      try {
        seen.add(readFileSync(join(w.dest, "busy.txt"), "utf8"));
      } catch {
        // mid-rename: sample again next time
      }
    };
    const t0 = Date.now();
    let n = 0;
    while (Date.now() - t0 < 5000) {
      writeFileSync(join(w.src, "busy.txt"), `${++n}\n`);
      await Bun.sleep(100);
      sample();
    }
    for (let i = 0; i < 20; i++, await Bun.sleep(100)) sample();
    seen.delete("0\n");
    seen.delete(`${n}\n`);
    expect(seen.size).toBeGreaterThanOrEqual(2);
    await eventually(fileOnReplica(w, "busy.txt", `${n}\n`), 10_000, "the last version");
    await d.waitFor((e) => e.event === "change" && e.path === "busy.txt" && e.kind === "text modified", 10_000, "the final version recorded");
  });

  test("events during the initial pass are not lost", async () => {
    const w = world();
    const files: Record<string, Uint8Array> = {};
    for (let i = 0; i < 400; i++) files[`big/f${i}.bin`] = fakeBinary(100_000, i + 1);
    writeTree(w.src, files);
    // bwlimit slows the initial transfer so the writes below surely land while it runs
    const d = daemon(w.writeConfig({ ...fast, rsync_options: { bwlimit: 20_000 } }));
    await d.waitFor((e) => e.event === "start", 10_000, "start");
    writeTree(w.src, { "during/new.txt": "written during the initial pass\n" });
    writeFileSync(join(w.src, "big/f0.bin"), fakeBinary(100_000, 999));
    expect(d.events.some((e) => e.event === "pass")).toBe(false);
    await started(d);
    await eventually(fileOnReplica(w, "during/new.txt", "written during the initial pass\n"), 15_000, "file written during the pass");
    await eventually(() => {
      try {
        return readFileSync(join(w.dest, "big/f0.bin")).equals(Buffer.from(fakeBinary(100_000, 999)));
      } catch {
        return false;
      }
    }, 15_000, "file rewritten during the pass");
  });

  test("SIGTERM during a batch: exit 0, nothing lost; a restart completes the replica", async () => {
    const w = world();
    const files: Record<string, Uint8Array> = {};
    for (let i = 0; i < 300; i++) files[`x/f${i}.bin`] = fakeBinary(100_000, i + 1);
    writeTree(w.src, files);
    const cfg = w.writeConfig({ ...fast, rsync_options: { bwlimit: 10_000 } });
    const d = daemon(cfg);
    await d.waitFor((e) => e.event === "start", 10_000, "start");
    await Bun.sleep(800); // the initial transfer is running (30 MB at 10 MB/s)
    expect(await d.stop("SIGTERM")).toBe(0);
    const r = await runRrdsync(["--once", "--config", w.writeConfig({ ...fast })]);
    expect(r.code).toBe(0);
    expect(readTree(w.dest)).toEqual(readTree(w.src));
  });

  test("a second SIGINT while stopping: exit 130 at once (the exit-code table's row), nothing lost; a restart completes the replica", async () => {
    const w = world();
    const files: Record<string, Uint8Array> = {};
    // a transfer that outlasts the two signals: 30 MB at 10 MB/s through rsync; SFTP (no bwlimit) one file at a time, 90 MB
    for (let i = 0; i < 300; i++) files[`x/f${i}.bin`] = fakeBinary(TRANSPORT === "sftp" ? 300_000 : 100_000, i + 1);
    writeTree(w.src, files);
    const logFile = join(w.dir, "daemon.log");
    const cfg = w.writeConfig({ ...fast, rsync_options: { bwlimit: 10_000 }, logging: { log_file: logFile } });
    const slow = JSON.parse(readFileSync(cfg, "utf8"));
    writeFileSync(cfg, JSON.stringify({ ...slow, remote_sync: { ...slow.remote_sync, sftp_parallel_files: 1 } }));
    const d = daemon(cfg);
    await d.waitFor((e) => e.event === "start", 10_000, "start");
    d.proc.kill("SIGINT");
    await eventually(() => existsSync(logFile) && readFileSync(logFile, "utf8").includes("SIGINT: stopping"), 10_000, "the first SIGINT taken");
    const t0 = Date.now();
    expect(await d.stop("SIGINT")).toBe(130);
    expect(Date.now() - t0).toBeLessThan(2_000); // at once, not after the transfer
    expect(d.stderr()).toContain("SIGINT again: exiting at once");
    const r = await runRrdsync(["--once", "--config", w.writeConfig({ ...fast })]);
    expect(r.code).toBe(0);
    expect(readTree(w.dest)).toEqual(readTree(w.src));
  });

  test("SIGHUP after the log file was renamed (logrotate) makes it write a new log file", async () => {
    const w = world();
    writeTree(w.src, { "a.txt": "a\n" });
    const d = daemon(w.writeConfig(fast));
    await started(d);
    renameSync(w.logFile, `${w.logFile}.1`);
    d.proc.kill("SIGHUP");
    await eventually(() => existsSync(w.logFile), 5000, "a new log file after SIGHUP");
    appendFileSync(join(w.src, "a.txt"), "b\n");
    await eventually(() => readFileSync(w.logFile, "utf8").includes("a.txt"), 10_000, "the next change logged in the new file");
    expect(readFileSync(`${w.logFile}.1`, "utf8")).toContain("watching");
  });

  test("a kernel queue overflow (daemon paused with SIGSTOP during a flood) ends in a rescan and a complete replica", async () => {
    const w = world();
    writeTree(w.src, { "seed.txt": "s\n" });
    mkdirSync(join(w.src, "flood")); // before the pause: a directory made while paused has no watch yet, so no events
    const d = daemon(w.writeConfig(fast));
    await started(d);
    d.proc.kill("SIGSTOP");
    // kill() only queues the signal: flood once the process is really stopped, or it may read the first events.
    await eventually(() => /^\d+ \(.*\) T /.test(readFileSync(`/proc/${d.proc.pid}/stat`, "utf8")), 5000, "the daemon stopped");
    // More events than fs.inotify.max_queued_events (16384 by default) while nobody reads them.
    const max = Number(readFileSync("/proc/sys/fs/inotify/max_queued_events", "utf8"));
    const n = max + 2000;
    for (let i = 0; i < n; i++) writeFileSync(join(w.src, "flood", `f${i}.txt`), `${i}\n`);
    d.proc.kill("SIGCONT");
    const count = () => {
      try {
        return readdirSync(join(w.dest, "flood")).length;
      } catch {
        return 0;
      }
    };
    await eventually(() => count() === n, 60_000, `all ${n} flood files on the replica`);
    expect(readFileSync(w.logFile, "utf8").includes("overflowed")).toBe(true); // (not toMatch: the log is megabytes)
  });
});
