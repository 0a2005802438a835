// Crash safety: kill -9 of `rrdsync --once` at random moments; every rerun converges and the state DB is sound.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { Database } from "bun:sqlite";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { visitedBefore } from "../../../src/source/walk.ts";
import { type SshdFixture, startSshd } from "../../helpers/sshd.ts";
import { fakeBinary, makeWorld, readTree, rrdsyncCommand, runRrdsync, TRANSPORT, writeTree } from "../../helpers/world.ts";

setDefaultTimeout(180_000);

let sshd: SshdFixture;
beforeAll(async () => {
  sshd = await startSshd();
});
afterAll(async () => {
  await sshd.cleanup();
});

test("kill -9 at 10 random moments: each rerun converges, the DB passes integrity_check, the change log has only whole entries", async () => {
  const w = makeWorld(sshd, "crash");
  try {
    const files: Record<string, Uint8Array | string> = {};
    // SFTP has no bandwidth limit: bigger files, one at a time, stretch its runs the same way
    const size = TRANSPORT === "sftp" ? 1_000_000 : 40_000;
    for (let i = 0; i < 120; i++) files[`snmp/${i % 6}/f${i}.bin`] = fakeBinary(size, i + 1);
    for (let i = 0; i < 20; i++) files[`snmp/${i % 6}/s${i}.properties`] = `k=${i}\n`;
    writeTree(w.src, files);
    // bwlimit stretches each run over a couple of seconds, so the kills land inside transfers too
    // its own file: the reruns below rewrite config.json
    const cfg = JSON.parse(readFileSync(w.writeConfig(), "utf8"));
    const slow = join(w.dir, "slow.json");
    writeFileSync(slow, JSON.stringify({ ...cfg, rsync_options: { bwlimit: 3000 }, remote_sync: { ...cfg.remote_sync, sftp_parallel_files: 1 } }));
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let round = 0; round < 10; round++) {
      // change a few files between rounds, as OpenNMS would
      for (let j = 0; j < 15; j++) {
        const i = Math.floor(rand() * 120);
        writeTree(w.src, { [`snmp/${i % 6}/f${i}.bin`]: fakeBinary(size, 1000 * round + i) });
      }
      writeTree(w.src, { [`snmp/${round % 6}/s${round}.properties`]: `k=${round}\nround=${round}\n` });
      const p = Bun.spawn([...rrdsyncCommand(), "--once", "-q", "--config", slow], { stdout: "ignore", stderr: "ignore" });
      await Bun.sleep(Math.floor(rand() * 1500));
      p.kill("SIGKILL");
      await p.exited;
      const r = await runRrdsync(["--once", "--config", w.writeConfig()]);
      expect({ round, code: r.code, stderr: r.stderr }).toEqual({ round, code: 0, stderr: "" });
      const src = readTree(w.src);
      const dest = readTree(w.dest);
      for (const [k, v] of src) expect(dest.get(k) === v).toBe(true);
      // nothing half-sent left behind either (rsync's temp files, a killed run's partials)
      expect({ round, extra: [...dest.keys()].filter((k) => !src.has(k)) }).toEqual({ round, extra: [] });
      const db = new Database(w.stateFile, { readonly: true });
      expect((db.query("PRAGMA integrity_check").get() as { integrity_check: string }).integrity_check).toBe("ok");
      db.close();
    }
    // every entry is whole: each starts with Timestamp:/File:/Changes: and ends with the 80-dash rule
    const log = readFileSync(w.changeLog, "utf8");
    expect(log.endsWith(`${"-".repeat(80)}\n`)).toBe(true);
    for (const block of log.split(`${"-".repeat(80)}\n`).filter((b) => b !== "")) {
      expect(block).toMatch(/^Timestamp: .*\nFile: .*\nChanges:\n/);
    }
  } finally {
    w.cleanup();
  }
});

