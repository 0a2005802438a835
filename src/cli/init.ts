// `rrdsync init`: writes a commented starter config (never over an existing one without --force).
import { existsSync, mkdirSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { DEFAULT_CONFIG_PATH, DEFAULT_LOG_DIR, DEFAULT_STATE_DIR } from "../config/defaults.ts";
import { parseDest } from "../config/dest.ts";
import { ExitCode, UserError } from "../errors.ts";
import { writeFileAtomic } from "../safe-files.ts";
import { writeOut } from "./out.ts";

export async function initConfig(flags: { config?: string; source?: string; dest?: string; force?: boolean }, env: Record<string, string | undefined>): Promise<ExitCode> {
  const path = resolve(flags.config ?? env.RRDSYNC_CONFIG ?? DEFAULT_CONFIG_PATH);
  if (existsSync(path) && !flags.force) {
    throw new UserError(`${path} already exists; not overwritten`, ExitCode.Usage, "edit it, or pass --force to replace it with a new starter config");
  }
  // The system install keeps state and logs in the usual places; any other config keeps them beside itself.
  const system = path === DEFAULT_CONFIG_PATH;
  const text = starterConfig({
    path, source: flags.source, dest: flags.dest, home: homedir(),
    stateDir: system ? DEFAULT_STATE_DIR : dirname(path),
    logDir: system ? DEFAULT_LOG_DIR : dirname(path),
  });
  writeConfigFile(path, text);
  await writeOut(`wrote ${path}\nnext: edit remote_sync, then: rrdsync check --config ${path}\n`);
  return ExitCode.Ok;
}

/**
 * The commented starter config (also what `rrdsync install` writes). `path` is where it will live (named in its
 * comments), `home` whose ~/.ssh it points at; state and logs go to stateDir and logDir.
 */
export function starterConfig(o: { path: string; source?: string; dest?: string; home: string; stateDir: string; logDir: string }): string {
  const dest = parseDest(o.dest ?? "opennms@standby.example.org:/opt/opennms/share/rrd");
  const { path, home, stateDir, logDir } = o;
  const key = ["id_ed25519", "id_ecdsa", "id_rsa"].map((k) => join(home, ".ssh", k)).find((k) => existsSync(k)) ?? "";
  const q = JSON.stringify;
  return `# rrdsync config: JSON with # and // comments. Every key: rrdsync help config.
# Next: fill in the standby, then run: rrdsync check --config ${path}
{
  # The tree to replicate (OpenNMS: share/rrd).
  "source_dir": ${q(resolve(o.source ?? "/opt/opennms/share/rrd"))},
  # SQLite state: what the standby has, the change history, status. A lock sits beside it.
  "state_file": ${q(join(stateDir, "state.db"))},
  "remote_sync": {
    # The standby. An empty remote_host makes remote_dest_dir a local directory (no SSH).
    "remote_user": ${q(dest.user)},
    "remote_host": ${q(dest.host)},
    "port": 22,
    "remote_dest_dir": ${q(dest.destDir)},
    # Empty: ssh's default keys. The key must not be readable by others.
    "ssh_key_path": ${q(key)},
    # Host keys are always verified. Add the standby's with: ssh-keyscan -p PORT HOST >> FILE (check the fingerprint)
    "known_hosts_file": ${q(join(home, ".ssh", "known_hosts"))},
    # rsync (rsync must be on the standby too), sftp (built-in client: no rsync needed there), or auto
    "transport": "rsync"
  },
  "logging": { "log_file": ${q(join(logDir, "rrdsync.log"))}, "log_level": "INFO" },
  # true: a file deleted from the tree is deleted on the standby too; above max_delete a pass deletes nothing.
  "delete": false,
  "max_delete": "10%",
  # --watch: seconds a changed file must stay quiet before it ships; max_delay caps the wait.
  "debounce_time": 5,
  "monitored_extensions": [".rrd", ".jrb", ".txt", ".properties", ".meta"],
  "rsync_options": { "compress": false, "partial": true, "bwlimit": 0 },
  "change_tracking": {
    "backup_dir": ${q(join(stateDir, "backup"))},
    "change_log_file": ${q(join(logDir, "change_log.txt"))},
    # backups kept per text file (for rrdsync restore), and the change log's built-in rotation
    "keep_versions": 10,
    "max_log_bytes": 104857600,
    "keep_logs": 5
  }
}
`;
}

/** Writes a config atomically (a random temp name, created exclusively, then a rename): a reader never sees half a file. */
export function writeConfigFile(path: string, text: string): void {
  try {
    mkdirSync(dirname(path), { recursive: true });
    writeFileAtomic(path, text, { sync: true });
  } catch (e) {
    throw new UserError(`cannot write ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, ExitCode.Usage, "pass --config PATH to write it elsewhere (or run as root for /etc)");
  }
}
