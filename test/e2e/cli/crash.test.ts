// Crash safety: kill -9 of `rrdsync --once` at random moments; every rerun converges and the state DB is sound.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { Database } from "bun:sqlite";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
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
