// Finds the config (flag, $RRDSYNC_CONFIG, /etc/rrdsync/config.json, or none), applies flags, fills defaults.
import { closeSync, constants, existsSync, fstatSync, openSync, readSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { ConfigError, ExitCode, UserError } from "../errors.ts";
import { DEFAULT_CONFIG_PATH, defaultMaxDelay, defaultPaths } from "./defaults.ts";
import { defaultOf as d, KEYS } from "./keys.ts";
import { parseDest } from "./dest.ts";
import { checkFilePlace, checkSourcePlace } from "./places.ts";
import { checkDistinct, extraStateFile, makeTarget } from "./targets.ts";
import { parseConfigText } from "./read.ts";
import type { Config, LogLevel, TransportKind } from "./types.ts";
import { type Ctx, checkAgainstSchema, path } from "./validate.ts";

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
  const flagTransport = opts.transport === undefined ? undefined : KEYS["remote_sync.transport"].rule(opts.transport, "--transport", flagCtx);
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

  const extra: Obj[] = c.targets ?? [...d("targets")];
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
  const debounceTime: number = c.debounce_time ?? d("debounce_time");
  const config: Config = {
    origin,
    sourceDir,
    stateFile,
    target,
    extraTargets,
    logging: { logFile: lg.log_file ?? d("logging.log_file"), logLevel: (lg.log_level ?? d("logging.log_level")) as LogLevel },
    delete: c.delete ?? d("delete"),
    retry: { initialSeconds: c.retry?.initial ?? d("retry.initial"), maxSeconds: c.retry?.max ?? d("retry.max") },
    maxDelete: c.max_delete ?? d("max_delete"),
    debounceTime,
    maxDelay: c.max_delay ?? defaultMaxDelay(debounceTime),
    batchCollectTime: c.batch_collect_time ?? d("batch_collect_time"),
    rescanInterval: c.rescan_interval ?? d("rescan_interval"),
    pollInterval: c.poll_interval ?? d("poll_interval"),
    monitoredExtensions: c.monitored_extensions ?? d("monitored_extensions"),
    rsync: {
      archive: ro.archive ?? d("rsync_options.archive"),
      compress: ro.compress ?? d("rsync_options.compress"),
      verbose: ro.verbose ?? d("rsync_options.verbose"),
      update: ro.update ?? d("rsync_options.update"),
      checksum: ro.checksum ?? d("rsync_options.checksum"),
      partial: ro.partial ?? d("rsync_options.partial"),
      bwlimit: ro.bwlimit ?? d("rsync_options.bwlimit"),
      itemizeChanges: ro.itemize_changes ?? d("rsync_options.itemize_changes"),
      stats: ro.stats ?? d("rsync_options.stats"),
    },
    changeTracking: {
      enabled: ct.enabled ?? d("change_tracking.enabled"),
      backupDir: ct.backup_dir || derived?.backupDir || `${stateDir}/backup`,
      changeLogFile: ct.change_log_file || derived?.changeLogFile || `${stateDir}/change_log.txt`,
      diffTool: ct.diff_tool ?? d("change_tracking.diff_tool"),
      keepVersions: ct.keep_versions ?? d("change_tracking.keep_versions"),
      maxBackupBytes: ct.max_backup_bytes ?? d("change_tracking.max_backup_bytes"),
      maxLogBytes: ct.max_log_bytes ?? d("change_tracking.max_log_bytes"),
      keepLogs: ct.keep_logs ?? d("change_tracking.keep_logs"),
      firstSyncEntries: ct.first_sync_entries ?? d("change_tracking.first_sync_entries"),
      rrdUpdates: ct.rrd_updates ?? d("change_tracking.rrd_updates"),
      rrdSummaryIntervalSeconds: ct.rrd_summary_interval ?? d("change_tracking.rrd_summary_interval"),
      rrdStaleSteps: ct.rrd_stale_steps ?? d("change_tracking.rrd_stale_steps"),
      keepHistoryDays: ct.keep_history ?? d("change_tracking.keep_history"),
      maxHistoryBytes: ct.max_history_bytes ?? d("change_tracking.max_history_bytes"),
    },
    rrdHold: { attempts: c.rrd_hold?.attempts ?? d("rrd_hold.attempts"), delaySeconds: c.rrd_hold?.delay ?? d("rrd_hold.delay") },
    batchMaxFiles: c.batch_max_files ?? d("batch_max_files"),
    sliceMaxFiles: c.slice_max_files ?? d("slice_max_files"),
    batchMaxBytes: c.batch_max_bytes ?? d("batch_max_bytes"),
    metricsListen: c.metrics_listen ?? d("metrics_listen"),
    metricsFile: c.metrics_file ?? d("metrics_file"),
    rebuildState: opts.rebuildState === true,
  };
  // backup_dir and change_log_file are not checked here: an audit trail that cannot be written never stops
  // replication (each gap is an error of its own, exit 1: docs/troubleshooting.md).
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
