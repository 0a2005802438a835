// The daemon (--watch): watch first, then one full pass per target, then turn the watcher's events into records in
// each target's queue; each target's lane sends what comes due. This file only wires and waits: the policy is the
// engine's (queue, retries, holds) and classify.ts's (what an event means).
import { join } from "node:path";
import { allTargets, type Config } from "../config/types.ts";
import { closeTarget, type OpenTarget, openTarget, TargetEngine } from "../engine/target.ts";
import { ExitCode } from "../errors.ts";
import type { BatchReport, Progress } from "../engine/types.ts";
import type { Logger } from "../log.ts";
import { lookAt } from "../source/look.ts";
import { countDirs, walkTree } from "../source/walk.ts";
import { describeTarget } from "../transport/create.ts";
import { type Action, classifyPath } from "./classify.ts";
import { Lane } from "./lane.ts";
import { inotifyWatchLimit, TreeWatcher, type WatchEvent } from "./watcher.ts";

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
      view.event("pass", { ...s, target: name }, `initial pass: ${s.sent} files sent, ${s.scanned} scanned in ${s.seconds.toFixed(1)} s${i === 0 ? "" : ` → ${name}`}`);
      // A first sync holds every file's plan and description until its one batch is committed; a daemon should
      // not keep that peak for weeks (measured: 300 MiB → 70 MiB after the first sync of 100,000 files).
      releaseMemory();
      if (i === 0) {
        const dirs = countDirs(root);
        if (limit !== null && dirs > limit * 0.9) {
          log.warn(`${dirs} directories to watch and fs.inotify.max_user_watches is ${limit}: raise it (sysctl fs.inotify.max_user_watches=${dirs * 2})`);
        }
      }
    });
  });
  const own = (lanes[0] as Lane).engine.ctx.own; // every target's state files, the backups and the logs
  const ctx = { isOwn: (rel: string) => own.has(join(root, rel)), extensions: config.monitoredExtensions, deletes: config.delete };

  const act = (a: Action) => {
    const now = Date.now();
    switch (a.kind) {
      case "changed":
      case "gone":
        for (const l of lanes) l.note(a.path, a.kind, now);
        break;
      case "goneDir":
        // each target deletes what it tracks under the directory
        for (const l of lanes) for (const p of l.engine.ctx.store.pathsUnder(a.dir)) l.note(p, "gone", now);
        break;
      case "walk":
        // A new directory may hold files written before its watch existed (mkdir -p + write, or mv into the tree).
        for (const f of walkTree(join(root, a.dir), { extensions: config.monitoredExtensions, exclude: own, onProblem: () => {} })) {
          for (const l of lanes) l.note(`${a.dir}/${f.rel}`, "changed", now);
        }
        break;
      case "rescan":
        log.warn(a.why);
        rescanWanted = true;
        kick();
        break;
    }
  };

  const onEvent = (e: WatchEvent) => {
    if (stopping) return;
    if (e.type === "overflow") {
      act({ kind: "rescan", why: "the kernel's event queue overflowed (events were lost): running a full rescan" });
    } else if (e.type === "error") {
      if (e.code === "ENOSPC") {
        log.error(
          `the inotify watch limit (fs.inotify.max_user_watches = ${inotifyWatchLimit() ?? "?"}) is too low to watch the whole tree; ` +
            `falling back to a full scan every ${POLL_INTERVAL_MS / 1000} s. Fix: sysctl fs.inotify.max_user_watches=<2 × the number of directories> ` +
            "(persist it in /etc/sysctl.d/), then restart rrdsync",
        );
      } else {
        log.error(`the watcher failed (${e.code}: ${e.message}); falling back to a full scan every ${POLL_INTERVAL_MS / 1000} s`);
      }
      polling = true;
      rescanWanted = true;
      kick();
    } else {
      const look = lookAt(root, e.rel);
      const a = classifyPath(e.rel, look, ctx);
      if (a.kind !== "ignore") log.debug(`event: ${e.rel} → ${a.kind}${look.kind === "file" ? ` (size ${look.stat.size}, mtime_ns ${look.stat.mtimeNs})` : ""}`);
      act(a);
    }
  };

  const ac = new AbortController();
  let forced = false;
  const stop = (sig: string) => {
    if (stopping) {
      // Second signal: leave now. Unconfirmed files never advanced in the state, so the next start resends them.
      forced = true;
      log.warn(`${sig} again: exiting at once`);
      ac.abort();
      process.exit(130);
    }
    stopping = true;
    log.info(`${sig}: stopping; the running transfer may finish (at most ${STOP_TIMEOUT_MS / 1000} s)`);
    watcher.close();
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

  const watcher = new TreeWatcher(root, onEvent);
  const runs: Array<Promise<void>> = [];
  try {
    // Watch first, then the full pass: whatever changes during the pass is queued, never missed.
    watcher.start();
    live.event("start", { source: root, target: describeTarget(config) }, `watching ${root} → ${describeTarget(config)}`);
    log.info(`watching ${root} → ${lanes.map((l) => l.name).join(", ")} (debounce ${config.debounceTime} s, max delay ${config.maxDelay} s, rescan ${config.rescanInterval > 0 ? `every ${config.rescanInterval} s` : "off"})`);
    // A lane that fails (a bug, a damaged DB) stops the daemon with its error, as a single loop would have.
    let laneError: unknown = null;
    for (const l of lanes) {
      runs.push(l.run(ac.signal).catch((e) => {
        laneError ??= e;
        stopping = true;
        kick();
      }));
    }
    let nextRescan = config.rescanInterval > 0 ? Date.now() + config.rescanInterval * 1000 : Infinity;
    let nextPoll = Infinity;
    while (!stopping) {
      const now = Date.now();
      if (polling && nextPoll === Infinity) nextPoll = now + POLL_INTERVAL_MS;
      if (rescanWanted || now >= nextRescan || now >= nextPoll) {
        rescanWanted = false;
        if (now >= nextRescan) nextRescan = now + config.rescanInterval * 1000;
        if (polling) nextPoll = now + POLL_INTERVAL_MS;
        for (const l of lanes) l.requestPass();
        continue;
      }
      const waitMs = Math.max(0, Math.min(nextRescan, nextPoll) - Date.now());
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(waitMs, 60_000));
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
    return forced ? (130 as ExitCode) : ExitCode.Ok;
  } finally {
    watcher.close();
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
