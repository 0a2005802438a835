// The daemon (--watch): watch first, then one full pass, then ship debounced batches until a signal stops it.
import { type BigIntStats, lstatSync } from "node:fs";
import { join } from "node:path";
import { type Config, configForTarget } from "../config/types.ts";
import { newDebounce, nextDeadline, takeDue, touch } from "../engine/debounce.ts";
import { ExitCode } from "../errors.ts";
import type { Logger } from "../log.ts";
import { acquireLock, type Lock } from "../store/lock.ts";
import { StateStore } from "../store/state.ts";
import { type ChangeLog, openChangeLog } from "../track/changelog.ts";
import { createTransport, describeTarget } from "../transport/create.ts";
import type { Transport } from "../transport/types.ts";
import { countDirs, matchesExtensions, walkTree } from "../watch/walk.ts";
import { inotifyWatchLimit, TreeWatcher, type WatchEvent } from "../watch/watcher.ts";
import { Lane } from "./lane.ts";
import type { Live } from "./live.ts";

/** How long a running transfer may go on after SIGTERM before it is killed (its files then stay pending). */
const STOP_TIMEOUT_MS = 30_000;
/** Full-pass period when the kernel cannot watch the whole tree (inotify watch limit reached). */
const POLL_INTERVAL_MS = 30_000;

export async function watchDaemon(config: Config, log: Logger, live: Live): Promise<ExitCode> {
  const root = config.sourceDir;
  const deb = newDebounce(config.debounceTime * 1000, config.maxDelay * 1000);
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
  const opened: Array<{ config: Config; lock: Lock; store: StateStore; transport: Transport; changeLog: ChangeLog }> = [];
  const close = async () => {
    for (const o of opened.splice(0).reverse()) {
      await o.transport.close();
      o.changeLog.close();
      o.store.close();
      o.lock.release();
    }
  };
  try {
    for (const c of [config, ...config.extraTargets.map((t) => configForTarget(config, t))]) {
      const lock = acquireLock(c.stateFile);
      let o: ReturnType<typeof StateStore.open>;
      try {
        o = StateStore.open(c.stateFile);
      } catch (e) {
        lock.release();
        throw e;
      }
      if (o.corruptCopy !== null) log.error(`the state DB was damaged; it is kept as ${o.corruptCopy} and a new one is rebuilt by the initial pass`);
      if (o.seedBackup !== null) log.warn(`imported ${o.imported} entries of the seed script's JSON state; the original is kept as ${o.seedBackup}`);
      opened.push({ config: c, lock, store: o.store, transport: createTransport(c, log), changeLog: openChangeLog(c, log) });
    }
  } catch (e) {
    await close();
    throw e;
  }
  const primary = opened[0] as (typeof opened)[number];
  const { store, changeLog } = primary;
  const target = describeTarget(config);
  const limit = inotifyWatchLimit();

  const lanes = opened.map((o, i) => {
    const name = describeTarget(o.config);
    const view = i === 0 ? live : live.forTarget(name);
    return new Lane(name, o.config, {
      config: o.config, store: o.store, transport: o.transport, changeLog: o.changeLog, log,
      onProgress: i === 0 ? (p) => live.progress(p) : undefined,
      // a held RRD comes due again after the hold delay, as if it had just been written
      onHold: (rel, delayMs) => {
        setTimeout(() => {
          touch(deb, rel, Date.now() - deb.maxDelayMs);
          kick();
        }, delayMs).unref();
      },
    }, log, {
      onBatch: (b) => {
        view.batch(b);
        for (const p of b.changed) touch(deb, p, Date.now()); // the watcher saw the write too; this covers a coalesced event
        if (b.changed.length > 0) kick();
      },
      onPass: (s, first) => {
        if (first) {
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
        } else {
          log.info(`rescan${i === 0 ? "" : ` (${name})`}: ${s.scanned} scanned, ${s.sent} sent`);
          if (s.sent > 1000) releaseMemory();
        }
      },
    });
  });
  const own = (lanes[0] as Lane).replicator.own; // every target's state files, the backups and the logs

  const touchTree = (relDir: string) => {
    // A new directory may hold files written before its watch existed (mkdir -p + write, or mv into the tree).
    for (const f of walkTree(join(root, relDir), { extensions: config.monitoredExtensions, exclude: own, onProblem: () => {} })) {
      touch(deb, `${relDir}/${f.rel}`, Date.now());
    }
  };

  const onEvent = (e: WatchEvent) => {
    if (stopping) return;
    if (e.type === "overflow") {
      log.warn("the kernel's event queue overflowed (events were lost): running a full rescan");
      rescanWanted = true;
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
    } else {
      const abs = join(root, e.rel);
      if (own.has(abs)) return;
      let st: BigIntStats;
      try {
        st = lstatSync(abs, { bigint: true });
      } catch {
        // Gone (deleted, renamed away, or a directory moved out of the tree): nothing to send. With `delete` on,
        // the file (or every tracked file under the directory) comes due, so the replica loses it too.
        if (!config.delete) return;
        const under = matchesExtensions(e.rel, config.monitoredExtensions) ? [e.rel] : [...store.pathsUnder(e.rel)];
        if (under.length === 0) return;
        for (const p of under) touch(deb, p, Date.now());
        log.debug(`event: ${e.rel} is gone (${under.length} tracked file${under.length === 1 ? "" : "s"})`);
        kick();
        return;
      }
      if (st.isDirectory()) touchTree(e.rel);
      else if (st.isFile() && matchesExtensions(e.rel, config.monitoredExtensions)) {
        touch(deb, e.rel, Date.now());
        log.debug(`event: ${e.rel} (size ${st.size}, mtime_ns ${st.mtimeNs})`);
      }
      else return;
    }
    kick();
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
    changeLog.reopen();
    log.info("SIGHUP: log files reopened");
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGHUP", onHup);

  const watcher = new TreeWatcher(root, onEvent);
  const runs: Array<Promise<void>> = [];
  try {
    // Watch first, then the full pass: whatever changes during the pass is queued, never missed.
    watcher.start();
    live.event("start", { source: root, target }, `watching ${root} → ${target}`);
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
      // Files due within the next quarter debounce go along: one rsync instead of several for one burst.
      const due = takeDue(deb, now, deb.debounceMs / 4);
      if (due.length > 0) {
        for (const l of lanes) l.push(due);
        continue;
      }
      const deadlines = [nextDeadline(deb) ?? Infinity, nextRescan, nextPoll];
      const waitMs = Math.max(0, Math.min(...deadlines) - Date.now());
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
    return forced ? 130 as ExitCode : ExitCode.Ok;
  } finally {
    watcher.close();
    for (const l of lanes) l.stop();
    await Promise.allSettled(runs);
    await close();
    process.off("SIGHUP", onHup);
  }
}

function releaseMemory(): void {
  Bun.gc(true); // a full, synchronous collection: JSC then returns freed pages to the OS
}

