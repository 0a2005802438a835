// The daemon (--watch): watch first, then one full pass, then ship debounced batches until a signal stops it.
import { type BigIntStats, lstatSync, readdirSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../config/types.ts";
import { backoffDelay } from "../engine/backoff.ts";
import { newDebounce, nextDeadline, takeDue, touch } from "../engine/debounce.ts";
import { ExitCode } from "../errors.ts";
import type { Logger } from "../log.ts";
import { Replicator } from "../replicate.ts";
import { acquireLock } from "../store/lock.ts";
import { StateStore } from "../store/state.ts";
import { openChangeLog } from "../track/changelog.ts";
import { createTransport, describeTarget } from "../transport/create.ts";
import { matchesExtensions, walkTree } from "../watch/walk.ts";
import { inotifyWatchLimit, TreeWatcher, type WatchEvent } from "../watch/watcher.ts";
import type { Live } from "./live.ts";

/** How long a running transfer may go on after SIGTERM before it is killed (its files then stay pending). */
const STOP_TIMEOUT_MS = 30_000;
/** Full-pass period when the kernel cannot watch the whole tree (inotify watch limit reached). */
const POLL_INTERVAL_MS = 30_000;

export async function watchDaemon(config: Config, log: Logger, live: Live): Promise<ExitCode> {
  const lock = acquireLock(config.stateFile);
  const { store, seedBackup, imported, corruptCopy } = StateStore.open(config.stateFile);
  if (corruptCopy !== null) log.error(`the state DB was damaged; it is kept as ${corruptCopy} and a new one is rebuilt by the initial pass`);
  if (seedBackup !== null) log.warn(`imported ${imported} entries of the seed script's JSON state; the original is kept as ${seedBackup}`);
  const changeLog = openChangeLog(config, log);
  const transport = createTransport(config);
  const target = describeTarget(config);
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

  // Retries: files the destination did not confirm, sent again after a backoff (one warning per outage).
  const retry = new Set<string>();
  let retryAt = 0;
  let failures = 0;
  let targetDown = false;

  const replicator = new Replicator({
    config, store, transport, changeLog, log,
    onProgress: (p) => live.progress(p),
    // a held RRD comes due again after the hold delay, as if it had just been written
    onHold: (rel, delayMs) => {
      setTimeout(() => {
        touch(deb, rel, Date.now() - deb.maxDelayMs);
        kick();
      }, delayMs).unref();
    },
    onBatch: (b) => {
      live.batch(b);
      if (b.error) {
        if (!targetDown) log.warn(`${target} is unreachable: ${b.error}; retrying with backoff, changes are kept`);
        targetDown = true;
      } else if (b.files > 0 && targetDown) {
        targetDown = false;
        log.info(`${target} is reachable again`);
      }
      for (const p of b.changed) touch(deb, p, Date.now()); // the watcher saw the write too; this covers a coalesced event
      for (const p of b.pending) retry.add(p);
      if (b.pending.length > 0) {
        retryAt = Date.now() + backoffDelay(failures++, { initialMs: config.retry.initialSeconds * 1000, maxMs: config.retry.maxSeconds * 1000 });
      } else if (!b.error) {
        failures = 0;
      }
    },
  });

  const touchTree = (relDir: string) => {
    // A new directory may hold files written before its watch existed (mkdir -p + write, or mv into the tree).
    for (const f of walkTree(join(root, relDir), { extensions: config.monitoredExtensions, exclude: replicator.own, onProblem: () => {} })) {
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
      if (replicator.own.has(abs)) return;
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
  try {
    // Watch first, then the full pass: whatever changes during the pass is queued, never missed.
    watcher.start();
    live.event("start", { source: root, target }, `watching ${root} → ${target}`);
    log.info(`watching ${root} → ${target} (debounce ${config.debounceTime} s, max delay ${config.maxDelay} s, rescan ${config.rescanInterval > 0 ? `every ${config.rescanInterval} s` : "off"})`);
    const limit = inotifyWatchLimit();
    const first = await replicator.runPass(ac.signal);
    live.event("pass", { ...first }, `initial pass: ${first.sent} files sent, ${first.scanned} scanned in ${first.seconds.toFixed(1)} s`);
    // A first sync holds every file's plan and description until its one batch is committed; a daemon should
    // not keep that peak for weeks (measured: 300 MiB → 70 MiB after the first sync of 100,000 files).
    releaseMemory();
    const dirs = countDirs(root);
    if (limit !== null && dirs > limit * 0.9) {
      log.warn(`${dirs} directories to watch and fs.inotify.max_user_watches is ${limit}: raise it (sysctl fs.inotify.max_user_watches=${dirs * 2})`);
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
        const s = await replicator.runPass(ac.signal);
        log.info(`rescan: ${s.scanned} scanned, ${s.sent} sent`);
        if (s.sent > 1000) releaseMemory();
        continue;
      }
      if (retry.size > 0 && now >= retryAt) {
        for (const p of retry) touch(deb, p, now - deb.maxDelayMs); // due at once
        retry.clear();
      }
      // Files due within the next quarter debounce go along: one rsync instead of several for one burst.
      const due = takeDue(deb, now, deb.debounceMs / 4);
      if (due.length > 0) {
        await replicator.syncPaths(due, ac.signal);
        continue;
      }
      const deadlines = [nextDeadline(deb) ?? Infinity, nextRescan, nextPoll, retry.size > 0 ? retryAt : Infinity];
      const waitMs = Math.max(0, Math.min(...deadlines) - Date.now());
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(waitMs, 60_000));
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    log.info("stopped");
    return forced ? 130 as ExitCode : ExitCode.Ok;
  } finally {
    watcher.close();
    await transport.close();
    changeLog.close();
    store.close();
    lock.release();
    process.off("SIGHUP", onHup);
  }
}

function releaseMemory(): void {
  Bun.gc(true); // a full, synchronous collection: JSC then returns freed pages to the OS
}

function countDirs(root: string): number {
  let n = 0;
  const stack = [root];
  while (stack.length > 0) {
    const d = stack.pop() as string;
    n++;
    try {
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) stack.push(join(d, e.name));
    } catch {
      // unreadable: reported by the pass
    }
  }
  return n;
}
