// transport: "auto" against a standby with rsync and one without; "rsync" against one without says so.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { e2eSuite } from "../../helpers/suite.ts";
import { runRrdsync, type World, writeTree } from "../../helpers/world.ts";

setDefaultTimeout(60_000);

const withRsync = e2eSuite("auto");
const without = e2eSuite("norsync", { withoutRsync: true });
const noSftp = e2eSuite("nosftp", { withoutSftp: true });

function config(w: World, s: ReturnType<typeof withRsync.sshd>, transport: string): string {
  return w.writeConfig({
    remote_sync: { remote_user: s.user, remote_host: s.host, port: s.port, remote_dest_dir: w.dest, ssh_key_path: s.clientKey, known_hosts_file: s.knownHosts, transport },
  });
}

describe("transport choice", () => {
  test("auto picks rsync when the standby has it; the choice is logged once and shown by check", async () => {
    const w = withRsync.world();
    writeTree(w.src, { "a.txt": "a\n", "d/b.txt": "b\n" });
    const cfg = config(w, withRsync.sshd(), "auto");
    const r = await runRrdsync(["--once", "--config", cfg]);
    expect({ code: r.code, err: r.stderr }).toEqual({ code: 0, err: "" });
    expect(readFileSync(join(w.dest, "d/b.txt"), "utf8")).toBe("b\n");
    const log = readFileSync(w.logFile, "utf8");
    expect(log.match(/transport: rsync \(auto: rsync \d/g)).toHaveLength(1);
    const check = await runRrdsync(["check", "--config", cfg]);
    expect(check.code).toBe(0);
    expect(check.stdout).toMatch(/✓ transport: rsync \(auto: rsync \d[^)]* on the standby\)/);
    expect(check.stdout).toMatch(/✓ rsync \(standby\): rsync \d/);
  });

  test("auto picks SFTP when the standby has no rsync; deletes and renames work there too", async () => {
    const w = without.world();
    writeTree(w.src, { "a.txt": "a\n", "d/b.txt": "b\n" });
    const cfg = w.writeConfig({
      delete: true,
      max_delete: "100%",
      remote_sync: { remote_user: without.sshd().user, remote_host: "127.0.0.1", port: without.sshd().port, remote_dest_dir: w.dest, ssh_key_path: without.sshd().clientKey, known_hosts_file: without.sshd().knownHosts, transport: "auto" },
    });
    const r = await runRrdsync(["--once", "--config", cfg]);
    expect({ code: r.code, err: r.stderr }).toEqual({ code: 0, err: "" });
    expect(readFileSync(w.logFile, "utf8")).toContain("transport: sftp (auto: the standby has no rsync");
    Bun.spawnSync(["mv", join(w.src, "d/b.txt"), join(w.src, "d/c.txt")]);
    Bun.spawnSync(["rm", join(w.src, "a.txt")]);
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    expect(Bun.spawnSync(["find", w.dest, "-type", "f"]).stdout.toString().trim()).toBe(join(w.dest, "d/c.txt"));
    const check = await runRrdsync(["check", "--config", cfg]);
    expect(check.code).toBe(0);
    expect(check.stdout).toContain("✓ transport: sftp: files replaced atomically");
    expect(check.stdout).not.toContain("rsync (standby)");
  });

  test("rsync against a standby without it: exit 1, the message says rsync is missing there, and check says how to fix it", async () => {
    const w = without.world();
    writeTree(w.src, { "a.txt": "a\n" });
    const cfg = config(w, without.sshd(), "rsync");
    const r = await runRrdsync(["--once", "--config", cfg]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("rsync is not installed on 127.0.0.1");
    const check = await runRrdsync(["check", "--config", cfg]);
    expect(check.code).toBe(1);
    expect(check.stdout).toContain("✗ rsync (standby)");
    expect(check.stdout).toContain("fix: install rsync on the standby");
  });

  test("sftp against a standby without the SFTP subsystem: exit 1, the message says so; auto takes rsync there", async () => {
    const w = noSftp.world();
    writeTree(w.src, { "a.txt": "a\n" });
    const r = await runRrdsync(["--once", "--config", config(w, noSftp.sshd(), "sftp")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`the SFTP subsystem of 127.0.0.1:${noSftp.sshd().port} is not available`);
    const auto = await runRrdsync(["--once", "--config", config(w, noSftp.sshd(), "auto")]);
    expect({ code: auto.code, err: auto.stderr }).toEqual({ code: 0, err: "" });
    expect(readFileSync(join(w.dest, "a.txt"), "utf8")).toBe("a\n");
  });
});
