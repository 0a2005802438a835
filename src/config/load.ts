// Finds the config (flag, $RRDSYNC_CONFIG, /etc/rrdsync/config.json, or none), applies flags, fills defaults.
import type { MaxDelete } from "./max-delete.ts";
import { closeSync, constants, existsSync, fstatSync, openSync, readSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { ConfigError, ExitCode, UserError } from "../errors.ts";
import {
  DEFAULT_BATCH_MAX_BYTES, DEFAULT_BATCH_MAX_FILES, DEFAULT_SLICE_MAX_FILES, DEFAULT_CONFIG_PATH, DEFAULT_DEBOUNCE_S, DEFAULT_RRD_HOLD_ATTEMPTS, DEFAULT_RRD_HOLD_DELAY_S, DEFAULT_KEEP_VERSIONS, DEFAULT_MAX_BACKUP_BYTES, DEFAULT_MAX_LOG_BYTES, DEFAULT_KEEP_LOGS, DEFAULT_MAX_DELETE, DEFAULT_BATCH_COLLECT_S, DEFAULT_RRD_SUMMARY_INTERVAL_S, DEFAULT_RRD_STALE_STEPS, DEFAULT_KEEP_HISTORY_DAYS, DEFAULT_MAX_HISTORY_BYTES, DEFAULT_EXTENSIONS,
  DEFAULT_POLL_INTERVAL_S, DEFAULT_RESCAN_INTERVAL_S, defaultMaxDelay, defaultPaths,
} from "./defaults.ts";
import { parseDest } from "./dest.ts";
import { checkFilePlace, checkSourcePlace } from "./places.ts";
import { checkDistinct, extraStateFile, makeTarget } from "./targets.ts";
import { parseConfigText } from "./read.ts";
import type { Config, LogLevel, TransportKind } from "./types.ts";
import { type Ctx, checkAgainstSchema, oneOf, path } from "./validate.ts";

export interface LoadOptions {
  configPath?: string;
  source?: string;
  dest?: string;
  stateFile?: string;
  /** --transport: every target uses it */
  transport?: string;
  /** --rebuild-state */
  rebuildState?: boolean;
  env: Record<string, string | undefined>;
  cwd: string;
  home: string;
  /**
   * false for the read-side commands (status, log, restore, check): they must work while the source is missing
   * (unmounted, replaced), which is when an admin needs them most. Replicating requires it.
   */
  requireSource?: boolean;
}

type Obj = Record<string, any>;

/** A config is a few KiB; anything near this is not one (and /dev/zero would never end). */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/**
 * The config's text: only from a regular file (a fifo would hang the open or the read, a device never ends), and at
 * most MAX_CONFIG_BYTES of it. O_NONBLOCK: opening a fifo that nobody writes returns at once (then refused here).
 */
function readConfigFile(abs: string): string {
  const hint = "pass --config PATH, or set RRDSYNC_CONFIG; --source DIR --dest TARGET work without a config";
  let fd: number;
  try {
    fd = openSync(abs, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : code === "EISDIR" ? "is a directory" : String(code);
    throw new UserError(`cannot read config file ${abs}: ${why}`, ExitCode.Usage, hint);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) {
      const what = st.isDirectory() ? "a directory" : st.isFIFO() ? "a fifo" : st.isCharacterDevice() || st.isBlockDevice() ? "a device" : st.isSocket() ? "a socket" : "not a regular file";
      throw new UserError(`cannot read config file ${abs}: it is ${what}, not a regular file`, ExitCode.Usage, hint);
    }
    const buf = Buffer.alloc(Math.min(st.size, MAX_CONFIG_BYTES) + 1);
    let n = 0;
    for (let r = 1; r > 0 && n < buf.length; n += r) r = readSync(fd, buf, n, buf.length - n, null);
    if (n > MAX_CONFIG_BYTES) throw new UserError(`config file ${abs}: larger than ${MAX_CONFIG_BYTES / 1024} KiB, which no config is`, ExitCode.Usage, "check the path: it should name the JSON config (a few KiB)");
    return buf.subarray(0, n).toString("utf8");
  } finally {
    closeSync(fd);
  }
}

/** Config.origin when no config file was read (--source and --dest, and the defaults). */
export const NO_CONFIG_ORIGIN = "built-in defaults";

export function loadConfig(opts: LoadOptions): { config: Config; warnings: string[] } {
  const configPath = opts.configPath ?? opts.env.RRDSYNC_CONFIG ?? (existsSync(DEFAULT_CONFIG_PATH) ? DEFAULT_CONFIG_PATH : undefined);
  const warnings: string[] = [];
  let raw: Obj = {};
  let origin = NO_CONFIG_ORIGIN;
  if (configPath !== undefined) {
    const abs = resolve(opts.cwd, configPath);
    origin = configPath;
    raw = parseConfigText(readConfigFile(abs), origin);
  } else if (opts.source === undefined || opts.dest === undefined) {
    throw new UserError(
      `no config file (none given, $RRDSYNC_CONFIG unset, ${DEFAULT_CONFIG_PATH} absent)`,
      ExitCode.Usage,
      "pass --config PATH, or --source DIR --dest [user@]host:/path (or --dest /local/dir)",
    );
  }
  const ctx: Ctx = { origin, home: opts.home, warnings };
  const c = checkAgainstSchema(raw, ctx) as Obj;

  // Flags override the file; they are checked with the same rules, and messages name the flag, not the file.
  const flagCtx: Ctx = { origin: "command line", home: opts.home, warnings };
  const abs = (p: string) => resolve(opts.cwd, p);
  if (opts.source !== undefined) c.source_dir = path({ allowEmpty: false })(abs(opts.source), "--source", flagCtx);
  if (opts.stateFile !== undefined) c.state_file = path({ allowEmpty: false })(abs(opts.stateFile), "--state", flagCtx);
  const flagTransport = opts.transport === undefined ? undefined : (oneOf(["rsync", "sftp", "auto"])(opts.transport, "--transport", flagCtx) as TransportKind);
  const rs: Obj = c.remote_sync ?? {};
  if (opts.dest !== undefined) {
    const d = parseDest(opts.dest.startsWith("/") || opts.dest.includes(":") ? opts.dest : abs(opts.dest));
    rs.remote_user = d.user;
    rs.remote_host = d.host;
    rs.remote_dest_dir = d.destDir;
  }
  const key = (k: string, flag: string | undefined) => (flag !== undefined ? flag : `${origin}: ${k}`);

  if (c.source_dir === undefined) throw new ConfigError(`${origin}: source_dir`, "is missing", 'set "source_dir": "/opt/opennms/share/rrd" (the tree to replicate), or pass --source');
  const sourceDir: string = c.source_dir;
  const sourceKey = key("source_dir", opts.source === undefined ? undefined : "--source");
  checkSourcePlace(sourceKey, sourceDir);
  if (opts.requireSource !== false) {
    let st;
    try {
      st = statSync(sourceDir);
    } catch {
      throw new ConfigError(sourceKey, `${sourceDir} does not exist`, "check the path (is the volume mounted?)");
    }
    if (!st.isDirectory()) throw new ConfigError(sourceKey, `${sourceDir} is not a directory`);
  }

  const extra: Obj[] = c.targets ?? [];
  // remote_sync is the first target; "targets" adds more (or, without remote_sync, lists them all).
  const primaryRaw: Obj = rs.remote_dest_dir === undefined && extra.length > 0 ? (extra.shift() as Obj) : rs;
  const primaryWhere = opts.dest !== undefined ? "--dest" : primaryRaw === rs ? "remote_sync" : "targets[0]";
  const primaryKey = (k: string) => (opts.dest !== undefined && ["remote_dest_dir", "remote_host", "remote_user"].includes(k) ? "--dest" : `${origin}: ${primaryRaw === rs ? "remote_sync" : "targets[0]"}.${k}`);
  if (primaryRaw.remote_dest_dir === undefined) {
    throw new ConfigError(primaryKey("remote_dest_dir"), "is missing", 'set "remote_sync": {"remote_host": "standby", "remote_dest_dir": "/abs/path"}, or pass --dest');
  }
  const tctx = { sourceDir, home: opts.home, transport: flagTransport };
  const target = makeTarget(primaryRaw, primaryKey, tctx);
  const destKey = target.host === "" ? target.destDir : `${target.user}@${target.host}:${target.port}:${target.destDir}`;
  // No state_file: the state DB, backups and change log are all named by the (source, destination) pair.
  const derived = c.state_file ? null : defaultPaths(sourceDir, destKey, opts.env, opts.home);
  const stateFile: string = derived?.stateFile ?? c.state_file;
  const stateKey = key("state_file", opts.stateFile === undefined ? undefined : "--state");
  checkFilePlace(stateKey, stateFile);
  const stateDir = dirname(stateFile);
  if (stateFile === sourceDir || stateFile.startsWith(`${sourceDir}/`)) {
    warnings.push(`${stateKey}: ${stateFile} is inside source_dir; rrdsync skips its own files, but keep them outside the tree`);
  }
  // Each further target keeps its own state (what it has, what is pending) beside the first one's.
  const offset = primaryRaw === rs ? 0 : 1;
  const extraTargets = extra.map((raw, i) => {
    const t = makeTarget(raw, (k) => `${origin}: targets[${i + offset}].${k}`, tctx);
    return { ...extraStateFile(raw, t, stateFile), target: t };
  });
  checkDistinct(origin, { target, stateFile, extraTargets }, [primaryWhere, ...extra.map((_, i) => `targets[${i + offset}]`)],
    [primaryRaw.name, ...extra.map((r) => r.name as string | undefined)]);
  for (const [i, t] of extraTargets.entries()) checkFilePlace(`${origin}: targets[${i + offset}].state_file`, t.stateFile);
  const ct: Obj = c.change_tracking ?? {};
  const lg: Obj = c.logging ?? {};
  const ro: Obj = c.rsync_options ?? {};
  const debounceTime: number = c.debounce_time ?? DEFAULT_DEBOUNCE_S;
  const config: Config = {
    origin,
    sourceDir,
    stateFile,
    target,
    extraTargets,
    logging: { logFile: lg.log_file ?? "", logLevel: (lg.log_level ?? "INFO") as LogLevel },
    delete: c.delete ?? false,
    retry: { initialSeconds: c.retry?.initial ?? 1, maxSeconds: c.retry?.max ?? 300 },
    maxDelete: (c.max_delete as MaxDelete | undefined) ?? DEFAULT_MAX_DELETE,
    debounceTime,
    maxDelay: c.max_delay ?? defaultMaxDelay(debounceTime),
    batchCollectTime: c.batch_collect_time ?? DEFAULT_BATCH_COLLECT_S,
    rescanInterval: c.rescan_interval ?? DEFAULT_RESCAN_INTERVAL_S,
    pollInterval: c.poll_interval ?? DEFAULT_POLL_INTERVAL_S,
    monitoredExtensions: c.monitored_extensions ?? DEFAULT_EXTENSIONS,
    rsync: {
      archive: ro.archive ?? true,
      compress: ro.compress ?? false,
      verbose: ro.verbose ?? false,
      update: ro.update ?? false,
      checksum: ro.checksum ?? false,
      partial: ro.partial ?? false,
      bwlimit: ro.bwlimit ?? 0,
      itemizeChanges: ro.itemize_changes ?? false,
      stats: ro.stats ?? false,
    },
    changeTracking: {
      enabled: ct.enabled ?? true,
      backupDir: ct.backup_dir || derived?.backupDir || `${stateDir}/backup`,
      changeLogFile: ct.change_log_file || derived?.changeLogFile || `${stateDir}/change_log.txt`,
      diffTool: ct.diff_tool ?? "difflib",
      keepVersions: ct.keep_versions ?? DEFAULT_KEEP_VERSIONS,
      maxBackupBytes: ct.max_backup_bytes ?? DEFAULT_MAX_BACKUP_BYTES,
      maxLogBytes: ct.max_log_bytes ?? DEFAULT_MAX_LOG_BYTES,
      keepLogs: ct.keep_logs ?? DEFAULT_KEEP_LOGS,
      firstSyncEntries: ct.first_sync_entries ?? "auto",
      rrdUpdates: ct.rrd_updates ?? "rollup",
      rrdSummaryIntervalSeconds: ct.rrd_summary_interval ?? DEFAULT_RRD_SUMMARY_INTERVAL_S,
      rrdStaleSteps: ct.rrd_stale_steps ?? DEFAULT_RRD_STALE_STEPS,
      keepHistoryDays: ct.keep_history ?? DEFAULT_KEEP_HISTORY_DAYS,
      maxHistoryBytes: ct.max_history_bytes ?? DEFAULT_MAX_HISTORY_BYTES,
    },
    rrdHold: { attempts: c.rrd_hold?.attempts ?? DEFAULT_RRD_HOLD_ATTEMPTS, delaySeconds: c.rrd_hold?.delay ?? DEFAULT_RRD_HOLD_DELAY_S },
    batchMaxFiles: c.batch_max_files ?? DEFAULT_BATCH_MAX_FILES,
    sliceMaxFiles: c.slice_max_files ?? DEFAULT_SLICE_MAX_FILES,
    batchMaxBytes: c.batch_max_bytes ?? DEFAULT_BATCH_MAX_BYTES,
    metricsListen: c.metrics_listen ?? null,
    metricsFile: c.metrics_file ?? "",
    rebuildState: opts.rebuildState === true,
  };
  // backup_dir and change_log_file are not checked here: an audit trail that cannot be written never stops
  // replication (each gap is an error of its own, exit 1: README, When things go wrong).
  if (config.logging.logFile) checkFilePlace(`${origin}: logging.log_file`, config.logging.logFile);
  if (config.metricsFile !== "" && !config.metricsFile.endsWith(".prom")) {
    warnings.push(`${origin}: metrics_file: ${config.metricsFile} does not end in .prom: node_exporter's textfile collector reads only *.prom files`);
  }
  if (config.retry.maxSeconds < config.retry.initialSeconds) {
    throw new ConfigError(`${origin}: retry.max`, `(${config.retry.maxSeconds}) is shorter than retry.initial (${config.retry.initialSeconds})`, "make retry.max at least retry.initial");
  }
  if (config.maxDelay < config.debounceTime) {
    throw new ConfigError(`${origin}: max_delay`, `(${config.maxDelay}) is shorter than debounce_time (${config.debounceTime})`, "make max_delay at least debounce_time, or drop it for the default");
  }
  return { config, warnings };
}
