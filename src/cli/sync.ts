// The sync command (--once): one pass per target (in parallel: a down standby costs the others nothing), the
// summary line, the exit code, and the metrics file for node_exporter's textfile collector.
import { allTargets, type Config } from "../config/types.ts";
import { storedSnapshot } from "../engine/metrics.ts";
import { checkIdentities, passOnce } from "../engine/target.ts";
import type { PassStats } from "../engine/types.ts";
import { ExitCode } from "../errors.ts";
import { escapeLine } from "../escape.ts";
import { type Logger } from "../log.ts";
import { formatBytes } from "../text.ts";
import { identityOf } from "../store/identity.ts";
import { StateStore } from "../store/state.ts";
import { describeTarget } from "../transport/create.ts";
import { errorText, renderMetrics, writeTextfile } from "../metrics/prometheus.ts";
import { ProgressLine } from "./progress.ts";

export async function syncOnce(config: Config, log: Logger, signal?: AbortSignal): Promise<ExitCode> {
  const targets = allTargets(config);
  checkIdentities(targets);
  // The progress line follows one target (the first); several would overwrite each other.
  const line = log.wantsProgress() ? new ProgressLine(process.stderr, (t) => log.colors().dim(t)) : null;
  log.progressLine = line;
  const codes = await Promise.all(targets.map(async (c, i) => {
    const s = await passOnce(c, log, { onProgress: i === 0 && line ? (p) => line.update(p) : undefined }, signal);
    line?.clear();
    return summarize(c, s, log);
  }));
  // A metrics file that cannot be written is a failed run (exit 1): monitoring would otherwise read stale figures
  // from a run that "succeeded".
  if (config.metricsFile !== "" && !(await writeMetricsFile(config, log))) codes.push(ExitCode.Pending);
  return Math.max(...codes) as ExitCode;
}

/** Every target's metrics, as its state DB now says; false (and an error in the log) when the file could not be written. */
export async function writeMetricsFile(config: Config, log: Logger): Promise<boolean> {
  const file = config.metricsFile;
  try {
    const snapshots = [];
    for (const c of allTargets(config)) {
      const store = StateStore.openExisting(c.stateFile, identityOf(c));
      if (store === null) continue;
      try {
        snapshots.push(await storedSnapshot(describeTarget(c), store, c.sourceDir));
      } finally {
        store.close();
      }
    }
    writeTextfile(file, renderMetrics(snapshots, null));
    return true;
  } catch (e) {
    log.error(`metrics_file ${file}: not written: ${errorText(e)}`);
    return false;
  }
}

function summarize(config: Config, s: PassStats, log: Logger): ExitCode {
  const c = log.colors();
  const parts = [
    `${s.sent} files (${formatBytes(s.bytes)}) synced to ${escapeLine(describeTarget(config))} in ${s.seconds.toFixed(1)} s`,
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
  if (s.fenced) parts.push(c.red("FENCED: nothing more is written there (rrdsync unfence)"));
  const ok = s.pending === 0 && s.problems === 0 && !s.fenced;
  log.info(`pass finished: ${parts.join(", ").replace(/\x1b\[[0-9;]*m/g, "")}`);
  // A cron mail must carry the cause every time, not only on the run where the outage began.
  if (s.targetError) log.error(`${s.pending} files stay pending (${s.targetError}); the next run retries them`);
  log.summary({ ok, text: parts.join(" · ") });
  if (s.fenced) return ExitCode.Fenced;
  return ok ? ExitCode.Ok : ExitCode.Pending;
}
