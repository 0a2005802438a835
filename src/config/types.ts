// The validated, camelCase config the core works with; snake_case keys exist only in config/.
import type { MaxDelete } from "./max-delete.ts";

export interface RsyncOptions {
  archive: boolean;
  compress: boolean;
  /** log each transferred file's itemized line at INFO */
  verbose: boolean;
  update: boolean;
  checksum: boolean;
  /** keep partial files in a hidden partial dir so an interrupted transfer resumes */
  partial: boolean;
  /** KiB/s, 0 = unlimited */
  bwlimit: number;
  /** log rsync's itemize lines at INFO (they are always parsed, whatever this says) */
  itemizeChanges: boolean;
  /** log rsync's --stats block at INFO */
  stats: boolean;
}

/** Where files go. host === "" means a local directory (no ssh). */
export interface Target {
  user: string;
  host: string;
  port: number;
  /** absolute path of the destination directory */
  destDir: string;
  /** "" = let ssh use its default identities */
  sshKeyPath: string;
  knownHostsFile: string;
  /** ssh -c list ("" = ssh's own choice) */
  sshCiphers: string;
  /** rsync over OpenSSH, SFTP over the built-in ssh2 client, or rsync when both ends have it */
  transport: TransportKind;
  /** SFTP: files in flight at once */
  sftpParallelFiles: number;
  /** SFTP: a file holding the key's passphrase ("" = none; RRDSYNC_SSH_PASSPHRASE also serves) */
  sshPassphraseFile: string;
}

export type TransportKind = "rsync" | "sftp" | "auto";

export interface ChangeTracking {
  /** false: replicate only (no change log, no backups, no history rows) */
  enabled: boolean;
  backupDir: string;
  changeLogFile: string;
  /** kept for seed compatibility; rrdsync always diffs in-process */
  diffTool: string;
  /** backup versions kept per text file, the current one included */
  keepVersions: number;
  /** bytes all superseded backup versions may take; 0 = no limit */
  maxBackupBytes: number;
  /** the change log is rotated past this size; 0 = never (leave it to logrotate) */
  maxLogBytes: number;
  /** rotated change logs kept (gzipped) */
  keepLogs: number;
  /** a first sync's change-log entries: one per file ("every"), one summary ("summary"), or "auto" (per file up to 10,000 files) */
  firstSyncEntries: "auto" | "every" | "summary";
  /**
   * routine RRD updates (same structure, last update forward): rolled up into the file's row and one summary entry
   * per rrdSummaryIntervalSeconds ("rollup"), or one entry each as the seed did ("every")
   */
  rrdUpdates: "rollup" | "every";
  rrdSummaryIntervalSeconds: number;
  /** an RRD with no update for this many of its steps while others update is logged as stopped; 0 = never */
  rrdStaleSteps: number;
  /** change history older than this many days is pruned; 0 = kept for ever */
  keepHistoryDays: number;
  /** the change history's bytes in the state DB at most (oldest pruned first); 0 = no limit */
  maxHistoryBytes: number;
}

export type LogLevel = "DEBUG" | "INFO" | "WARNING" | "ERROR" | "CRITICAL";

export interface Config {
  /** where the config came from, for messages ("config.json", or "built-in defaults") */
  origin: string;
  sourceDir: string;
  stateFile: string;
  target: Target;
  /**
   * Further standbys ("targets"): each is replicated on its own (own state DB, pending files and backoff), so
   * one down standby never holds back another; the change log and backups follow the first target.
   */
  extraTargets: Array<{ name: string; target: Target; stateFile: string }>;
  logging: { logFile: string; logLevel: LogLevel };
  /** propagate deletes to the replica (the seed never did: false by default) */
  delete: boolean;
  /** the guard: above this, a pass deletes nothing */
  maxDelete: MaxDelete;
  /** --watch: retries of unconfirmed files wait initial, 2×, 4×, … up to max seconds (±20% jitter) */
  retry: { initialSeconds: number; maxSeconds: number };
  /** seconds a changed file must stay quiet before it ships (watch mode) */
  debounceTime: number;
  /** seconds a continuously rewritten file may wait at most before it ships anyway */
  maxDelay: number;
  /** --watch: while events keep coming, a due batch waits up to this long for more (the steady-state rule); 0 = off */
  batchCollectTime: number;
  /** seconds between safety rescans in watch mode; 0 = off */
  rescanInterval: number;
  /** seconds between stat sweeps of the tracked files in watch mode (writers that keep a file open); 0 = off */
  pollInterval: number;
  /** [".rrd", ".txt"]; an empty list means every regular file */
  monitoredExtensions: string[];
  rsync: RsyncOptions;
  changeTracking: ChangeTracking;
  /** an RRD that looks damaged (size, cookie, last update backwards) is held back this often before it ships anyway */
  rrdHold: { attempts: number; delaySeconds: number };
  /** per rsync process: at most this many files ... */
  batchMaxFiles: number;
  /** a first sync's slice: whole directories up to about this many files, one transfer each */
  sliceMaxFiles: number;
  /** ... and at most this many bytes (a batch always holds at least one file) */
  batchMaxBytes: number;
  /** --watch: serve Prometheus metrics at http://host:port/metrics; null = off */
  metricsListen: { host: string; port: number } | null;
  /** --once: write the same metrics to this file, atomically (node_exporter's textfile collector); "" = off */
  metricsFile: string;
  /**
   * --rebuild-state: a state DB that describes another source or destination is kept aside and a new one made by
   * one full pass (without it such a DB stops the run: src/store/identity.ts)
   */
  rebuildState: boolean;
}

/**
 * The config one further target runs with: its destination and state DB; replication only (the change log and
 * backups follow the first target); the other state files stay listed, so no target ever copies them.
 */
export function configForTarget(config: Config, extra: Config["extraTargets"][number]): Config {
  return {
    ...config,
    target: extra.target,
    stateFile: extra.stateFile,
    extraTargets: [{ name: "first target", target: config.target, stateFile: config.stateFile }, ...config.extraTargets.filter((t) => t !== extra)],
    changeTracking: { ...config.changeTracking, enabled: false },
  };
}

/** Every target's config, the first one first: what each command runs once per target. */
export function allTargets(config: Config): Config[] {
  return [config, ...config.extraTargets.map((t) => configForTarget(config, t))];
}
