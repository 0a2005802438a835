// End to end: a replica that refuses writes (an immutable directory, a full file system) never counts as synced.
// The file stays pending, named with the real cause, and the run after the replica is writable again delivers it.
// Local destination (rsync, run once), rsync over ssh and SFTP (RRDSYNC_TEST_TRANSPORT).
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Target } from "../../../src/config/types.ts";
import { explainFailureOnline } from "../../../src/transport/rsync/errors.ts";
import { refuseWrites, smallFileSystem } from "../../helpers/replica-fs.ts";
import { e2eSuite } from "../../helpers/suite.ts";
import { fakeBinary, runRrdsync, TRANSPORT, type World, writeTree } from "../../helpers/world.ts";

setDefaultTimeout(120_000);
// Registered before the suite's own afterEach, which removes the worlds: a mount or an immutable dir blocks that.
const undo: Array<() => void> = [];
afterEach(() => {
  for (const u of undo.splice(0).reverse()) u();
});
const suite = e2eSuite("refuse");

const paths = TRANSPORT === "rsync" ? (["local", "ssh"] as const) : (["ssh"] as const);
const label = (where: "local" | "ssh") => (where === "local" ? "local destination" : `${TRANSPORT} over ssh`);
function config(w: World, where: "local" | "ssh"): string {
  return where === "local" ? w.writeConfig({ remote_sync: { remote_dest_dir: w.dest } }) : w.writeConfig();
}
function target(w: World, where: "local" | "ssh"): Target {
  const s = suite.sshd();
  const base = { user: "", host: "", port: 22, destDir: w.dest, sshKeyPath: "", knownHostsFile: "", sshCiphers: "", transport: "rsync" as const, sftpParallelFiles: 8, sshPassphraseFile: "" };
  return where === "local" ? base : { ...base, user: s.user, host: s.host, port: s.port, sshKeyPath: s.clientKey, knownHostsFile: s.knownHosts };
}
const pendingOf = async (cfg: string) => JSON.parse((await runRrdsync(["status", "--json", "--config", cfg])).stdout).pending as number;

for (const where of paths) {
  describe(`a replica that refuses writes (${label(where)})`, () => {
    test("an immutable replica directory: exit 1, the file pending and named; writable again, the next run delivers it", async () => {
      const w = suite.world();
      writeTree(w.src, { "d/a.txt": "a1\n", "d/b.txt": "b1\n", "c.txt": "c1\n" });
      const cfg = config(w, where);
      expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
      writeTree(w.src, { "d/a.txt": "a2, longer\n", "c.txt": "c2\n" });
      undo.push(refuseWrites(join(w.dest, "d")));
      for (let run = 1; run <= 2; run++) {
        const r = await runRrdsync(["--once", "--config", cfg]);
        expect(r.code).toBe(1);
        // named by its own name (rsync's error names its temporary file), with the cause, every run
        expect(r.stderr).toMatch(/d\/a\.txt: not synced, stays pending: .*(Operation not permitted|permission denied)/);
        expect(await pendingOf(cfg)).toBe(1);
        }
      expect(readFileSync(join(w.dest, "c.txt"), "utf8")).toBe("c2\n");
      expect(readFileSync(join(w.dest, "d/a.txt"), "utf8")).toBe("a1\n");
      (undo.pop() as () => void)();
      const r = await runRrdsync(["--once", "--config", cfg]);
      expect({ code: r.code, err: r.stderr }).toEqual({ code: 0, err: "" });
      expect(readFileSync(join(w.dest, "d/a.txt"), "utf8")).toBe("a2, longer\n");
      expect(await pendingOf(cfg)).toBe(0);
    });

    test.if(where === "local")("the same with checksum compares (the check after exit 23 reads both ends)", async () => {
      const w = suite.world();
      writeTree(w.src, { "d/a.txt": "a1\n", "c.txt": "c1\n" });
      const cfg = w.writeConfig({ remote_sync: { remote_dest_dir: w.dest }, rsync_options: { checksum: true } });
      expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
      writeTree(w.src, { "d/a.txt": "a2\n", "c.txt": "c2\n" });
      undo.push(refuseWrites(join(w.dest, "d")));
      const r = await runRrdsync(["--once", "--config", cfg]);
      expect(r.code).toBe(1);
      expect(await pendingOf(cfg)).toBe(1);
      expect(readFileSync(join(w.dest, "c.txt"), "utf8")).toBe("c2\n");
      (undo.pop() as () => void)();
      expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
      expect(readFileSync(join(w.dest, "d/a.txt"), "utf8")).toBe("a2\n");
    });

    test("the first sync (whole-tree run) into an immutable directory: those files pending, the rest synced", async () => {
      const w = suite.world();
      const files: Record<string, string> = { "d/a.txt": "a\n" };
      for (let i = 0; i < 30; i++) files[`n/f${i}.txt`] = `${i}\n`;
      writeTree(w.src, files);
      writeTree(w.dest, { "d/old.txt": "old\n" });
      undo.push(refuseWrites(join(w.dest, "d")));
      const cfg = config(w, where);
      const r = await runRrdsync(["--once", "--config", cfg]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/d\/a\.txt: not synced, stays pending: .*(Operation not permitted|permission denied)/);
      expect(await pendingOf(cfg)).toBe(1);
      expect(readFileSync(join(w.dest, "n/f29.txt"), "utf8")).toBe("29\n");
      (undo.pop() as () => void)();
      const again = await runRrdsync(["--once", "--config", cfg]);
      expect(again.code).toBe(0);
      expect(readFileSync(join(w.dest, "d/a.txt"), "utf8")).toBe("a\n");
    });

    test("a full replica: the error says No space left on device (not a broken pipe); with room again, it arrives", async () => {
      const w = suite.world();
      const big = fakeBinary(2_000_000, 7);
      writeTree(w.src, { "big.bin": big, "small.txt": "s\n" });
      const fs = smallFileSystem(w.dest, "64k");
      undo.push(fs.undo);
      const cfg = config(w, where);
      const r = await runRrdsync(["--once", "--config", cfg]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("No space left on device");
      expect(r.stderr).not.toContain("Broken pipe");
      expect(await pendingOf(cfg)).toBeGreaterThanOrEqual(1);
      // rsync over ssh loses the receiver's message now and then (exit 11, nothing on stderr): asked, the standby's
      // free space tells it
      const t = { ...target(w, where), destDir: w.dest };
      expect(await explainFailureOnline(11, [], t, { path: "big.bin", size: big.length })).toMatch(/: No space left on device, it seems: (the standby has )?\d+ KiB free in .*, big\.bin needs 1\.9 MiB/);
      fs.grow("8m");
      const again = await runRrdsync(["--once", "--config", cfg]);
      expect(again.code).toBe(0);
      expect(Buffer.compare(readFileSync(join(w.dest, "big.bin")), Buffer.from(big))).toBe(0);
      expect(await pendingOf(cfg)).toBe(0);
    });
  });
}
