// The sync command (--once): take the lock, run one pass, print the summary, return the exit code.
import { type Config, configForTarget } from "../config/types.ts";
import { ExitCode } from "../errors.ts";
import { formatBytes, type Logger } from "../log.ts";
import { Replicator } from "../replicate.ts";
import { ProgressLine } from "./progress.ts";
import { acquireLock } from "../store/lock.ts";
import { isCorruption, StateStore } from "../store/state.ts";
import { openChangeLog } from "../track/changelog.ts";
import { createTransport, describeTarget } from "../transport/create.ts";

export async function syncOnce(config: Config, log: Logger, signal?: AbortSignal): Promise<ExitCode> {
  if (config.extraTargets.length === 0) return syncTarget(config, log, signal);
  // Every target at once, each on its own: a down standby costs the others nothing. The worst result counts.
  const codes = await Promise.all([config, ...config.extraTargets.map((t) => configForTarget(config, t))].map((c) => syncTarget(c, log, signal)));
  return Math.max(...codes) as ExitCode;
}

async function syncTarget(config: Config, log: Logger, signal?: AbortSignal): Promise<ExitCode> {
  try {
    return await syncOnceWith(config, log, signal);
  } catch (e) {
    // Damage the opening checks did not reach showed up during the pass: keep the DB aside, rebuild now.
    if (!isCorruption(e)) throw e;
    const copy = StateStore.moveAside(config.stateFile);
    log.error(`the state DB turned out damaged (${(e as Error).message}); it is kept as ${copy} and a new one is rebuilt by a second pass`);
    return await syncOnceWith(config, log, signal);
  }
}

async function syncOnceWith(config: Config, log: Logger, signal?: AbortSignal): Promise<ExitCode> {
  const lock = acquireLock(config.stateFile);
  const opened = (() => {
    try {
      return StateStore.open(config.stateFile);
    } catch (e) {
      lock.release();
      throw e;
    }
  })();
  const { store } = opened;
  if (opened.corruptCopy !== null) {
    log.error(`the state DB was damaged; it is kept as ${opened.corruptCopy} and a new one is rebuilt by this pass (files the replica already has cost only rsync's quick check; their change-log entries say "created" again)`);
  }
  if (opened.seedBackup !== null) {
    log.warn(`imported ${opened.imported} entries of the seed script's JSON state; the original is kept as ${opened.seedBackup}`);
  }
  const changeLog = openChangeLog(config, log);
  const transport = createTransport(config, log);
  const target = describeTarget(config);
  try {
    log.info(`pass started: ${config.sourceDir} → ${target}`);
    const line = log.wantsProgress() ? new ProgressLine(process.stderr, (t) => log.colors().dim(t)) : null;
    log.progressLine = line;
    const s = await new Replicator({ config, store, transport, changeLog, log, onProgress: line ? (p) => line.update(p) : undefined }).runPass(signal);
    line?.clear();
    const c = log.colors();
    const parts = [
      `${s.sent} files (${formatBytes(s.bytes)}) synced to ${target} in ${s.seconds.toFixed(1)} s`,
      `${s.changes} changes recorded`,
      `${s.scanned} scanned`,
    ];
    if (s.adopted > 0) parts.push(`${s.adopted} adopted from the seed state`);
    if (s.vanished > 0) parts.push(`${s.vanished} vanished`);
    if (s.deleted > 0) parts.push(`${s.deleted} deleted on the replica`);
    if (s.renamed > 0) parts.push(`${s.renamed} renamed on the replica`);
    if (s.held > 0) parts.push(c.yellow(`${s.held} RRDs held back while they looked torn`));
    if (s.symlinksSkipped > 0) parts.push(`${s.symlinksSkipped} symlinks not followed`);
    if (s.pending > 0) parts.push(c.red(`${s.pending} pending`));
    if (s.changedDuringSend > 0) parts.push(c.yellow(`${s.changedDuringSend} changed while being sent (next run)`));
    if (s.problems > 0) parts.push(c.red(`${s.problems} problems`));
    const ok = s.pending === 0 && s.problems === 0;
    log.info(`pass finished: ${parts.join(", ").replace(/\x1b\[[0-9;]*m/g, "")}`);
    if (s.targetError) log.error(`${s.pending} files stay pending; the next run retries them`);
    log.summary({ ok, text: parts.join(" · ") });
    return ok ? ExitCode.Ok : ExitCode.Pending;
  } finally {
    await transport.close();
    changeLog.close();
    store.close();
    lock.release();
  }
}
