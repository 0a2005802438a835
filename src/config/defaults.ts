// Defaults for every key; the seed's keys keep the seed's meaning, new keys default to what it did.
import { createHash } from "node:crypto";
import { join } from "node:path";

export const DEFAULT_EXTENSIONS = [".rrd", ".jrb", ".txt", ".properties", ".meta"];
export const DEFAULT_CONFIG_PATH = "/etc/rrdsync/config.json";
/** Where the system install (init's default config, `rrdsync install`) keeps the state DB and backups, and the logs. */
export const DEFAULT_STATE_DIR = "/var/lib/rrdsync";
export const DEFAULT_LOG_DIR = "/var/log/rrdsync";
export const DEFAULT_DEBOUNCE_S = 5;
/**
 * --watch, under a continuous stream of events (OpenNMS rewrites every RRD once per step, day and night): a due
 * batch collects for up to a second more, so a river makes one rsync a second instead of one per quarter debounce.
 */
export const DEFAULT_BATCH_COLLECT_S = 1;
export const DEFAULT_RESCAN_INTERVAL_S = 3600;
/**
 * --watch: the stat sweep of every tracked file, for writers that keep a file mapped and open (no event until the
 * close). Measured: ~2 µs of CPU per file (0.2 s per sweep at 100,000 files, 1.9 s at 1,000,000), so every 120 s
 * costs 0.17 % of a core at 100,000 files and 1.6 % at 1,000,000, and such a file ships within OpenNMS's 5-minute step.
 */
export const DEFAULT_POLL_INTERVAL_S = 120;
/** a torn RRD is usually mid-write: three looks two seconds apart, then it ships anyway (flagged) */
export const DEFAULT_RRD_HOLD_ATTEMPTS = 3;
export const DEFAULT_RRD_HOLD_DELAY_S = 2;
/**
 * ssh's cipher preference for transfers: AES-GCM first (hardware-accelerated on any x86-64 or ARMv8 server of the
 * last decade, ~3× cheaper per byte than ChaCha20 there), then OpenSSH's other defaults, so any standby that
 * accepts OpenSSH's defaults still negotiates. "" leaves the choice to ssh and its config.
 */
export const DEFAULT_SSH_CIPHERS = "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr";

/** SFTP files in flight per target: enough to hide round trips on a WAN without flooding the standby's sftp-server */
export const DEFAULT_SFTP_PARALLEL_FILES = 8;

/** The delete guard's default: a pass may delete at most a tenth of the tracked files on the replica. */
export const DEFAULT_MAX_DELETE = { percent: 10 } as const;

/** Retention: the disk never fills silently with old backups or change logs. */
export const DEFAULT_KEEP_VERSIONS = 10;
export const DEFAULT_MAX_BACKUP_BYTES = 512 * 1024 ** 2;
export const DEFAULT_MAX_LOG_BYTES = 100 * 1024 ** 2;
export const DEFAULT_KEEP_LOGS = 5;
/**
 * Routine RRD updates (every RRD once per collection step, day and night) are rolled up: one change-log summary
 * per hour; an RRD silent for 3 of its steps while the tree goes on is logged as stopped (collection broke).
 */
export const DEFAULT_RRD_SUMMARY_INTERVAL_S = 3600;
export const DEFAULT_RRD_STALE_STEPS = 3;
/** The change history in the state DB: 90 days, at most 1 GiB (oldest pruned first, a few hundred rows at a time). */
export const DEFAULT_KEEP_HISTORY_DAYS = 90;
export const DEFAULT_MAX_HISTORY_BYTES = 1024 ** 3;
export const DEFAULT_BATCH_MAX_FILES = 10_000;
/** a first sync walks the tree in pieces of whole directories of about this many files (memory bounded by one; through SFTP one transfer and commit each) */
export const DEFAULT_SLICE_MAX_FILES = 10_000;
export const DEFAULT_BATCH_MAX_BYTES = 1024 ** 3;

/** max_delay defaults to a few debounce periods, so a continuously rewritten file still ships. */
export function defaultMaxDelay(debounce: number): number {
  return Math.max(3 * debounce, 1);
}

/**
 * Without a state_file, everything rrdsync keeps for one (source, destination) pair is named by one key: its state
 * DB, its backups and its change log, so two trees never share any of them (tree B's first sync must not read as a
 * change of tree A's file, nor `restore` return A's content). They live under $XDG_STATE_HOME (systemd's
 * StateDirectory= sets it), else ~/.local/state. (`state-<key>.db` is the name earlier versions used.)
 */
export function defaultPaths(sourceDir: string, destKey: string, env: Record<string, string | undefined>, home: string): { stateFile: string; backupDir: string; changeLogFile: string } {
  const base = join(env.XDG_STATE_HOME || join(home, ".local", "state"), "rrdsync");
  const id = createHash("sha256").update(`${sourceDir}\0${destKey}`).digest("hex").slice(0, 12);
  return { stateFile: join(base, `state-${id}.db`), backupDir: join(base, `backup-${id}`), changeLogFile: join(base, `change_log-${id}.txt`) };
}
