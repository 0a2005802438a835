// The engine's metrics in Prometheus's text exposition format (0.0.4), the daemon's /metrics server and the
// textfile writer. Names follow Prometheus's conventions: the rrdsync_ prefix, base units (seconds, bytes), _total
// for counters, one `target` label per standby. --once writes the textfile after its run (src/cli/sync.ts).
import { writeFileAtomic } from "../safe-files.ts";
import { listenForMetrics } from "./server.ts";
import type { TargetSnapshot } from "../engine/metrics.ts";
import type { EngineLog } from "../engine/types.ts";
import { ExitCode, UserError } from "../errors.ts";

type Sample = { labels: Record<string, string>; value: number };
interface Family {
  name: string;
  type: "counter" | "gauge";
  help: string;
  samples: Sample[];
}

/** Label values escape \ " and newlines; everything else is literal UTF-8. */
export function escapeLabel(v: string): string {
  return v.replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`));
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (!Number.isFinite(v)) return v > 0 ? "+Inf" : "-Inf";
  return String(v);
}

export function renderFamilies(families: Family[]): string {
  let out = "";
  for (const f of families) {
    if (f.samples.length === 0) continue;
    out += `# HELP ${f.name} ${f.help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}\n# TYPE ${f.name} ${f.type}\n`;
    for (const s of f.samples) {
      const labels = Object.entries(s.labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",");
      out += `${f.name}${labels ? `{${labels}}` : ""} ${formatValue(s.value)}\n`;
    }
  }
  return out;
}

/** Every metric of these targets (and, for the daemon, of its watcher). */
export function renderMetrics(targets: TargetSnapshot[], watcher: { inotifyWatches: number | null; queueOverflows: number } | null): string {
  const per = (name: string, type: Family["type"], help: string, value: (t: TargetSnapshot) => number | null): Family => ({
    name, type, help,
    samples: targets.flatMap((t) => {
      const v = value(t);
      return v === null ? [] : [{ labels: { target: t.target }, value: v }];
    }),
  });
  const s = (ms: number | undefined) => (ms === undefined ? null : ms / 1000);
  const families: Family[] = [
    per("rrdsync_files_transferred_total", "counter", "Files the standby confirmed (sent, or found identical by a first sync).", (t) => t.totals.filesTransferred),
    per("rrdsync_synced_file_bytes_total", "counter", "Sizes of the files the standby confirmed (file bytes, not what crossed the wire).", (t) => t.totals.bytesTransferred),
    per("rrdsync_sent_bytes_total", "counter", "Bytes put on the wire to the standby: rsync's own count (deltas, file lists, checksums), or the SFTP writes.", (t) => t.totals.bytesSent),
    per("rrdsync_files_deleted_total", "counter", "Files deleted on the standby because they were gone from the source.", (t) => t.totals.filesDeleted),
    per("rrdsync_files_renamed_total", "counter", "Renames done as moves on the standby.", (t) => t.totals.filesRenamed),
    per("rrdsync_files_repaired_total", "counter", "Files sent again by verify --repair because the standby's copy was wrong.", (t) => t.totals.filesRepaired),
    per("rrdsync_errors_total", "counter", "Batches, deletes and moves the standby failed as a whole, files it refused, and audit gaps.", (t) => t.totals.errors),
    per("rrdsync_tracked_files", "gauge", "Files in the state DB (confirmed on the standby at least once).", (t) => t.trackedFiles),
    per("rrdsync_pending_files", "gauge", "Files waiting to go to the standby (debounce, retry after a failure, RRD hold).", (t) => t.pendingFiles),
    per("rrdsync_target_fenced", "gauge", "1 while the target is fenced: the standby was written to behind rrdsync (or promoted); nothing is written there until rrdsync unfence.", (t) => (t.fenced ? 1 : 0)),
    per("rrdsync_replica_conflicts", "gauge", "Files the fence found changed on the standby behind rrdsync (0 when not fenced, or fenced by a promotion).", (t) => t.conflicts),
    per("rrdsync_target_up", "gauge", "1 when the standby took the last transfer (or none failed yet), 0 while it is failing.", (t) => (t.up ? 1 : 0)),
    per("rrdsync_last_success_timestamp_seconds", "gauge", "When the standby last confirmed a batch (Unix time; 0: never).", (t) => s(t.status.lastBatch?.time) ?? 0),
    per("rrdsync_pass_duration_seconds", "gauge", "How long the last full pass over the tree took.", (t) => t.status.lastPass?.seconds ?? null),
    per("rrdsync_last_pass_timestamp_seconds", "gauge", "When the last full pass over the tree finished (Unix time).", (t) => s(t.status.lastPass?.time)),
    per("rrdsync_replica_lag_max_seconds", "gauge", "Replica lag of the RRD furthest behind: the source header's last update minus the replica copy's.", (t) => t.lag?.maxSeconds ?? null),
    per("rrdsync_replica_lag_median_seconds", "gauge", "Median replica lag over every tracked RRD (0 for those that are current).", (t) => t.lag?.medianSeconds ?? null),
    per("rrdsync_replica_behind_rrds", "gauge", "Tracked RRDs whose replica copy holds older data than the source.", (t) => t.lag?.behind ?? null),
    per("rrdsync_last_verify_timestamp_seconds", "gauge", "When rrdsync verify last compared this standby with the source (Unix time).", (t) => s(t.status.lastVerify?.time)),
    per("rrdsync_verify_drift_files", "gauge", "Differences the last verify found that rrdsync did not know of (changed, missing, newer, extra, unreadable).", (t) => {
      const v = t.status.lastVerify;
      return v ? v.differs + v.missing + v.newer + v.extra + v.errors : null;
    }),
  ];
  if (watcher) {
    families.push(
      { name: "rrdsync_queue_overflows_total", type: "counter", help: "Times the kernel's inotify event queue overflowed (each answered with a full rescan).", samples: [{ labels: {}, value: watcher.queueOverflows }] },
      { name: "rrdsync_inotify_watches", type: "gauge", help: "inotify watches the daemon holds on the source tree.", samples: watcher.inotifyWatches === null ? [] : [{ labels: {}, value: watcher.inotifyWatches }] },
    );
  }
  return renderFamilies(families);
}

