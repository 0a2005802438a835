// The unit `rrdsync install` writes, run by a real systemd (booted in a container, test/helpers/container.ts): it
// starts (Type=notify: `systemctl start` returns once READY=1 came after the initial pass), replicates over ssh from
// inside its sandbox (seccomp, no capabilities, read-only system), reloads on SIGHUP, is restarted by the watchdog
// when its main loop stops, and stops cleanly. Skipped, with the reason in the names, where no container can boot.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { appendFileSync, chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeRrd } from "../../scripts/bench/generate-tree.ts";
import { type BenchUser, benchUser } from "../../scripts/bench/user.ts";
import { compiledBinary } from "../helpers/binary.ts";
import { Container, containerUnsupported } from "../helpers/container.ts";
import { eventually } from "../helpers/daemon.ts";
import { type SshdFixture, startSshd } from "../helpers/sshd.ts";
import { readTree, writeTree } from "../helpers/world.ts";

setDefaultTimeout(120_000);

const unsupported = containerUnsupported();
const skipWhy = unsupported === null ? "" : ` (SKIPPED: ${unsupported})`;
/** The highest `systemd-analyze security` exposure docs/install.md quotes for the installed unit (lower is better). */
const EXPOSURE_MAX = 2.0;

let box: Container;
let sshd: SshdFixture;
let user: BenchUser;
let dest = "";
let work = "";
const SRC = "/srv/rrd";
const inBox = (p: string) => join(box.root, p);

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out, err };
}

/** Installs the compiled binary into the container's root (as a package build would: --root), for NAME or root. */
async function install(asUser: string | null): Promise<string> {
  const r = await run([compiledBinary(), "install", "--root", box.root, ...(asUser ? ["--user", asUser] : []), "--source", SRC, "--dest", `${sshd.user}@127.0.0.1:${dest}`]);
  expect({ code: r.code, err: r.err }).toEqual({ code: 0, err: "" });
  return r.out;
}

/** The admin's part (install's next steps): the standby's port, the key and known_hosts, readable by the daemon's user. */
function finishConfig(): void {
  const home = `/var/lib/${user.name}`; // benchUser's home
  const ssh = join(home, ".ssh");
  mkdirSync(inBox(ssh), { recursive: true, mode: 0o700 });
  writeFileSync(inBox(join(ssh, "id_ed25519")), readFileSync(sshd.clientKey), { mode: 0o600 });
  writeFileSync(inBox(join(ssh, "known_hosts")), readFileSync(sshd.knownHosts));
  for (const f of ["", "id_ed25519", "known_hosts"]) chownSync(inBox(join(ssh, f)), user.uid, user.gid);
  const cfg = inBox("/etc/rrdsync/config.json");
  writeFileSync(cfg, readFileSync(cfg, "utf8")
    .replace('"port": 22', `"port": ${sshd.port}`)
    .replace(/"ssh_key_path": "[^"]*"/, `"ssh_key_path": "${ssh}/id_ed25519"`)
    .replace(/"known_hosts_file": "[^"]*"/, `"known_hosts_file": "${ssh}/known_hosts"`)
    .replace('"debounce_time": 5', '"debounce_time": 1'));
}

async function status(pid: string): Promise<Record<string, string>> {
  const r = await box.exec(["cat", `/proc/${pid}/status`]);
  return Object.fromEntries(r.out.split("\n").filter((l) => l.includes(":")).map((l) => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 1).trim()]));
}

const replicaMatches = () => {
  const a = readTree(inBox(SRC));
  const b = readTree(dest);
  return a.size > 0 && [...a].every(([k, v]) => b.get(k) === v);
};

