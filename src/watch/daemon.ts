// The daemon (--watch): watch first, then one full pass per target, then turn the watcher's events into records in
// each target's queue; each target's lane sends what comes due. This file only wires and waits: the policy is the
// engine's (queue, retries, holds) and classify.ts's (what an event means).
import { join } from "node:path";
import { allTargets, type Config } from "../config/types.ts";
import { countQueueOverflow, processMetrics } from "../engine/metrics.ts";
import { closeTarget, type OpenTarget, openTarget, TargetEngine } from "../engine/target.ts";
import { ExitCode } from "../errors.ts";
import { escapeLine } from "../escape.ts";
import type { BatchReport, Progress } from "../engine/types.ts";
import type { Logger } from "../log.ts";
import { lookAt } from "../source/look.ts";
import { isDiskFull, stateDiskFull } from "../store/state.ts";
import { sweepChanged } from "../source/sweep.ts";
import { countDirs, walkTree } from "../source/walk.ts";
import { describeTarget } from "../transport/create.ts";
import { type Action, classifyEvent } from "./classify.ts";
import type { WatchEvent } from "./events.ts";
import { Lane } from "./lane.ts";
import { systemdNotifier } from "./notify.ts"; // systemd: Type=notify + WatchdogSec
import { renderMetrics, startMetricsOutputs } from "../metrics/prometheus.ts";
import { createTreeWatcher, inotifyWatchLimit } from "./watcher.ts";

/** The live view the daemon reports to (the cli renders it: colours on a terminal, plain lines, or JSON). */
export interface DaemonView {
  event(type: string, fields: Record<string, unknown>, text: string): void;
  batch(b: BatchReport): void;
  progress(p: Progress): void;
  /** the same output for another target's lines */
  forTarget(name: string): DaemonView;
}

/** How long a running transfer may go on after SIGTERM before it is killed (its files then stay pending). */
const STOP_TIMEOUT_MS = 30_000;
/** Full-pass period when the kernel cannot watch the whole tree (inotify watch limit reached). */
const POLL_INTERVAL_MS = 30_000;

