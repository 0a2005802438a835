// What `rrdsync install` writes and `uninstall` removes, as data: the steps, the unit and logrotate texts rendered for
// the chosen paths and user, the manifest, the next steps. No I/O here (src/cli/install.ts carries the steps out).
import { join } from "node:path";
import logrotateTemplate from "./rrdsync.logrotate" with { type: "text" };
import unitTemplate from "./rrdsync.service" with { type: "text" };

/** The defaults, which are also the paths written literally in the embedded templates. */
export const INSTALL_DEFAULTS = {
  prefix: "/usr/local",
  etcDir: "/etc/rrdsync",
  stateDir: "/var/lib/rrdsync",
  logDir: "/var/log/rrdsync",
  systemdDir: "/etc/systemd/system",
  logrotateDir: "/etc/logrotate.d",
} as const;

export const MANIFEST_NAME = "install-manifest.json";
export const UNIT_NAME = "rrdsync.service";

export interface DaemonUser {
  name: string;
  group: string;
  uid: number;
  gid: number;
  home: string;
}

export interface InstallOptions {
  prefix: string;
  etcDir: string;
  configPath: string;
  stateDir: string;
  logDir: string;
  /** null: no unit (cron only) */
  systemdDir: string | null;
  logrotateDir: string;
  /** "" or a DESTDIR every path is written under; the texts name the paths without it */
  root: string;
  /** null: the daemon runs as root */
  user: DaemonUser | null;
}

export type Step =
  | { kind: "dir"; path: string; mode: number; owner: { uid: number; gid: number } | null; role: "bin" | "etc" | "state" | "log" | "systemd" | "logrotate" }
  | { kind: "binary"; path: string }
  | { kind: "file"; path: string; text: string; role: "unit" | "logrotate" }
  | { kind: "config"; path: string }
  | { kind: "manifest"; path: string };

/** What uninstall may remove: recorded by install, read back by uninstall. Paths are final paths (without root). */
export interface Manifest {
  version: string;
  installed: string;
  user: string | null;
  /** the binary, the unit, the logrotate snippet: removed when still as written (same sha256) */
  files: Array<{ path: string; sha256: string }>;
  /** directories install created for those files: removed when empty */
  dirs: string[];
  /** the starter config, when install wrote it: removed only with --purge */
  config: string | null;
  /** the config, state and log directories install created: removed (with their contents) only with --purge */
  dataDirs: string[];
}

export function binaryPath(o: InstallOptions): string {
  return join(o.prefix, "bin", "rrdsync");
}

export function manifestPath(etcDir: string): string {
  return join(etcDir, MANIFEST_NAME);
}

/**
 * The steps in order: directories first, then the binary, the texts, the config, and last the manifest, so an
 * install that fails half way still leaves a manifest only for what is complete. The manifest lives in the config
 * directory (root's), never in the state directory the daemon's user can write: a manifest that user could edit
 * would let it make root's `uninstall` delete any file.
 */
export function planInstall(o: InstallOptions): Step[] {
  const daemonOwner = o.user === null ? null : { uid: o.user.uid, gid: o.user.gid };
  const steps: Step[] = [
    { kind: "dir", path: join(o.prefix, "bin"), mode: 0o755, owner: null, role: "bin" },
    { kind: "dir", path: o.etcDir, mode: 0o755, owner: null, role: "etc" },
    // 0750: the state DB lists the tree and the backups hold its text files; the logs name every file
    { kind: "dir", path: o.stateDir, mode: 0o750, owner: daemonOwner, role: "state" },
    { kind: "dir", path: o.logDir, mode: 0o750, owner: daemonOwner, role: "log" },
  ];
  if (o.systemdDir !== null) steps.push({ kind: "dir", path: o.systemdDir, mode: 0o755, owner: null, role: "systemd" });
  steps.push({ kind: "dir", path: o.logrotateDir, mode: 0o755, owner: null, role: "logrotate" });
  steps.push({ kind: "binary", path: binaryPath(o) });
  if (o.systemdDir !== null) steps.push({ kind: "file", path: join(o.systemdDir, UNIT_NAME), text: renderUnit(o), role: "unit" });
  steps.push({ kind: "file", path: join(o.logrotateDir, "rrdsync"), text: renderLogrotate(o), role: "logrotate" });
  steps.push({ kind: "config", path: o.configPath });
  steps.push({ kind: "manifest", path: manifestPath(o.etcDir) });
  return steps;
}

