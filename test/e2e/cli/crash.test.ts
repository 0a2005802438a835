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

test("a first sync in slices, kill -9 at random moments: each run resumes after the last slice committed, and it converges", async () => {
  const w = makeWorld(sshd, "crash-slices");
  try {
    const files: Record<string, Uint8Array | string> = {};
    const size = TRANSPORT === "sftp" ? 400_000 : 30_000;
    for (let i = 0; i < 150; i++) files[`snmp/${i % 5}/r${Math.floor(i / 5) % 6}/f${i}.bin`] = fakeBinary(size, i + 1);
    for (let i = 0; i < 30; i++) files[`snmp/${i % 5}/r${i % 6}/strings.properties`] = `ifAlias=${i}\n`;
    writeTree(w.src, files);
    const cfg = JSON.parse(readFileSync(w.writeConfig({ slice_max_files: 20 }), "utf8"));
    const slow = join(w.dir, "slow.json");
    writeFileSync(slow, JSON.stringify({ ...cfg, rsync_options: { bwlimit: 2000 }, remote_sync: { ...cfg.remote_sync, sftp_parallel_files: 1 } }));
    let seed = 11;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const progress: string[] = [];
    /** the first sync's committed position, or undefined once it is done (no record) */
    const committed = (): string | null | undefined => {
      if (!existsSync(w.stateFile)) return null;
      const db = new Database(w.stateFile, { readonly: true });
      try {
        const rec = db.query("SELECT value FROM meta WHERE key = 'first_sync'").get() as { value: string } | null;
        return rec === null ? (db.query("SELECT count(*) AS n FROM files").get() as { n: number }).n > 0 ? undefined : null : (JSON.parse(rec.value) as { after: string | null }).after;
      } catch {
        return null; // not made yet
      } finally {
        db.close();
      }
    };
    for (let round = 0; round < 8; round++) {
      const p = Bun.spawn([...rrdsyncCommand(), "--once", "-q", "--config", slow], { stdout: "ignore", stderr: "ignore" });
      // kill it at a random moment after it committed one more slice (inside the next one's transfer, or its commit)
      const before = committed();
      const t0 = Date.now();
      while (p.exitCode === null && committed() === before && Date.now() - t0 < 30_000) await Bun.sleep(20);
      await Bun.sleep(Math.floor(rand() * 400));
      p.kill("SIGKILL");
      await p.exited;
      const db = new Database(w.stateFile, { readonly: true });
      expect((db.query("PRAGMA integrity_check").get() as { integrity_check: string }).integrity_check).toBe("ok");
      db.close();
      const after = committed();
      if (after === undefined) break; // it finished before the kill
      if (after !== null) progress.push(after);
      // a file of an early directory changes meanwhile: the resumed run compares what its slices committed
      writeTree(w.src, { "snmp/0/r0/f0.bin": fakeBinary(size, 1000 + round) });
    }
    // what was committed only moves forward in the walk's order: a killed run loses at most its open slice
    for (let i = 1; i < progress.length; i++) expect(visitedBefore(progress[i - 1] as string, progress[i] as string)).toBe(true);
    expect(progress.length).toBeGreaterThan(0);
    const r = await runRrdsync(["--once", "--config", w.writeConfig({ slice_max_files: 20 })]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    const src = readTree(w.src);
    const dest = readTree(w.dest);
    for (const [k, v] of src) expect({ k, same: dest.get(k) === v }).toEqual({ k, same: true });
    expect([...dest.keys()].filter((k) => !src.has(k))).toEqual([]);
    const db = new Database(w.stateFile, { readonly: true });
    expect((db.query("SELECT count(*) AS n FROM files").get() as { n: number }).n).toBe(src.size);
    expect(db.query("SELECT value FROM meta WHERE key = 'first_sync'").get()).toBeNull();
    db.close();
    // one summary entry in the change log (more than one slice); every file's own entry is in the DB
    expect(w.changes()).toMatch(/^File: \.\nChanges:\nFirst sync: 180 files/m);
    const log = await runRrdsync(["log", "--kind", "created", "--json", "--config", w.configPath]);
    const created = new Set(log.stdout.trim().split("\n").map((l) => (JSON.parse(l) as { path: string }).path));
    for (const k of src.keys()) expect({ k, logged: created.has(k) }).toEqual({ k, logged: true });
  } finally {
    w.cleanup();
  }
});
