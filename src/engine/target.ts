// A target, opened: its lock, state DB, transport and change log, and the engine that runs passes over it with its
// pending queue and health. --once and the daemon both open targets here.
import type { Config } from "../config/types.ts";
import { rmSync } from "node:fs";
import { StateMismatchError } from "../errors.ts";
import { ownFiles } from "../source/own-files.ts";
import { compareIdentity, identityMismatch, identityOf, showIdentity } from "../store/identity.ts";
import { acquireLock, type Lock } from "../store/lock.ts";
import { isCorruption, isDiskFull, StateStore, stateDiskFull } from "../store/state.ts";
import { BackupStager, copyReader } from "../track/backup.ts";
import { type ChangeLog, openChangeLog } from "../track/changelog.ts";
import { BackupVersions } from "../track/versions.ts";
import { createTransport, describeTarget } from "../transport/create.ts";
import type { Transport } from "../transport/types.ts";
import { Audit } from "./audit.ts";
import { ReplicaGuard } from "./guard.ts";
import type { TargetContext } from "./context.ts";
import { TargetHealth } from "./health.ts";
import { replicaLag } from "./lag.ts";
import { fenceFigures, TargetCounters, type TargetSnapshot } from "./metrics.ts";
import { HistoryRetention } from "./history.ts";
import { Pass } from "./pass.ts";
import { RollupLedger } from "./rollup.ts";
import { PendingQueue } from "./pending.ts";
import type { EngineHooks, EngineLog, PassStats } from "./types.ts";

/** How often the daemon refreshes the recorded replica lag at most (a tracked-RRD count per refresh). */
const LAG_RECORD_MS = 30_000;

export interface OpenTarget {
  config: Config;
  lock: Lock;
  store: StateStore;
  transport: Transport;
  changeLog: ChangeLog;
}

/**
 * Takes the target's lock and opens its state DB (a damaged one is kept aside and rebuilt; one that describes
 * another source or destination stops here, or is kept aside and rebuilt with --rebuild-state), transport and
 * change log.
 */
export function openTarget(config: Config, log: EngineLog): OpenTarget {
  const lock = acquireLock(config.stateFile);
  let opened: ReturnType<typeof StateStore.open>;
  try {
    opened = StateStore.open(config.stateFile);
    opened = settleIdentity(config, opened, log);
  } catch (e) {
    lock.release();
    throw e;
  }
  if (opened.corruptCopy !== null) {
    log.error(`the state DB was damaged; it is kept as ${opened.corruptCopy} and a new one is rebuilt by this pass (files the replica already has cost only rsync's quick check; their change-log entries say "created" again)`);
  }
  if (opened.seedBackup !== null) log.warn(`imported ${opened.imported} entries of the seed script's JSON state; the original is kept as ${opened.seedBackup}`);
  return { config, lock, store: opened.store, transport: createTransport(config, log), changeLog: openChangeLog(config, log) };
}

/**
 * The state DB must describe this target's source and destination before anything is sent, moved or deleted on
 * the strength of its rows (src/store/identity.ts). A DB of an earlier rrdsync names none: it takes the config's
 * (said in the log), as does one that recorded nothing yet. Called under the target's lock.
 */
function settleIdentity(config: Config, opened: ReturnType<typeof StateStore.open>, log: EngineLog): ReturnType<typeof StateStore.open> {
  const want = identityOf(config);
  const { store } = opened;
  const check = store.identityCheck(want);
  if (check.kind === "match") return opened;
  if (check.kind === "none" || store.recordsNothing()) {
    if (check.kind === "none" && !store.recordsNothing()) {
      log.warn(`the state DB ${config.stateFile} did not record which source and destination it describes (made by an earlier rrdsync): it now records ${showIdentity(want)}`);
    }
    store.recordIdentity(want);
    return opened;
  }
  const m = identityMismatch(config.stateFile, check.had, want);
  if (!config.rebuildState) throw new StateMismatchError(m.message, m.hint);
  store.close();
  const kept = StateStore.moveAside(config.stateFile, "replaced");
  // The SFTP transport's note of replica directories with temporary files is about the old destination.
  rmSync(`${config.stateFile}.sftp-inflight`, { force: true });
  log.warn(`--rebuild-state: the state DB described ${showIdentity(check.had)}; it is kept as ${kept}, and this pass records ${showIdentity(want)} anew (files the standby already has cost only rsync's quick check)`);
  const fresh = StateStore.open(config.stateFile);
  fresh.store.recordIdentity(want);
  return fresh;
}

