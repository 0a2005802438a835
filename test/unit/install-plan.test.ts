// install's plan as data: the steps and their order, the manual page, the unit and logrotate texts for other paths and a user, the
// paths refused because systemd or logrotate would read them differently; and NOTIFY_SOCKET's address encoding.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { INSTALL_DEFAULTS, type InstallOptions, keptOriginalPath, nextSteps, planInstall, type Step, renderLogrotate, renderUnit, unsafeForUnitFiles, unsafeDataDir, writableDirsOf } from "../../src/install/plan.ts";
import { notifySockaddr } from "../../src/watch/notify.ts";

const base: InstallOptions = {
  prefix: "/usr/local", etcDir: "/etc/rrdsync", configPath: "/etc/rrdsync/config.json", stateDir: "/var/lib/rrdsync",
  logDir: "/var/log/rrdsync", systemdDir: "/etc/systemd/system", logrotateDir: "/etc/logrotate.d", root: "", user: null,
};
const user = { name: "opennms", group: "opennms", uid: 990, gid: 990, home: "/opt/opennms" };

describe("planInstall", () => {
  test("directories first, the manifest last; no unit with --without-systemd", () => {
    const kinds = planInstall(base).map((s) => `${s.kind}:${s.path}`);
    expect(kinds[0]).toBe("dir:/usr/local/bin");
    expect(kinds.at(-1)).toBe("manifest:/etc/rrdsync/install-manifest.json");
    expect(kinds).toContain("file:/etc/systemd/system/rrdsync.service");
    const cronOnly = planInstall({ ...base, systemdDir: null }).map((s) => s.path);
    expect(cronOnly.some((p) => p.includes("systemd"))).toBe(false);
  });

  test("the manual page: built in (docs/rrdsync.1), in PREFIX/share/man/man1; an admin's own page is kept in the config directory", () => {
    const steps = planInstall({ ...base, prefix: "/opt/x" });
    const page = steps.find((s) => s.kind === "file" && s.role === "man");
    expect(page?.path).toBe("/opt/x/share/man/man1/rrdsync.1");
    expect(page?.kind === "file" ? page.text : "").toBe(readFileSync(join(import.meta.dir, "../../docs/rrdsync.1"), "utf8"));
    expect(steps.findIndex((s) => s.kind === "dir" && s.path === "/opt/x/share/man/man1")).toBeLessThan(steps.indexOf(page as Step));
    expect(keptOriginalPath("/etc/rrdsync", "/usr/local/share/man/man1/rrdsync.1", "man")).toBe("/etc/rrdsync/man1-rrdsync.1.rrdsync-orig");
  });

  test("the state and log directories are the daemon user's, 0750; the rest root's", () => {
    const dirs = planInstall({ ...base, user }).filter((s) => s.kind === "dir");
    for (const d of dirs) {
      const own = d.role === "state" || d.role === "log";
      expect({ path: d.path, owner: d.owner, mode: d.mode }).toEqual({ path: d.path, owner: own ? { uid: 990, gid: 990 } : null, mode: own ? 0o750 : 0o755 });
    }
  });
});

