// The replicator: turns walked or watched files into bounded batches, sends them, records what the destination confirmed.
import { type BigIntStats, lstatSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "./config/types.ts";
import { batchWouldOverflow, decide, sameVersion, type StatFacts, statFacts } from "./engine/plan.ts";
import type { Logger } from "./log.ts";
import type { ChangeRow, FileState, StateStore } from "./store/state.ts";
import { writeBackup } from "./track/backup.ts";
import { describeChange } from "./track/change.ts";
import type { ChangeLog } from "./track/changelog.ts";
import type { BatchResult, Transport } from "./transport/types.ts";
import { matchesExtensions, walkTree } from "./watch/walk.ts";

export interface PassStats {
  scanned: number;
  sent: number;
  bytes: number;
  changes: number;
  adopted: number;
  /** files that stay pending (not confirmed, or changed while being sent) */
  pending: number;
  /** vanished between the walk and the transfer: not a failure */
  vanished: number;
  /** problems that make the run a failure though replication went on (unreadable dirs, audit gaps) */
  problems: number;
  symlinksSkipped: number;
  seconds: number;
  /** the destination could not be reached or refused a whole batch */
  targetError: string | null;
}

export interface BatchReport {
  files: number;
  bytes: number;
  seconds: number;
  changes: ChangeRow[];
  /** paths that stay pending after this batch (the watcher queues them again) */
  pending: string[];
  error: string | null;
}

export interface ReplicatorDeps {
  config: Config;
  store: StateStore;
  transport: Transport;
  changeLog: ChangeLog;
  log: Logger;
  /** after each batch is committed: the live view, and the watcher's retry queue */
  onBatch?: (b: BatchReport) => void;
}

interface Planned {
  rel: string;
  abs: string;
  facts: StatFacts;
  prev: FileState | null;
}

type Row = { path: string; state: Omit<FileState, "seedMtime"> };

export function newStats(): PassStats {
  return {
    scanned: 0, sent: 0, bytes: 0, changes: 0, adopted: 0, pending: 0, vanished: 0, problems: 0, symlinksSkipped: 0,
    seconds: 0, targetError: null,
  };
}

/** rrdsync's own files must never be replicated, even when the admin keeps them inside the source tree. */
export function ownFiles(config: Config): Set<string> {
  const s = config.stateFile;
  return new Set(
    [s, `${s}-wal`, `${s}-shm`, `${s}-journal`, `${s}.lock`, `${s}.seed.json`, config.changeTracking.backupDir,
      config.changeTracking.changeLogFile, config.logging.logFile].filter((p) => p !== ""),
  );
}

export class Replicator {
  readonly own: Set<string>;
  private batch: Planned[] = [];
  private batchBytes = 0;
  private adopted: Row[] = [];
  private stats = newStats();
  private signal: AbortSignal | undefined;

  constructor(private readonly d: ReplicatorDeps) {
    this.own = ownFiles(d.config);
  }

  /** A full pass: every monitored file of the tree compared with the state; what changed is sent. */
  async runPass(signal?: AbortSignal): Promise<PassStats> {
    const started = performance.now();
    this.begin(signal);
    const { config, log } = this.d;
    for (const f of walkTree(config.sourceDir, {
      extensions: config.monitoredExtensions,
      exclude: this.own,
      onProblem: (rel, reason) => {
        this.stats.problems++;
        log.error(`${rel}: ${reason}`);
      },
      onSymlink: (rel) => {
        this.stats.symlinksSkipped++;
        log.debug(`${rel}: symlink, not followed`);
      },
    })) {
      await this.consider(f.rel, f.abs, f.stat);
    }
    return this.finish(started);
  }

  /** The watcher's entry: these paths had events; each is looked at again now (it may be gone or unchanged). */
  async syncPaths(rels: Iterable<string>, signal?: AbortSignal): Promise<PassStats> {
    const started = performance.now();
    this.begin(signal);
    const { config } = this.d;
    for (const rel of rels) {
      const abs = join(config.sourceDir, rel);
      if (this.own.has(abs) || !matchesExtensions(rel, config.monitoredExtensions)) continue;
      let st: BigIntStats;
      try {
        st = lstatSync(abs, { bigint: true });
      } catch {
        continue; // gone since the event: nothing to send (deletes are not propagated)
      }
      if (!st.isFile()) continue; // symlinks are never followed; directories are walked by the watcher
      await this.consider(rel, abs, st);
    }
    return this.finish(started);
  }

  private begin(signal: AbortSignal | undefined): void {
    this.stats = newStats();
    this.signal = signal;
  }

  private async finish(started: number): Promise<PassStats> {
    await this.flush();
    if (this.adopted.length > 0) this.commitAdopted();
    this.stats.seconds = (performance.now() - started) / 1000;
    return this.stats;
  }

  private async consider(rel: string, abs: string, stat: BigIntStats): Promise<void> {
    this.stats.scanned++;
    const facts = statFacts(stat);
    const prev = this.d.store.get(rel);
    const decision = decide(facts, prev);
    if (decision === "unchanged") return;
    if (decision === "adopt") {
      this.adopted.push({ path: rel, state: { ...facts, sha256: null } });
      if (this.adopted.length >= 10_000) this.commitAdopted();
      return;
    }
    const limits = { maxFiles: this.d.config.batchMaxFiles, maxBytes: this.d.config.batchMaxBytes };
    if (batchWouldOverflow({ files: this.batch.length, bytes: this.batchBytes }, facts.size, limits)) await this.flush();
    this.batch.push({ rel, abs, facts, prev });
    this.batchBytes += facts.size;
  }

  private commitAdopted(): void {
    this.d.store.commit(this.adopted, []);
    this.stats.adopted += this.adopted.length;
    this.adopted = [];
  }

  private async flush(): Promise<void> {
    if (this.batch.length === 0) return;
    const files = this.batch;
    this.batch = [];
    this.batchBytes = 0;
    if (this.stats.targetError !== null || this.signal?.aborted) {
      // The destination is down (or we are stopping): the rest stays pending without a doomed connection per batch.
      for (const f of files) this.d.log.info(`pending: ${f.rel} (not sent: ${this.stats.targetError ?? "stopping"})`);
      this.stats.pending += files.length;
      this.d.onBatch?.({ files: 0, bytes: 0, seconds: 0, changes: [], pending: files.map((f) => f.rel), error: this.stats.targetError });
      return;
    }
    await this.sendAndRecord(files);
  }

  private async sendAndRecord(files: Planned[]): Promise<void> {
    const { transport, log } = this.d;
    const stats = this.stats;
    const t0 = performance.now();
    log.debug(`sending a batch of ${files.length} files via ${transport.description}`);
    let result: BatchResult;
    try {
      result = await transport.sendBatch(files.map((f) => ({ path: f.rel, size: f.facts.size })), this.signal);
    } catch (e) {
      result = { outcomes: new Map(), error: (e as Error).message, infoLines: [], bytesSent: 0 };
    }
    for (const line of result.infoLines) log.info(line);
    if (result.error) {
      stats.targetError = result.error;
      log.error(`${transport.description}: ${result.error}; ${files.length} files stay pending`);
    }

    const rows: Row[] = [];
    const changes: ChangeRow[] = [];
    const pending: string[] = [];
    let sentBytes = 0;
    await forEachLimited(files, 4, async (f) => {
      const outcome = result.outcomes.get(f.rel);
      if (!outcome || !outcome.ok) {
        if (outcome && !outcome.ok && outcome.vanished) {
          stats.vanished++;
          log.info(`${f.rel}: vanished before it was sent; skipped`);
          return;
        }
        stats.pending++;
        pending.push(f.rel);
        const reason = outcome && !outcome.ok ? outcome.reason : (result.error ?? "not confirmed by the destination");
        if (result.error) log.info(`pending: ${f.rel}`);
        else log.warn(`${f.rel}: not synced, stays pending: ${reason}`);
        return;
      }
      // The destination has the version rsync read; if the file moved on meanwhile, that version is not ours to record.
      let now: StatFacts;
      try {
        now = statFacts(lstatSync(f.abs, { bigint: true }));
      } catch {
        stats.vanished++;
        return;
      }
      if (!sameVersion(now, f.facts)) {
        stats.pending++;
        pending.push(f.rel);
        log.info(`${f.rel}: changed while it was being sent; stays pending`);
        return;
      }
      stats.sent++;
      sentBytes += f.facts.size;
      const sha = await this.recordChange(f, changes);
      rows.push({ path: f.rel, state: { ...f.facts, sha256: sha } });
    });
    // One transaction: every confirmed file of the batch advances with its change rows, or none does.
    this.d.store.commit(rows, changes);
    stats.bytes += sentBytes;
    stats.changes += changes.length;
    this.d.onBatch?.({ files: rows.length, bytes: sentBytes, seconds: (performance.now() - t0) / 1000, changes, pending, error: result.error ?? null });
  }

  /**
   * Audit one confirmed file: change-log entry first, then the backup, so a crash in between repeats an entry
   * (at-least-once) rather than losing it. An audit failure never undoes replication; it is an error to report.
   */
  private async recordChange(f: Planned, changes: ChangeRow[]): Promise<string | null> {
    const { config, log } = this.d;
    const backupDir = config.changeTracking.backupDir;
    const previous = f.prev && f.prev.size >= 0 ? { size: f.prev.size, sha256: f.prev.sha256 } : null;
    try {
      const rec = await describeChange({ srcPath: f.abs, relPath: f.rel, backupDir, previous });
      if (rec === null) return f.prev?.sha256 ?? null;
      const time = new Date();
      this.d.changeLog.append(time, f.rel, rec.details);
      if (rec.fileKind === "text") await writeBackup(f.abs, backupDir, f.rel);
      changes.push({ time: time.getTime(), path: f.rel, kind: `${rec.fileKind} ${rec.kind}`, summary: rec.summary });
      log.info(`recorded ${rec.kind} ${f.rel}: ${rec.summary}`);
      return rec.sha256;
    } catch (e) {
      this.stats.problems++;
      log.error(`${f.rel}: synced, but its change could not be recorded (audit gap): ${(e as Error).message}`);
      return null;
    }
  }
}

/** Bounded parallelism: overlaps the reads and hashes of small files without opening thousands at once. */
async function forEachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