describe.skipIf(unsupported !== null)(`the installed unit under systemd${skipWhy}`, () => {
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "rrdsync-systemd-"));
    dest = join(work, "replica");
    mkdirSync(dest);
    const u = benchUser();
    if (u === null) throw new Error("cannot create the daemon's user");
    user = u;
    sshd = await startSshd();
    box = await Container.create();
    writeTree(inBox(SRC), {
      "snmp/1/ds.properties": "ifAlias=uplink\n",
      "snmp/1/mib2-interfaces/ifHCInOctets.rrd": makeRrd(["ifHCInOctets"], "COUNTER", 1_700_000_000, () => 0.5),
      "snmp/2/strings.properties": "sysName=node2\n",
    });
    // OpenNMS's tree is world-readable; the daemon's user only reads it
    await run(["chmod", "-R", "a+rX", inBox("/srv")]);
    await install(user.name);
    finishConfig();
    await box.boot();
  });

  afterAll(async () => {
    await box?.destroy();
    await sshd?.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  test("systemctl start returns after READY=1 (the initial pass is on the replica); the daemon runs sandboxed as its user", async () => {
    const start = await box.exec(["systemctl", "start", "rrdsync"], 90_000);
    expect({ code: start.code, err: start.err }).toEqual({ code: 0, err: "" });
    // Type=notify: "active" only after READY=1, which comes after the initial pass, so the replica is complete now
    expect(replicaMatches()).toBe(true);
    const s = await box.show("rrdsync", ["ActiveState", "SubState", "StatusText", "Type", "WatchdogUSec", "NRestarts", "MainPID"]);
    expect(s).toMatchObject({ ActiveState: "active", SubState: "running", Type: "notify", WatchdogUSec: "2min", NRestarts: "0" });
    expect(s.StatusText).toBe(`watching ${SRC} → ${sshd.user}@127.0.0.1:${dest} (port ${sshd.port})`);
    const proc = await status(s.MainPID as string);
    expect(proc.Uid?.split(/\s+/)[0]).toBe(String(user.uid));
    expect(proc).toMatchObject({ NoNewPrivs: "1", Seccomp: "2", CapBnd: "0000000000000000", CapEff: "0000000000000000" });

    // it keeps replicating: a new file and an edit arrive over ssh, from inside the sandbox
    writeTree(inBox(SRC), { "snmp/3/strings.properties": "sysName=node3\n" });
    appendFileSync(inBox(`${SRC}/snmp/1/ds.properties`), "ifSpeed=1000\n");
    await eventually(replicaMatches, 20_000, "the new and the edited file on the replica");

    // systemctl reload = SIGHUP: the log files are reopened (logrotate's postrotate does the same)
    expect((await box.exec(["systemctl", "reload", "rrdsync"])).code).toBe(0);
    await eventually(() => readFileSync(inBox("/var/log/rrdsync/rrdsync.log"), "utf8").includes("SIGHUP: log files reopened"), 10_000, "the reopen line");
    expect((await box.show("rrdsync", ["NRestarts"])).NRestarts).toBe("0");
  });

  test(`systemd-analyze security rates the running unit at most ${EXPOSURE_MAX}`, async () => {
    const r = await box.exec(["systemd-analyze", "security", "--no-pager", "rrdsync.service"]);
    const level = Number(/Overall exposure level for rrdsync\.service: ([\d.]+)/.exec(r.out)?.[1]);
    expect(level).toBeLessThanOrEqual(EXPOSURE_MAX);
  });

  test("a main loop that stops feeding the watchdog is killed and restarted; then SIGTERM stops it cleanly", async () => {
    const dropIn = inBox("/etc/systemd/system/rrdsync.service.d");
    mkdirSync(dropIn, { recursive: true });
    writeFileSync(join(dropIn, "test-watchdog.conf"), "[Service]\nWatchdogSec=3\nTimeoutAbortSec=2\n");
    expect((await box.exec(["systemctl", "daemon-reload"])).code).toBe(0);
    expect((await box.exec(["systemctl", "restart", "rrdsync"], 90_000)).code).toBe(0);
    const before = await box.show("rrdsync", ["MainPID", "NRestarts", "WatchdogUSec"]);
    expect(before.WatchdogUSec).toBe("3s");
    // alive and fed: well past the 3 s limit, no restart
    await Bun.sleep(7000);
    expect(await box.show("rrdsync", ["MainPID", "NRestarts"])).toEqual({ MainPID: before.MainPID as string, NRestarts: before.NRestarts as string });

    // stuck (SIGSTOP): no more WATCHDOG=1, so systemd aborts it and starts a new one
    expect((await box.exec(["kill", "-STOP", before.MainPID as string])).code).toBe(0);
    let after: Record<string, string> = {};
    const t0 = Date.now();
    while (Date.now() - t0 < 30_000) {
      after = await box.show("rrdsync", ["MainPID", "NRestarts", "ActiveState"]);
      if (after.NRestarts === String(Number(before.NRestarts) + 1) && after.ActiveState === "active") break;
      await Bun.sleep(500);
    }
    expect(after.ActiveState).toBe("active");
    expect(after.NRestarts).toBe(String(Number(before.NRestarts) + 1));
    expect(after.MainPID).not.toBe(before.MainPID);
    const journal = await box.exec(["journalctl", "-u", "rrdsync", "--no-pager", "-o", "cat"]);
    expect(journal.out).toContain("Watchdog timeout (limit 3s)!");

    rmSync(dropIn, { recursive: true });
    await box.exec(["systemctl", "daemon-reload"]);
    expect((await box.exec(["systemctl", "stop", "rrdsync"], 90_000)).code).toBe(0);
    expect(await box.show("rrdsync", ["ActiveState", "Result", "ExecMainStatus"])).toEqual({ ActiveState: "inactive", Result: "success", ExecMainStatus: "0" });
  });

  test("installed without --user, it runs as root keeping only CAP_DAC_READ_SEARCH", async () => {
    // switching from a user to root: install says the state and logs are still the user's, and how to fix that
    const out = await install(null);
    for (const d of ["/var/lib/rrdsync", "/var/log/rrdsync"]) {
      expect(out).toContain(`warning: ${inBox(d)} exists but is not root's: the daemon cannot write it. Fix: chown -R root:root ${inBox(d)}`);
      expect((await run(["chown", "-R", "root:root", inBox(d)])).code).toBe(0);
    }
    const unit = readFileSync(inBox("/etc/systemd/system/rrdsync.service"), "utf8");
    expect(unit).not.toContain("User=");
    expect((await box.exec(["systemctl", "daemon-reload"])).code).toBe(0);
    writeTree(inBox(SRC), { "snmp/4/strings.properties": "sysName=node4\n" });
    expect((await box.exec(["systemctl", "start", "rrdsync"], 90_000)).code).toBe(0);
    expect(replicaMatches()).toBe(true);
    const s = await box.show("rrdsync", ["ActiveState", "MainPID"]);
    expect(s.ActiveState).toBe("active");
    const proc = await status(s.MainPID as string);
    expect(proc.Uid?.split(/\s+/)[0]).toBe("0");
    expect(proc).toMatchObject({ NoNewPrivs: "1", Seccomp: "2", CapBnd: "0000000000000004" }); // bit 2: CAP_DAC_READ_SEARCH
    expect((await box.exec(["systemctl", "stop", "rrdsync"], 90_000)).code).toBe(0);
  });
});