export async function runDaemon(config: Config, log: Logger, live: DaemonView): Promise<ExitCode> {
  const root = config.sourceDir;
  const opened: OpenTarget[] = [];
  const close = async () => {
    for (const o of opened.splice(0).reverse()) await closeTarget(o);
  };
  try {
    for (const c of allTargets(config)) opened.push(openTarget(c, log));
  } catch (e) {
    await close();
    throw e;
  }
  const primary = opened[0] as OpenTarget;
  const limit = inotifyWatchLimit();
  const sd = systemdNotifier(process.env, (m) => log.warn(m)); // a no-op unless NOTIFY_SOCKET is set
  let rescanWanted = false;
  let polling = false;
  let stopping = false;
  let wake: (() => void) | null = null;
  const kick = () => {
    const w = wake;
    wake = null;
    w?.();
  };

  // One lane per target: the first keeps the change log and backups; the others replicate only.
  const lanes = opened.map((o, i) => {
    const name = describeTarget(o.config);
    const view = i === 0 ? live : live.forTarget(name);
    const engine = new TargetEngine(o, log, { onBatch: (b) => view.batch(b), onProgress: i === 0 ? (p) => live.progress(p) : undefined }, { daemon: true });
    return new Lane(engine, log, (s, first) => {
      if (!first) {
        log.info(`rescan${i === 0 ? "" : ` (${name})`}: ${s.scanned} scanned, ${s.sent} sent`);
        if (s.sent > 1000) releaseMemory();
        return;
      }
      view.event("pass", { ...s, target: name }, `initial pass: ${s.sent} files sent, ${s.scanned} scanned in ${s.seconds.toFixed(1)} s${i === 0 ? "" : ` → ${escapeLine(name)}`}`);
      // The daemon's one SSH connection is opened now, not by the first burst (whose latency would pay the login);
      // not to a fenced target, which is retried nothing until `rrdsync unfence`.
      if (engine.ctx.guard.fenced === null) void o.transport.warm?.(ac.signal);
      // A first sync holds every file's plan and description until its one batch is committed; a daemon should
      // not keep that peak for weeks (measured: 300 MiB → 70 MiB after the first sync of 100,000 files).
      releaseMemory();
      if (i === 0) {
        sd.ready(`watching ${root} → ${lanes.map((l) => l.name).join(", ")}`); // READY=1 once the first target's initial pass is done
        const dirs = countDirs(root);
        if (limit !== null && dirs > limit * 0.9) {
          log.warn(`${dirs} directories to watch and fs.inotify.max_user_watches is ${limit}: raise it (sysctl fs.inotify.max_user_watches=${dirs * 2})`);
        }
      }
    });
  });
  const own = (lanes[0] as Lane).engine.ctx.own; // every target's state files, the backups and the logs
  let sourceMissing: number | null = null;

  const act = (a: Action) => {
    const now = Date.now();
    switch (a.kind) {
      case "changed":
      case "gone":
        for (const l of lanes) l.note(a.path, a.kind, now);
        break;
      case "moved":
        for (const l of lanes) l.note(a.to, "moved", now, a.from);
        break;
      case "goneDir":
        // each target deletes what it tracks under the directory
        for (const l of lanes) for (const p of l.engine.ctx.store.pathsUnder(a.dir)) l.note(p, "gone", now);
        break;
      case "movedDir":
        // each target moves what it tracks under the directory, file by file: one move each on the replica
        for (const l of lanes) for (const p of l.engine.ctx.store.pathsUnder(a.from)) l.note(`${a.to}${p.slice(a.from.length)}`, "moved", now, p);
        break;
      case "walk":
        // A new directory may hold files written before its watch existed (mkdir -p + write, or mv into the tree).
        for (const f of walkTree(join(root, a.dir), { extensions: config.monitoredExtensions, exclude: own, onProblem: () => {} })) {
          for (const l of lanes) l.note(`${a.dir}/${f.rel}`, "changed", now);
        }
        break;
      case "rescan":
        if (sourceMissing !== null) {
          log.info(`the source directory ${root} is back (it was missing for ${Math.round((now - sourceMissing) / 1000)} s)`);
          sourceMissing = null;
          for (const l of lanes) {
            l.engine.ctx.health.sourceMissing(null);
            l.setPaused(false);
          }
        }
        log.warn(a.why);
        rescanWanted = true;
        kick();
        break;
      case "sourceGone":
        // Never a reason to delete anything on the replica: everything waits until the directory is back.
        sourceMissing = now;
        log.error(`the source directory ${root} is gone (moved away, removed or unmounted): nothing is replicated or deleted until it is back`);
        for (const l of lanes) {
          l.setPaused(true);
          l.engine.ctx.health.sourceMissing(now);
        }
        break;
      case "watchError":
        log.error(a.poll ? `${a.message}; meanwhile a full scan runs every ${POLL_INTERVAL_MS / 1000} s` : `${a.message}; the periodic rescan covers it`);
        if (a.poll) {
          polling = true;
          rescanWanted = true;
          kick();
        }
        break;
    }
  };

  const classifyCtx = {
    isOwn: (rel: string) => own.has(join(root, rel)), extensions: config.monitoredExtensions, deletes: config.delete,
    reportsNewDirFiles: false,
  };
  const look = (rel: string) => lookAt(root, rel);
  const debugging = log.wants("DEBUG");
  const onEvent = (e: WatchEvent) => {
    if (stopping) return;
    if (e.type === "overflow") countQueueOverflow();
    for (const a of classifyEvent(e, look, classifyCtx)) {
      if (a.kind !== "ignore" && debugging) log.debug(`event ${e.type} → ${JSON.stringify(a)}`);
      act(a);
    }
  };

  /** The stat sweep: tracked files changed without an event (a writer that keeps its file mapped and open). */
  let sweeping = false;
  const sweep = async () => {
    if (sweeping || sourceMissing !== null) return;
    sweeping = true;
    const t0 = performance.now();
    let found = 0;
    try {
      for await (const rel of sweepChanged(root, primary.store.trackedKeys())) {
        if (stopping) break;
        found++;
        for (const l of lanes) l.note(rel, "changed", Date.now());
      }
      log.debug(`sweep: ${found} changed without an event, ${((performance.now() - t0) / 1000).toFixed(2)} s`);
    } catch (e) {
      log.warn(`sweep failed: ${(e as Error).message}`);
    } finally {
      sweeping = false;
    }
  };

  const ac = new AbortController();
  let forced = false;
  let watchesAtStop: number | null = null;
  const stop = (sig: string) => {
    if (stopping) {
      // Second signal: leave now. Unconfirmed files never advanced in the state, so the next start resends them.
      forced = true;
      log.warn(`${sig} again: exiting at once`);
      ac.abort();
      process.exit(ExitCode.Interrupted);
    }
    stopping = true;
    // the metrics written at stop still say how many directories were watched (the watcher is closed below)
    watchesAtStop = watcher.watchCount();
    sd.stopping(`${sig}: stopping`);
    log.info(`${sig}: stopping; the running transfer may finish (at most ${STOP_TIMEOUT_MS / 1000} s)`);
    void watcher.close();
    setTimeout(() => ac.abort(), STOP_TIMEOUT_MS).unref();
    kick();
  };
  const onHup = () => {
    log.reopen();
    primary.changeLog.reopen();
    log.info("SIGHUP: log files reopened");
  };
  const onInt = () => stop("SIGINT");
  const onTerm = () => stop("SIGTERM");
  process.on("SIGINT", onInt);
  process.on("SIGTERM", onTerm);
  process.on("SIGHUP", onHup);

  const watcher = createTreeWatcher(root, onEvent, log);
  classifyCtx.reportsNewDirFiles = watcher.kind === "inotify";
  const runs: Array<Promise<void>> = [];
  let metrics: { stop(): void } | null = null;
  try {
    metrics = startMetricsOutputs(
      { listen: config.metricsListen, file: config.metricsFile },
      () => renderMetrics(lanes.map((l) => l.engine.snapshot()), { queueOverflows: processMetrics.queueOverflows, inotifyWatches: watchesAtStop ?? watcher.watchCount() }),
      log,
    );
    // Watch first, then the full pass: whatever changes during the pass is queued, never missed. The pass waits
    // until every directory is watched (a change before its watch existed is found by the pass).
    watcher.start();
    await watcher.ready;
    live.event("start", { source: root, target: describeTarget(config) }, escapeLine(`watching ${root} → ${describeTarget(config)}`));
    const every = (sec: number) => (sec > 0 ? `every ${sec} s` : "off");
    log.info(`watching ${root} → ${lanes.map((l) => l.name).join(", ")} with ${watcher.kind}${watcher.watchCount() === null ? "" : ` (${watcher.watchCount()} directories)`}; debounce ${config.debounceTime} s, max delay ${config.maxDelay} s, sweep ${every(config.pollInterval)}, rescan ${every(config.rescanInterval)}`);
    // A lane that fails (a bug, a damaged DB) stops the daemon with its error, as a single loop would have.
    let laneError: unknown = null;
    for (const l of lanes) {
      runs.push(l.run(ac.signal).catch((e) => {
        // A full state disk stops the daemon as --once stops (exit 1, the fix named); systemd restarts it.
        laneError ??= isDiskFull(e) ? stateDiskFull(l.engine.ctx.config.stateFile, e) : e;
        stopping = true;
        kick();
      }));
    }
    let nextRescan = config.rescanInterval > 0 ? Date.now() + config.rescanInterval * 1000 : Infinity;
    let nextPoll = Infinity;
    let nextSweep = config.pollInterval > 0 ? Date.now() + config.pollInterval * 1000 : Infinity;
    while (!stopping) {
      sd.watchdog(); // from this loop only: if it stops coming round, systemd restarts the daemon
      const now = Date.now();
      if (polling && nextPoll === Infinity) nextPoll = now + POLL_INTERVAL_MS;
      if (sourceMissing === null && (rescanWanted || now >= nextRescan || now >= nextPoll)) {
        rescanWanted = false;
        if (now >= nextRescan) nextRescan = now + config.rescanInterval * 1000;
        if (polling) nextPoll = now + POLL_INTERVAL_MS;
        for (const l of lanes) l.requestPass();
        continue;
      }
      if (now >= nextSweep) {
        nextSweep = now + config.pollInterval * 1000;
        void sweep();
        continue;
      }
      const waitMs = Math.max(0, Math.min(nextRescan, nextPoll, nextSweep) - Date.now());
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(waitMs, 60_000, sd.wakeEveryMs)); // the watchdog needs a ping at least this often
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    for (const l of lanes) l.stop();
    await Promise.all(runs);
    if (laneError !== null) throw laneError;
    log.info("stopped");
    return forced ? ExitCode.Interrupted : ExitCode.Ok;
  } finally {
    metrics?.stop();
    await watcher.close();
    for (const l of lanes) l.stop();
    await Promise.allSettled(runs);
    await close();
    process.off("SIGHUP", onHup);
    process.off("SIGINT", onInt);
    process.off("SIGTERM", onTerm);
  }
}

function releaseMemory(): void {
  Bun.gc(true); // a full, synchronous collection: JSC then returns freed pages to the OS
}