export async function closeTarget(o: OpenTarget): Promise<void> {
  await o.transport.close();
  o.changeLog.close();
  o.store.close();
  o.lock.release();
}

/** The engine of one target: passes over it, its queue of pending files and its health, for the process's life. */
export class TargetEngine {
  readonly ctx: TargetContext;
  /** full passes finished: until the first, files changed while rrdsync was away are not in the queue yet */
  private passes = 0;

  /** `repairOnly`: verify --repair's engine, whose queue knows only the files it repairs (status keeps the last run's pending). */
  constructor(o: OpenTarget, log: EngineLog, hooks: EngineHooks, mode: { daemon: boolean; repairOnly?: boolean }) {
    const { config, store, transport, changeLog } = o;
    const ct = config.changeTracking;
    const stager = new BackupStager(ct.backupDir);
    const versions = new BackupVersions(ct.backupDir, store, { keepVersions: ct.keepVersions, maxBackupBytes: ct.maxBackupBytes });
    const name = describeTarget(config);
    const ledger = ct.enabled ? new RollupLedger(store, changeLog, ct, log) : null;
    const history = new HistoryRetention(store, ct, log);
    if (mode.repairOnly !== true) history.prepare();
    this.ctx = {
      name, config, store, transport, stager, log, hooks, changeLog, ledger, history,
      copies: copyReader(ct.backupDir, (rel) => store.backupOf(rel)),
      own: ownFiles(config),
      audit: new Audit({ store, changeLog, stager, versions, tracking: ct, log, ledger }),
      // the steady-state rule only for the daemon's river of events (a --once pass takes its queue as it is)
      queue: new PendingQueue({
        debounceMs: config.debounceTime * 1000, maxDelayMs: config.maxDelay * 1000,
        collectMs: mode.daemon ? config.batchCollectTime * 1000 : 0, batchMaxFiles: config.batchMaxFiles,
      }),
      health: new TargetHealth(name, store, log, { initialMs: config.retry.initialSeconds * 1000, maxMs: config.retry.maxSeconds * 1000 }, mode.daemon),
      guard: new ReplicaGuard({ name, config, store, transport, log, changeLog }),
      counters: new TargetCounters(store, log),
      waitForHolds: !mode.daemon,
      reportsPending: mode.repairOnly !== true,
    };
  }

  get queue(): PendingQueue {
    return this.ctx.queue;
  }

  /** a first sync the standby cut short: the daemon resumes it once the target may be tried again */
  private firstSyncUnfinished = false;

  /** A full pass over the tree. */
  async runPass(signal?: AbortSignal): Promise<PassStats> {
    const s = await new Pass(this.ctx, signal).full();
    this.firstSyncUnfinished = s.firstSyncUnfinished === true;
    this.passes++;
    this.recordLag(Date.now(), true);
    return s;
  }

  private lagRecordedAt = 0;

  /**
   * Keeps the replica lag in the status record for `status` on a large tree: after a full pass every tracked RRD
   * not in the queue is on the replica as the pass found it, so only the queued ones are looked at (cheap). The
   * daemon's batches refresh it at most every LAG_RECORD_MS.
   */
  private recordLag(now: number, force = false): void {
    if (this.passes === 0 || (!force && now - this.lagRecordedAt < LAG_RECORD_MS)) return;
    this.lagRecordedAt = now;
    const { store, queue, config, log } = this.ctx;
    try {
      store.setStatus({ lag: { time: now, ...replicaLag(store, config.sourceDir, queue.paths()) } });
    } catch (e) {
      log.debug(`replica lag not recorded: ${(e as Error).message}`);
    }
  }