export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/**
 * The daemon's /metrics: only that path answers (GET or HEAD); every other path is a 404. At most a few connections
 * at once, each closed after its answer or when idle (src/metrics/server.ts): scrapers never take the
 * descriptors replication needs.
 */
export function serveMetrics(listen: { host: string; port: number }, render: () => string): { stop(): void; port: number; open(): number } {
  try {
    return listenForMetrics(listen, CONTENT_TYPE, render);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "";
    const why = code === "EADDRINUSE" ? "the address is in use (another rrdsync, or an exporter?)" : code === "EADDRNOTAVAIL" ? "no interface has that address" : code === "EACCES" ? "permission denied (a port below 1024 needs root)" : (e as Error).message;
    throw new UserError(`metrics_listen ${listen.host}:${listen.port}: cannot listen: ${why}`, ExitCode.Usage, 'pick a free address and port in the config, or set metrics_listen to "" to turn the endpoint off');
  }
}

/**
 * Replaces `file` by a rename: node_exporter's textfile collector (or any reader) sees the old file or the new
 * one, never half of one. The temporary name is random, made with O_EXCL|O_NOFOLLOW in the same directory (whoever
 * can write the collector's directory cannot make us write through a symlink), and does not end in .prom, so the
 * collector never reads it.
 */
export function writeTextfile(file: string, text: string): void {
  writeFileAtomic(file, text);
}

/** How often the daemon rewrites metrics_file (node_exporter's scrapes are usually 15–60 s apart). */
const TEXTFILE_EVERY_MS = 15_000;

/**
 * The daemon's outputs: /metrics when metrics_listen is set, and metrics_file rewritten every 15 s when that is
 * set (and once more at stop). A failed write is logged once until one succeeds again.
 */
export function startMetricsOutputs(o: { listen: { host: string; port: number } | null; file: string }, render: () => string, log: EngineLog): { stop(): void } {
  const server = o.listen ? serveMetrics(o.listen, render) : null;
  if (o.listen) log.info(`metrics at http://${o.listen.host.includes(":") ? `[${o.listen.host}]` : o.listen.host}:${o.listen.port}/metrics`);
  let failing = false;
  const write = () => {
    try {
      writeTextfile(o.file, render());
      failing = false;
    } catch (e) {
      if (!failing) log.error(`metrics_file ${o.file}: not written: ${errorText(e)}`);
      failing = true;
    }
  };
  const timer = o.file ? setInterval(write, TEXTFILE_EVERY_MS) : null;
  if (o.file) write();
  return {
    stop() {
      server?.stop();
      if (timer) {
        clearInterval(timer);
        write();
      }
    },
  };
}

export function errorText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  return `${code ?? (e as Error).message}${code === "ENOENT" ? " (is its directory there?)" : code === "EACCES" ? " (permission denied)" : ""}`;
}
