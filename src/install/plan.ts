// What `rrdsync install` writes and `uninstall` removes, as data: the steps, the unit and logrotate texts rendered for
// the chosen paths and user, the manifest, the next steps. No I/O here (src/cli/install.ts carries the steps out).
import { dirname, join } from "node:path";
import manPage from "../../docs/rrdsync.1" with { type: "text" };
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
  /**
   * Directories beyond the state and log directories that the existing config writes to (metrics_file's, a
   * state_file, backup_dir or log elsewhere, a local destination): ReadWritePaths= needs them too
   */
  extraWritable?: string[];
}

export type Step =
  | { kind: "dir"; path: string; mode: number; owner: { uid: number; gid: number } | null; role: "bin" | "etc" | "state" | "log" | "systemd" | "logrotate" | "man" }
  | { kind: "binary"; path: string }
  | { kind: "file"; path: string; text: string; role: FileRole }
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
  /** files that were there before install replaced them (not its own): kept aside, put back by uninstall */
  originals?: Array<{ path: string; kept: string }>;
}

export type FileRole = "unit" | "logrotate" | "man";

export function binaryPath(o: InstallOptions): string {
  return join(o.prefix, "bin", "rrdsync");
}

/** Where man(1) looks under the prefix (/usr/local/share/man is in every distribution's default manpath). */
export function manDir(o: Pick<InstallOptions, "prefix">): string {
  return join(o.prefix, "share", "man", "man1");
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
  steps.push({ kind: "dir", path: manDir(o), mode: 0o755, owner: null, role: "man" });
  steps.push({ kind: "binary", path: binaryPath(o) });
  if (o.systemdDir !== null) steps.push({ kind: "file", path: join(o.systemdDir, UNIT_NAME), text: renderUnit(o), role: "unit" });
  steps.push({ kind: "file", path: join(o.logrotateDir, "rrdsync"), text: renderLogrotate(o), role: "logrotate" });
  // the manual page (docs/rrdsync.1, built into the binary): `man rrdsync` on a server that has only the binary
  steps.push({ kind: "file", path: join(manDir(o), "rrdsync.1"), text: manPage, role: "man" });
  steps.push({ kind: "config", path: o.configPath });
  steps.push({ kind: "manifest", path: manifestPath(o.etcDir) });
  return steps;
}

/**
 * Directories that hold the system itself: never a state or log directory (install makes those the daemon's user's,
 * ReadWritePaths= opens them to it, and uninstall --purge removes what it made), nor the config directory.
 */
const SYSTEM_DIRS = new Set([
  "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/media", "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var",
  "/usr/bin", "/usr/sbin", "/usr/lib", "/usr/lib64", "/usr/libexec", "/usr/include", "/usr/share", "/usr/src", "/usr/local",
  "/usr/local/bin", "/usr/local/sbin", "/usr/local/lib", "/usr/local/share", "/usr/local/etc",
  "/var/lib", "/var/log", "/var/cache", "/var/spool", "/var/tmp", "/var/run", "/var/mail", "/var/opt", "/var/backups", "/var/lock",
  "/etc/systemd", "/etc/systemd/system", "/etc/logrotate.d", "/etc/ssh", "/etc/cron.d", "/etc/default", "/etc/sysconfig",
]);

const within = (a: string, b: string) => a === b || a.startsWith(b === "/" ? "/" : `${b}/`);

/**
 * Why `path` cannot be install's directory for `what` (the state, log or config directory), or null: a system
 * directory, or one that holds (or is) another of install's places.
 */
export function unsafeDataDir(path: string, what: "state" | "log" | "etc", o: Pick<InstallOptions, "prefix" | "etcDir" | "systemdDir" | "logrotateDir">): string | null {
  if (SYSTEM_DIRS.has(path)) return `is ${path === "/" ? "the root directory" : "a directory of the system itself"}: the ${what} directory must be one of rrdsync's own (e.g. ${what === "state" ? INSTALL_DEFAULTS.stateDir : what === "log" ? INSTALL_DEFAULTS.logDir : INSTALL_DEFAULTS.etcDir})`;
  const others: Array<[string, string | null]> = [
    ["the binary's directory", join(o.prefix, "bin")], ["the systemd directory", o.systemdDir], ["the logrotate directory", o.logrotateDir], ["the manual page's directory", manDir(o)],
  ];
  if (what !== "etc") others.push(["the config directory", o.etcDir]);
  for (const [name, dir] of others) {
    if (dir !== null && (within(dir, path) || within(path, dir))) return `${path === dir ? "is" : within(dir, path) ? "holds" : "lies inside"} ${name} (${dir})`;
  }
  return null;
}

/**
 * The directories an existing config writes to outside `covered` (the state and log directories), for
 * ReadWritePaths=: metrics_file's directory, a state_file, backup_dir, log_file or change_log_file elsewhere, each
 * target's state file, a local destination. Paths that systemd would read otherwise (unsafeForUnitFiles) are left
 * out and returned apart, for a warning.
 */
export function writableDirsOf(config: Record<string, unknown>, covered: string[]): { dirs: string[]; unsafe: string[] } {
  const str = (v: unknown) => (typeof v === "string" && v.startsWith("/") ? v : null);
  const obj = (v: unknown) => (typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
  const found: string[] = [];
  const file = (v: unknown) => {
    const p = str(v);
    if (p !== null) found.push(dirname(p));
  };
  const dir = (v: unknown) => {
    const p = str(v);
    if (p !== null) found.push(p);
  };
  file(config.metrics_file);
  file(config.state_file);
  file(obj(config.logging).log_file);
  dir(obj(config.change_tracking).backup_dir);
  file(obj(config.change_tracking).change_log_file);
  for (const t of [obj(config.remote_sync), ...(Array.isArray(config.targets) ? config.targets.map(obj) : [])]) {
    if ((t.remote_host ?? "") === "") dir(t.remote_dest_dir);
    file(t.state_file);
  }
  const dirs: string[] = [];
  const unsafe: string[] = [];
  for (const d of found) {
    if (covered.some((c) => within(d, c)) || dirs.includes(d) || unsafe.includes(d)) continue;
    (unsafeForUnitFiles(d) === null ? dirs : unsafe).push(d);
  }
  return { dirs, unsafe };
}

/**
 * Where install keeps a file it replaced that was not its own (the admin's unit or logrotate snippet), for uninstall
 * to restore: in the config directory, root's, and not beside it: logrotate reads every file in logrotate.d
 * (".rrdsync-orig" is not among the suffixes it skips), and two snippets for the same logs make it fail.
 */
export function keptOriginalPath(etcDir: string, path: string, role: FileRole): string {
  return join(etcDir, `${role === "unit" ? "" : role === "man" ? "man1-" : "logrotate.d-"}${path.split("/").pop()}.rrdsync-orig`);
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
  t = replaceOnce(t, `ReadWritePaths=${d.stateDir} ${d.logDir}`, `ReadWritePaths=${[o.stateDir, o.logDir, ...(o.extraWritable ?? [])].join(" ")}`);
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