describe("the unit and the logrotate snippet", () => {
  test("the embedded unit with the defaults is the template itself", () => {
    const t = renderUnit(base);
    expect(t).toContain(`\nExecStart=${INSTALL_DEFAULTS.prefix}/bin/rrdsync --watch --config /etc/rrdsync/config.json\n`);
    for (const line of ["Type=notify", "WatchdogSec=120", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=read-only", "PrivateTmp=yes", "CapabilityBoundingSet=CAP_DAC_READ_SEARCH"]) {
      expect(t).toContain(`\n${line}\n`);
    }
    expect(t).not.toMatch(/^MemoryDenyWriteExecute=/m);
  });

  test("other paths and a user", () => {
    const o = { ...base, prefix: "/opt/rrdsync", configPath: "/srv/rrdsync.json", stateDir: "/srv/state", logDir: "/srv/log", user };
    const t = renderUnit(o);
    expect(t).toContain("\nExecStart=/opt/rrdsync/bin/rrdsync --watch --config /srv/rrdsync.json\n");
    expect(t).toContain("\nReadWritePaths=/srv/state /srv/log\n");
    expect(t).toContain("\nUser=opennms\nGroup=opennms\nCapabilityBoundingSet=\nRemoveIPC=yes\n");
    expect(t).not.toContain("/var/lib/rrdsync /var/log/rrdsync");
    const l = renderLogrotate(o);
    expect(l).toContain("/srv/log/rrdsync.log /srv/log/change_log.txt {\n    su opennms opennms\n    weekly\n");
    expect(renderLogrotate(base)).not.toContain(" su ");
  });

  test("next steps: the cron line names the user; without --dest, filling in the config comes first", () => {
    const n = nextSteps({ ...base, user }, { knownHosts: "/opt/opennms/.ssh/known_hosts", keyPath: "/opt/opennms/.ssh/id_ed25519", destGiven: false });
    expect(n).toContain("fill in /etc/rrdsync/config.json");
    expect(n).toContain("sudo -u opennms ssh-keyscan -p 22 STANDBY >> /opt/opennms/.ssh/known_hosts");
    expect(n).toContain("*/5 * * * * opennms /usr/local/bin/rrdsync --once --quiet --config /etc/rrdsync/config.json");
    expect(n).toContain("systemctl enable --now rrdsync");
  });

  test("paths systemd or logrotate would read differently are refused", () => {
    for (const ok of ["/usr/local", "/opt/opennms-2/rrd_sync.d", "/srv/a.b/c-d_e"]) expect(unsafeForUnitFiles(ok)).toBeNull();
    for (const bad of ["relative/path", "/opt/my tools", "/var/log/%n", "/a\"b", "/a'b", "/a\\b", "/a;b", "/a$b", "/a\nb", "/a\tb"]) {
      expect(unsafeForUnitFiles(bad)).not.toBeNull();
    }
  });
});

describe("NOTIFY_SOCKET's address", () => {
  test("a path is NUL-terminated; @name is abstract (a leading NUL, no terminator); anything else is refused", () => {
    expect([...(notifySockaddr("/run/systemd/notify") as Uint8Array)]).toEqual([1, 0, ...Buffer.from("/run/systemd/notify"), 0]);
    expect([...(notifySockaddr("@sd-notify") as Uint8Array)]).toEqual([1, 0, 0, ...Buffer.from("sd-notify")]);
    expect(notifySockaddr("run/relative")).toBeNull();
    expect(notifySockaddr(`/${"x".repeat(106)}`)).not.toBeNull(); // 107 bytes + NUL = 108, the limit
    expect(notifySockaddr(`/${"x".repeat(107)}`)).toBeNull();
  });
});

test("state, log and config directories: never a system directory, nor one that holds another of install's places (issue 24, item 10)", () => {
  const o = { prefix: "/usr/local", etcDir: "/etc/rrdsync", systemdDir: "/etc/systemd/system", logrotateDir: "/etc/logrotate.d" };
  expect(unsafeDataDir("/var/lib/rrdsync", "state", o)).toBeNull();
  expect(unsafeDataDir("/srv/rrdsync/state", "state", o)).toBeNull();
  for (const bad of ["/", "/var", "/var/lib", "/usr/local", "/etc", "/home", "/tmp"]) expect([bad, unsafeDataDir(bad, "state", o)]).toEqual([bad, expect.stringMatching(/root directory|directory of the system itself/)]);
  expect(unsafeDataDir("/etc/rrdsync", "log", o)).toBe("is the config directory (/etc/rrdsync)");
  expect(unsafeDataDir("/usr/local/bin/x", "state", o)).toBe("lies inside the binary's directory (/usr/local/bin)");
  expect(unsafeDataDir("/etc/rrdsync", "etc", o)).toBeNull();
});

test("what an existing config writes outside the state and log directories, for ReadWritePaths=", () => {
  const r = writableDirsOf({
    metrics_file: "/var/lib/node_exporter/textfile_collector/rrdsync.prom", state_file: "/var/lib/rrdsync/state.db",
    logging: { log_file: "/var/log/rrdsync/rrdsync.log" }, change_tracking: { backup_dir: "/srv/backup", change_log_file: "/srv/audit/change_log.txt" },
    remote_sync: { remote_host: "standby", remote_dest_dir: "/srv/rrd" }, targets: [{ remote_dest_dir: "/mnt/my copy" }, { remote_host: "", remote_dest_dir: "/backup/rrd" }],
  }, ["/var/lib/rrdsync", "/var/log/rrdsync"]);
  expect(r).toEqual({ dirs: ["/var/lib/node_exporter/textfile_collector", "/srv/backup", "/srv/audit", "/backup/rrd"], unsafe: ["/mnt/my copy"] });
});