/** Replaces `from` (which must occur exactly once: a template edit that breaks this fails the unit tests). */
function replaceOnce(text: string, from: string, to: string): string {
  const at = text.indexOf(from);
  if (at < 0 || text.indexOf(from, at + 1) >= 0) throw new Error(`template: expected exactly one "${from}"`);
  return text.slice(0, at) + to + text.slice(at + from.length);
}

/**
 * systemd and logrotate split on whitespace and expand % specifiers; such a path would be a different path there.
 * Returns the problem, or null when the path can be written as it is.
 */
export function unsafeForUnitFiles(path: string): string | null {
  if (!path.startsWith("/")) return "is not an absolute path";
  if (/[\s"'\\%;$`\x00-\x1f\x7f]/.test(path)) return "contains a space, quote, backslash, %, ;, $ or a control character, which systemd and logrotate would read differently";
  return null;
}

export function renderUnit(o: InstallOptions): string {
  let t = unitTemplate;
  const d = INSTALL_DEFAULTS;
  t = replaceOnce(t, `ExecStart=${d.prefix}/bin/rrdsync --watch --config ${d.etcDir}/config.json`, `ExecStart=${binaryPath(o)} --watch --config ${o.configPath}`);
  t = replaceOnce(t, `ReadWritePaths=${d.stateDir} ${d.logDir}`, `ReadWritePaths=${o.stateDir} ${o.logDir}`);
  if (o.user !== null) {
    // A dedicated user reads the tree by its modes and needs no capability at all.
    t = replaceOnce(t, "CapabilityBoundingSet=CAP_DAC_READ_SEARCH", `User=${o.user.name}\nGroup=${o.user.group}\nCapabilityBoundingSet=\nRemoveIPC=yes`);
  }
  return t;
}

export function renderLogrotate(o: InstallOptions): string {
  const d = INSTALL_DEFAULTS;
  let t = replaceOnce(logrotateTemplate, `${d.logDir}/rrdsync.log ${d.logDir}/change_log.txt {`, `${o.logDir}/rrdsync.log ${o.logDir}/change_log.txt {`);
  // logrotate refuses to rotate in a directory a non-root user can write unless told to rotate as that user.
  if (o.user !== null) t = replaceOnce(t, "    weekly\n", `    su ${o.user.name} ${o.user.group}\n    weekly\n`);
  return t;
}

/** What the admin does next, as commands to copy. */
export function nextSteps(o: InstallOptions, ssh: { knownHosts: string; keyPath: string; destGiven: boolean }): string {
  const bin = binaryPath(o);
  const cfg = o.configPath;
  const as = o.user === null ? "" : `sudo -u ${o.user.name} `;
  const lines = [
    "next steps:",
    ssh.destGiven
      ? `  1. review ${cfg} (its comments say what each key does)`
      : `  1. fill in ${cfg}: source_dir and remote_sync, the standby (or run install again with --source DIR --dest USER@STANDBY:/PATH after removing it)`,
  ];
  if (o.user !== null) {
    lines.push(`  2. a key for ${o.user.name}, authorised on the standby: ${as}ssh-keygen -t ed25519 -N '' -f ${ssh.keyPath} && ssh-copy-id -i ${ssh.keyPath} USER@STANDBY`);
  } else {
    lines.push(`  2. a key authorised on the standby: ssh-copy-id USER@STANDBY`);
  }
  lines.push(
    `     and the standby's host key (compare its fingerprint out of band): ${as}ssh-keyscan -p 22 STANDBY >> ${ssh.knownHosts}`,
    `  3. ${as}${bin} check --config ${cfg}     (every ✗ says its fix)`,
    `  4. the first sync: ${as}${bin} --once --config ${cfg}`,
  );
  const cronLine = `*/5 * * * * ${o.user?.name ?? "root"} ${bin} --once --quiet --config ${cfg}`;
  if (o.systemdDir !== null) {
    lines.push("  5. the daemon: systemctl enable --now rrdsync     (journalctl -u rrdsync -f; systemctl reload rrdsync reopens the logs)");
    lines.push(`     or, instead of the daemon, cron (/etc/cron.d/rrdsync): ${cronLine}`);
  } else {
    lines.push(`  5. cron (/etc/cron.d/rrdsync): ${cronLine}`);
  }
  return `${lines.join("\n")}\n`;
}