test("a first sync killed at random moments: rsync's one run is all or nothing, SFTP resumes after its last slice; both converge", async () => {
  const w = makeWorld(sshd, "crash-first");
  try {
    const files: Record<string, Uint8Array | string> = {};
    const size = TRANSPORT === "sftp" ? 400_000 : 30_000;
    for (let i = 0; i < 150; i++) files[`snmp/${i % 5}/r${Math.floor(i / 5) % 6}/f${i}.bin`] = fakeBinary(size, i + 1);
    for (let i = 0; i < 30; i++) files[`snmp/${i % 5}/r${i % 6}/strings.properties`] = `ifAlias=${i}\n`;
    writeTree(w.src, files);
    await Bun.sleep(2200); // older than the whole-tree run's 2 s margin: the run vouches for them
    const over = { slice_max_files: 20, change_tracking: { backup_dir: w.backupDir, change_log_file: w.changeLog, first_sync_entries: "summary" } };
    const cfg = JSON.parse(readFileSync(w.writeConfig(over), "utf8"));
    const slow = join(w.dir, "slow.json");
    writeFileSync(slow, JSON.stringify({ ...cfg, rsync_options: { bwlimit: 2000 }, remote_sync: { ...cfg.remote_sync, sftp_parallel_files: 1 } }));
    let seed = 11;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    /** the state: its rows and the sliced first sync's position; `check`: after a kill, the DB must be sound */
    const look = (check = true): { rows: number; after: string | null | undefined } => {
      if (!existsSync(w.stateFile)) return { rows: 0, after: undefined };
      const db = new Database(w.stateFile, { readonly: true });
      try {
        db.exec("PRAGMA busy_timeout = 5000");
        if (check) expect((db.query("PRAGMA integrity_check").get() as { integrity_check: string }).integrity_check).toBe("ok");
        const rec = db.query("SELECT value FROM meta WHERE key = 'first_sync'").get() as { value: string } | null;
        const rows = (db.query("SELECT count(*) AS n FROM files").get() as { n: number }).n;
        return { rows, after: rec === null ? undefined : (JSON.parse(rec.value) as { after: string | null }).after };
      } catch (e) {
        if (!check || String(e).includes("no such table")) return { rows: 0, after: undefined }; // polled while it starts
        throw e;
      } finally {
        db.close();
      }
    };
    const progress: string[] = [];
    for (let round = 0; round < 8; round++) {
      const p = Bun.spawn([...rrdsyncCommand(), "--once", "-q", "--config", slow], { stdout: "ignore", stderr: "ignore" });
      if (TRANSPORT === "sftp") {
        // a random moment after it committed one more slice (inside the next one's transfer, or its commit)
        const before = look(false).after;
        const t0 = Date.now();
        while (p.exitCode === null && look(false).after === before && Date.now() - t0 < 30_000) await Bun.sleep(20);
        await Bun.sleep(Math.floor(rand() * 400));
      } else {
        await Bun.sleep(300 + Math.floor(rand() * 2500));
      }
      p.kill("SIGKILL");
      await p.exited;
      const now = look();
      if (TRANSPORT === "sftp") {
        if (now.after === undefined && now.rows > 0) break; // it finished before the kill
        if (now.after != null) progress.push(now.after);
      } else {
        // one run, one transaction: nothing of a killed run is recorded, or all of it
        expect([0, 180]).toContain(now.rows);
        if (now.rows === 180) break;
      }
    }
    if (TRANSPORT === "sftp") {
      // what was committed only moves forward in the walk's order: a killed run loses at most its open slice
      for (let i = 1; i < progress.length; i++) expect(visitedBefore(progress[i - 1] as string, progress[i] as string)).toBe(true);
      expect(progress.length).toBeGreaterThan(0);
    }
    const r = await runRrdsync(["--once", "--config", w.writeConfig(over)]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    const src = readTree(w.src);
    const dest = readTree(w.dest);
    for (const [k, v] of src) expect({ k, same: dest.get(k) === v }).toEqual({ k, same: true });
    expect([...dest.keys()].filter((k) => !src.has(k))).toEqual([]);
    expect(look()).toEqual({ rows: src.size, after: undefined });
    // one summary entry in the change log; every file's own entry is in the DB
    expect(w.changes()).toMatch(/^File: \.\nChanges:\nFirst sync: 180 files/m);
    expect(w.changes().match(/^File: /gm)?.length).toBeLessThanOrEqual(3); // at least once, more only after a kill
    const log = await runRrdsync(["log", "--kind", "created", "--json", "--config", w.configPath]);
    const created = new Set(log.stdout.trim().split("\n").map((l) => (JSON.parse(l) as { path: string }).path));
    for (const k of src.keys()) expect({ k, logged: created.has(k) }).toEqual({ k, logged: true });
  } finally {
    w.cleanup();
  }
});