  /**
   * What monitoring reads now. The replica lag looks at the queued files only once a full pass has found
   * everything that changed while rrdsync was away (before that: every tracked RRD).
   */
  snapshot(): TargetSnapshot {
    const { name, store, queue, health, counters, config } = this.ctx;
    return {
      target: name, status: store.status(), totals: counters.totals, trackedFiles: store.countFiles(), pendingFiles: queue.size, up: !health.down,
      lag: replicaLag(store, config.sourceDir, this.passes > 0 ? queue.paths() : undefined), ...fenceFigures(this.ctx.guard.fenced),
    };
  }

  /** verify --repair: these files go again and are recorded as repaired. */
  repair(files: Array<{ path: string; why: string }>, signal?: AbortSignal): Promise<PassStats> {
    return new Pass(this.ctx, signal).repair(files);
  }

  /** The queue's records due at `now` (and those due within `gatherMs`), or null when none is due. */
  async sendDue(now: number, gatherMs: number, signal?: AbortSignal): Promise<PassStats | null> {
    if (this.firstSyncUnfinished && now >= this.ctx.health.nextRetry && !this.ctx.guard.fenced) {
      // A first sync the standby cut short: the rest of the tree was never in the queue (at most a failed slice
      // is). When the target may be tried again, the whole pass resumes it, and covers what waits in the queue.
      for (const r of this.ctx.queue.takeDue(Number.POSITIVE_INFINITY, 0)) this.ctx.queue.settle(r.path, { kind: "dropped" }, now);
      return await this.runPass(signal);
    }
    const due = this.ctx.queue.takeDue(now, gatherMs);
    if (due.length === 0) return null;
    if (this.ctx.guard.fenced) {
      // Fenced: the changes stay pending, nothing is retried on this target (no connection) until unfence.
      for (const r of due) this.ctx.queue.settle(r.path, { kind: "failed", error: "not sent: the target is fenced" }, now, Number.POSITIVE_INFINITY);
      return null;
    }
    const s = await new Pass(this.ctx, signal).records(due);
    this.recordLag(Date.now());
    return s;
  }
}

/**
 * --once for one target: one full pass. Damage the opening checks did not reach that shows up during the pass:
 * the DB is kept aside and a second pass rebuilds it in the same run.
 */
export async function passOnce(config: Config, log: EngineLog, hooks: EngineHooks, signal?: AbortSignal): Promise<PassStats> {
  try {
    return await passWith(config, log, hooks, signal);
  } catch (e) {
    if (isDiskFull(e)) throw stateDiskFull(config.stateFile, e);
    if (!isCorruption(e)) throw e;
    const copy = StateStore.moveAside(config.stateFile);
    log.error(`the state DB turned out damaged (${(e as Error).message}); it is kept as ${copy} and a new one is rebuilt by a second pass`);
    return await passWith(config, log, hooks, signal);
  }
}

async function passWith(config: Config, log: EngineLog, hooks: EngineHooks, signal?: AbortSignal): Promise<PassStats> {
  const o = openTarget(config, log);
  try {
    log.info(`pass started: ${config.sourceDir} → ${describeTarget(config)}`);
    return await new TargetEngine(o, log, hooks, { daemon: false }).runPass(signal);
  } finally {
    await closeTarget(o);
  }
}

/**
 * Before any target's pass starts: every target's state DB must describe its own source and destination (each has
 * its own DB), so a mismatch stops the whole run with nothing done (exit 2), not after the other targets' passes.
 * Other troubles with a DB (damage, an upgrade) are left to openTarget.
 */
export function checkIdentities(configs: Config[]): void {
  for (const c of configs) {
    if (c.rebuildState) continue;
    const peek = StateStore.peekIdentity(c.stateFile);
    if (peek === null || peek.recordsNothing) continue;
    const want = identityOf(c);
    const check = compareIdentity(peek.recorded, want);
    if (check.kind !== "differs") continue;
    const m = identityMismatch(c.stateFile, check.had, want);
    throw new StateMismatchError(m.message, m.hint);
  }
}
