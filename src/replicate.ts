// The replicator: turns walked or watched files into bounded batches, sends them, records what the destination confirmed.
import { type BigIntStats, lstatSync } from "node:fs";
import { join, relative, sep } from "node:path";
import type { Config } from "./config/types.ts";
import { batchWouldOverflow, decide, sameVersion, type StatFacts, statFacts, versionKey } from "./engine/plan.ts";
import type { Logger } from "./log.ts";
import type { BackupVersion, ChangeRow, FileState, StateStore } from "./store/state.ts";
import { BackupStager, moveBackup } from "./track/backup.ts";
import { type ChangeRecord, describeChange } from "./track/change.ts";
import { type DeleteDeps, goneFromSource, missingFromSource, propagateDeletes } from "./propagate-deletes.ts";
import { RRD_NAME, readRrdProbe } from "./track/rrd-read.ts";
import { rrdDamage, type RrdProbe, type RrdSummary } from "./track/rrd.ts";
import { BackupVersions } from "./track/versions.ts";
import { type ChangeLog, formatEntry } from "./track/changelog.ts";
import type { BatchFile, BatchResult, SendOptions, Transport, TreeFilter } from "./transport/types.ts";
import { matchesExtensions, type WalkedFile, walkTree } from "./watch/walk.ts";

export interface PassStats {
  scanned: number;
  sent: number;
  bytes: number;
  changes: number;
  adopted: number;
  /** files the destination did not confirm: they stay pending (a failure) */
  pending: number;
  /** sent, but they changed while being sent: not recorded, the next pass (or the watcher) sends them again */
  changedDuringSend: number;
  /** vanished between the walk and the transfer: not a failure */
  vanished: number;
  /** problems that make the run a failure though replication went on (unreadable dirs, audit gaps) */
  problems: number;
  symlinksSkipped: number;
  /** RRDs held back at least once because they looked torn (mid-write) */
  held: number;
  /** files removed from the replica because they are gone from the source (`delete` on) */
  deleted: number;
  /** renames done as moves on the replica */
  renamed: number;
  seconds: number;
  /** the destination could not be reached or refused a whole batch */
  targetError: string | null;
}

/** How far a pass is: what the walk found to send so far, and how much of it the destination has. */
export interface Progress {
  scanned: number;
  /** files found to send (new or changed), and their bytes */
  plannedFiles: number;
  plannedBytes: number;
  doneFiles: number;
  doneBytes: number;
  /** the walk is still finding files: the totals may grow */
  walking: boolean;
}

export interface BatchReport {
  files: number;
  bytes: number;
  seconds: number;
  changes: ChangeRow[];
  /** paths the destination did not confirm (the watcher retries them with backoff) */
  pending: string[];
  /** paths that changed while being sent (the watcher sends them again, no backoff: nothing failed) */
  changed: string[];
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
  /** every few hundred files and during transfers: for a progress line on a terminal */
  onProgress?: (p: Progress) => void;
  /**
   * An RRD that looks damaged was held back: the watcher calls syncPaths for it again after `delayMs`.
   * Without this hook (--once) the pass itself waits and looks again.
   */
  onHold?: (rel: string, delayMs: number) => void;
}

interface Planned {
  rel: string;
  abs: string;
  facts: StatFacts;
  prev: FileState | null;
  /** an RRD that still looked damaged after every hold: shipped anyway, flagged in the change log */
  damage?: string;
  /** the header the hold check read, handed on to describe the change (one read per file, not two) */
  probe?: RrdProbe;
  /** first sync: the walk's inode change time (the whole-tree run's outcomes use it) */
  ctimeNs?: bigint;
  /** first sync: what was written ahead for it (the settle step keeps these objects if they still hold) */
  ahead?: { time: number; state: Omit<FileState, "seedMtime">; change: ChangeRow | null; entry: string | null };
}

type Row = { path: string; state: Omit<FileState, "seedMtime"> };

/**
 * A first sync (empty state) of a tree up to this many files goes as one whole-tree rsync run: rsync walks and
 * pipelines the tree itself, ~1.5× faster than the same files listed one by one. Bigger trees stream in batches.
 */
export const WHOLE_TREE_MAX_FILES = 200_000;

/** Up to this many state rows are bulk-loaded for a pass's comparisons (~150 bytes each). */
const BULK_KEYS_MAX = 300_000;

export function newStats(): PassStats {
  return {
    scanned: 0, sent: 0, bytes: 0, changes: 0, adopted: 0, pending: 0, changedDuringSend: 0, vanished: 0, problems: 0, symlinksSkipped: 0,
    held: 0, deleted: 0, renamed: 0, seconds: 0, targetError: null,
  };
}

/** rrdsync's own files must never be replicated, even when the admin keeps them inside the source tree. */
export function ownFiles(config: Config): Set<string> {
  const states = [config.stateFile, ...config.extraTargets.map((t) => t.stateFile)];
  return new Set(
    [...states.flatMap((s) => [s, `${s}-wal`, `${s}-shm`, `${s}-journal`, `${s}.lock`, `${s}.seed.json`]), config.changeTracking.backupDir,
      config.changeTracking.changeLogFile, config.logging.logFile].filter((p) => p !== ""),
  );
}

/** A change described while its transfer runs; written to the log and the backup only once it is confirmed. */
interface Analyzed {
  rec: ChangeRecord | null | Error;
  /** the staged backup copy of a text file, published by rename on confirmation */
  staged: string | null;
  /** the backup could not be staged (backup dir full or unwritable): the entry is still logged */
  backupError?: string;
}

export class Replicator {
  readonly own: Set<string>;
  private batch: Planned[] = [];
  private batchBytes = 0;
  private adopted: Row[] = [];
  private stats = newStats();
  private signal: AbortSignal | undefined;
  /** a full pass's bulk-loaded version keys (path → "size:mtime_ns:ino"), or null: look rows up one by one */
  private keys: Map<string, string> | null = null;
  private readonly stager: BackupStager;
  private readonly versions: BackupVersions;
  /** how often each damaged-looking RRD has been held back so far */
  private readonly holds = new Map<string, number>();
  /** renames found by the current pass, and the old paths they claimed */
  private moves: Array<{ from: string; to: Planned; prev: FileState }> = [];
  private readonly claimed = new Set<string>();
  /** files the destination has not confirmed yet, and since when it has been failing (for `status`) */
  private readonly pendingSet = new Set<string>();
  private downSince: number | null = null;
  /** the error of the ongoing outage: a different one is news again (an admin fixing one problem meets the next) */
  private lastError: string | null = null;
  private progress: Progress = { scanned: 0, plannedFiles: 0, plannedBytes: 0, doneFiles: 0, doneBytes: 0, walking: false };
  /** bytes the running transfer has sent so far (added to doneBytes when its batch is recorded) */
  private inFlightBytes = 0;
  /** held in this pass, to be looked at again (--once) */
  private held: string[] = [];

  constructor(private readonly d: ReplicatorDeps) {
    this.own = ownFiles(d.config);
    this.stager = new BackupStager(d.config.changeTracking.backupDir);
    const st = d.store.status();
    this.downSince = typeof st.downSince === "number" ? st.downSince : null;
    this.lastError = this.downSince === null ? null : ((st.lastError as { message?: string } | undefined)?.message ?? null);
    const ct = d.config.changeTracking;
    this.versions = new BackupVersions(ct.backupDir, d.store, { keepVersions: ct.keepVersions, maxBackupBytes: ct.maxBackupBytes });
  }

  private walk(): Iterator<WalkedFile> {
    const { config, log } = this.d;
    return walkTree(config.sourceDir, {
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
    })[Symbol.iterator]();
  }

  /** A full pass: every monitored file of the tree compared with the state; what changed is sent. */
  async runPass(signal?: AbortSignal): Promise<PassStats> {
    const started = performance.now();
    this.begin(signal);
    const it = this.walk();
    if (this.d.store.countFiles() === 0) await this.firstSync(it);
    this.keys = this.d.store.versionKeys(BULK_KEYS_MAX);
    const seen = this.d.config.delete ? new Set<string>() : null;
    for (let n = it.next(); !n.done; n = it.next()) {
      seen?.add(n.value.rel);
      await this.consider(n.value.rel, n.value.abs, n.value.stat);
      if (this.stats.scanned % 512 === 0) {
        this.reportProgress();
        await yieldToIO();
      }
    }
    this.progress.walking = false;
    await this.recheckHeld();
    await this.applyMoves();
    if (seen !== null) {
      await this.flush();
      await this.deletes(missingFromSource(this.deleteDeps(), seen));
    }
    return this.finish(started, true);
  }

  /**
   * Empty state: one whole-tree rsync run starts at once and walks the tree itself while we walk it too (to know
   * each file's version) and describe the changes. Past WHOLE_TREE_MAX_FILES our walk pauses until the run ends
   * and goes on in ordinary batches (the run has sent those files too, so they cost only a quick check).
   */
  private async firstSync(it: Iterator<WalkedFile>): Promise<void> {
    const files: Planned[] = [];
    let listed!: (files: BatchFile[]) => void;
    const listedP = new Promise<BatchFile[]>((resolve) => {
      listed = resolve;
    });
    const ahead = this.d.config.changeTracking.enabled;
    if (ahead) this.d.store.beginAhead();
    const analysis = new Analysis((f) => this.analyze(f), 2, ahead ? (f, a) => this.writeAhead(f, a) : undefined);
    try {
      await this.firstSyncRun(it, files, analysis, listed, listedP);
    } catch (e) {
      this.d.store.abortAhead();
      throw e;
    }
  }

  private async firstSyncRun(it: Iterator<WalkedFile>, files: Planned[], analysis: Analysis, listed: (files: BatchFile[]) => void, listedP: Promise<BatchFile[]>): Promise<void> {
    const transfer = this.send(listedP, { wholeTree: this.treeFilter() });
    this.d.log.debug("first sync: one whole-tree transfer");
    for (;;) {
      const n = it.next();
      if (n.done) break;
      const { rel, abs, stat } = n.value;
      this.stats.scanned++;
      const p: Planned = { rel, abs, facts: statFacts(stat), prev: null, ctimeNs: stat.ctimeNs };
      files.push(p);
      analysis.add(p);
      this.progress.plannedFiles++;
      this.progress.plannedBytes += p.facts.size;
      if (files.length >= WHOLE_TREE_MAX_FILES) break;
      if (files.length % 256 === 0) {
        if (files.length % 2048 === 0) this.reportProgress();
        await yieldToIO(); // let rsync's output be read while we walk
      }
    }
    this.d.log.debug(`first sync: ${files.length} files walked`);
    listed(files.map((f) => ({ path: f.rel, size: f.facts.size, walked: f.ctimeNs === undefined ? undefined : { ...f.facts, ctimeNs: f.ctimeNs } })));
    this.progress.walking = false;
    this.reportProgress();
    const t0 = performance.now();
    const result = await transfer;
    this.d.log.debug(`whole-tree transfer done; ${files.length} files walked, ${analysis.backlog} still to describe`);
    if (result.error) analysis.stop();
    await this.record(files, result, analysis, t0);
  }

  /** The watcher's entry: these paths had events; each is looked at again now (it may be gone or unchanged). */
  async syncPaths(rels: Iterable<string>, signal?: AbortSignal): Promise<PassStats> {
    const started = performance.now();
    this.begin(signal);
    const { config } = this.d;
    const gone: string[] = [];
    for (const rel of rels) {
      const abs = join(config.sourceDir, rel);
      if (this.own.has(abs) || !matchesExtensions(rel, config.monitoredExtensions)) continue;
      let st: BigIntStats;
      try {
        st = lstatSync(abs, { bigint: true });
      } catch {
        // gone since the event: nothing to send; deleted on the replica too when `delete` is on and it was synced
        if (config.delete && this.d.store.get(rel) !== null && goneFromSource(config.sourceDir, rel)) gone.push(rel);
        continue;
      }
      if (!st.isFile()) continue; // symlinks are never followed; directories are walked by the watcher
      await this.consider(rel, abs, st);
    }
    await this.recheckHeld();
    await this.applyMoves();
    if (gone.length > 0) {
      await this.flush();
      await this.deletes(gone.filter((p) => this.d.store.get(p) !== null)); // a renamed file's old name moved with it
    }
    return this.finish(started);
  }

  private deleteDeps(): DeleteDeps {
    const { config, store, transport, changeLog, log } = this.d;
    return { config, store, transport, changeLog, log, versions: this.versions, own: this.own };
  }

  private async deletes(paths: string[]): Promise<void> {
    if (paths.length === 0) return;
    if (this.stats.targetError !== null) {
      this.stats.problems += paths.length; // the destination is down: they stay tracked, the next pass deletes them
      return;
    }
    const r = await propagateDeletes(this.deleteDeps(), paths, this.signal);
    this.stats.deleted += r.deleted;
    this.stats.problems += r.failed;
    if (r.error && !r.refused) this.stats.targetError = r.error;
  }

  /** --once: held RRDs are looked at again after the hold delay, until each is whole or has used its holds. */
  private async recheckHeld(): Promise<void> {
    const { config } = this.d;
    while (this.held.length > 0 && !this.signal?.aborted) {
      await this.flush(); // what is ready goes now, not after the wait
      await Bun.sleep(config.rrdHold.delaySeconds * 1000);
      const again = this.held;
      this.held = [];
      for (const rel of again) {
        const abs = join(config.sourceDir, rel);
        let st: BigIntStats;
        try {
          st = lstatSync(abs, { bigint: true });
        } catch {
          this.holds.delete(rel);
          continue; // gone meanwhile
        }
        if (st.isFile()) {
          this.stats.scanned--; // the same file, looked at again
          await this.consider(rel, abs, st);
        }
      }
    }
  }

  /**
   * A damaged-looking RRD (mid-write, truncated, forged, time going backwards) must not overwrite the replica's
   * good copy: hold it back and look again later; after the configured holds it ships anyway, flagged.
   * Returns true when held.
   */
  private hold(p: Planned): boolean {
    const { config, log } = this.d;
    const { attempts, delaySeconds } = config.rrdHold;
    if (attempts === 0 || !RRD_NAME.test(p.rel)) return false;
    let damage: string | null;
    try {
      const prev = p.prev?.rrd ? (JSON.parse(p.prev.rrd) as RrdSummary) : null;
      p.probe = readRrdProbe(p.abs);
      damage = rrdDamage(p.probe, p.facts.size, prev);
    } catch {
      return false; // unreadable or gone: the transfer reports it
    }
    if (damage === null) {
      this.holds.delete(p.rel);
      return false;
    }
    const n = (this.holds.get(p.rel) ?? 0) + 1;
    if (n > attempts) {
      this.holds.delete(p.rel);
      p.damage = `${damage} (still so after ${attempts} hold${attempts === 1 ? "" : "s"})`;
      return false;
    }
    this.holds.set(p.rel, n);
    if (n === 1) this.stats.held++;
    log.warn(`${p.rel}: held back (${n}/${attempts}): ${damage}; looked at again in ${delaySeconds} s`);
    if (this.d.onHold) this.d.onHold(p.rel, delaySeconds * 1000);
    else this.held.push(p.rel);
    return true;
  }

  private treeFilter(): TreeFilter {
    const src = this.d.config.sourceDir;
    const exclude = [...this.own].filter((p) => p.startsWith(src + sep)).map((p) => relative(src, p));
    return { extensions: this.d.config.monitoredExtensions, exclude };
  }

  private begin(signal: AbortSignal | undefined): void {
    this.stats = newStats();
    this.signal = signal;
    this.progress = { scanned: 0, plannedFiles: 0, plannedBytes: 0, doneFiles: 0, doneBytes: 0, walking: true };
  }

  private reportProgress(): void {
    if (!this.d.onProgress) return;
    const p = this.progress;
    this.d.onProgress({ ...p, scanned: this.stats.scanned, doneBytes: p.doneBytes + this.inFlightBytes });
  }

  /** `full`: a whole pass (not a watcher's batch of paths), whose figures `status` shows as the last pass. */
  private async finish(started: number, full = false): Promise<PassStats> {
    this.keys = null;
    await this.flush();
    if (this.adopted.length > 0) this.commitAdopted();
    this.stats.seconds = (performance.now() - started) / 1000;
    const s = this.stats;
    try {
      this.d.store.setStatus({
        lastPass: !full ? undefined : { time: Date.now(), seconds: Number(s.seconds.toFixed(3)), scanned: s.scanned, sent: s.sent, pending: s.pending, problems: s.problems },
        pending: this.pendingSet.size,
        pendingSample: [...this.pendingSet].slice(0, 20),
      });
    } catch (e) {
      this.d.log.debug(`status not recorded: ${(e as Error).message}`);
    }
    return this.stats;
  }

  private async consider(rel: string, abs: string, stat: BigIntStats): Promise<void> {
    this.stats.scanned++;
    const facts = statFacts(stat);
    if (this.keys !== null && this.keys.get(rel) === versionKey(facts)) return; // unchanged: the common case
    const prev = this.d.store.get(rel);
    const decision = decide(facts, prev);
    if (decision === "unchanged") return;
    if (decision === "adopt") {
      this.adopted.push({ path: rel, state: { ...facts, sha256: null, rrd: null } });
      if (this.adopted.length >= 10_000) this.commitAdopted();
      return;
    }
    const p: Planned = { rel, abs, facts, prev };
    if (prev === null && this.isRename(p)) return;
    if (this.hold(p)) return;
    await this.enqueue(p);
  }

  /**
   * A new path with the inode, size and mtime of a tracked file that is gone from the source is that file
   * renamed (or its directory moved): it becomes a move on the replica instead of an upload.
   */
  private isRename(p: Planned): boolean {
    const { config, store } = this.d;
    for (const old of store.byInode(p.facts.ino)) {
      if (old.path === p.rel || this.claimed.has(old.path) || old.state.size !== p.facts.size || old.state.mtimeNs !== p.facts.mtimeNs) continue;
      if (!goneFromSource(config.sourceDir, old.path)) continue; // a hard link, not a rename
      this.claimed.add(old.path);
      this.moves.push({ from: old.path, to: p, prev: old.state });
      return true;
    }
    return false;
  }

  /** The renames found by this pass: moved on the replica; those that cannot be are sent, and the old name deleted. */
  private async applyMoves(): Promise<void> {
    const moves = this.moves;
    this.moves = [];
    this.claimed.clear();
    if (moves.length === 0) return;
    const { transport, log } = this.d;
    const r = this.stats.targetError === null ? await transport.moveFiles(moves.map((m) => ({ from: m.from, to: m.to.rel })), this.signal) : { moved: new Set<string>(), error: this.stats.targetError };
    const done = moves.filter((m) => r.moved.has(m.to.rel));
    const failed = moves.filter((m) => !r.moved.has(m.to.rel));
    if (done.length > 0) this.recordMoves(done);
    if (failed.length > 0) {
      log.info(`${failed.length} renames could not be done on the replica${r.error ? ` (${r.error})` : ""}: sending the files under their new names and deleting the old ones`);
      for (const m of failed) {
        if (!this.hold(m.to)) await this.enqueue(m.to);
      }
      await this.flush();
      await this.deletes(failed.map((m) => m.from).filter((p) => this.d.store.get(p) !== null && goneFromSource(this.d.config.sourceDir, p)));
    }
  }

  /** Entries first (at-least-once), then the backups follow, then one transaction moves the rows. */
  private recordMoves(done: Array<{ from: string; to: Planned; prev: FileState }>): void {
    const { log, config } = this.d;
    const time = new Date();
    const changes: ChangeRow[] = [];
    for (const m of done) {
      const details = `Renamed: ${JSON.stringify(m.from)} → ${JSON.stringify(m.to.rel)} (moved on the replica; nothing re-sent).`;
      this.d.changeLog.append(time, m.to.rel, details);
      changes.push({ time: time.getTime(), path: m.to.rel, kind: `${m.prev.rrd ? "rrd" : "file"} renamed`, summary: `renamed from ${m.from}`, details, added: 0, removed: 0 });
      log.info(`renamed on the replica: ${m.from} → ${m.to.rel}`);
    }
    try {
      this.d.changeLog.flush();
    } catch (e) {
      this.stats.problems += changes.length;
      log.error(`the change log cannot be written (${(e as Error).message}): audit gap for ${changes.length} renames`);
    }
    for (const m of done) {
      try {
        moveBackup(config.changeTracking.backupDir, m.from, m.to.rel);
      } catch (e) {
        log.warn(`${m.to.rel}: its backup could not follow the rename (${(e as Error).message}); its next change is logged without a diff`);
      }
    }
    this.d.store.commitRenames(done.map((m) => ({ from: m.from, to: m.to.rel })), changes);
    this.stats.renamed += done.length;
    this.stats.changes += changes.length;
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
      this.noteStatus([], files.map((f) => f.rel), this.stats.targetError, 0);
      this.d.onBatch?.({ files: 0, bytes: 0, seconds: 0, changes: [], pending: files.map((f) => f.rel), changed: [], error: this.stats.targetError });
      return;
    }
    // Describe each change (hash, diff, staged backup) while the transfer runs: the transfer is another process,
    // so the two overlap instead of adding up. Nothing is published until the destination confirmed the file.
    const t0 = performance.now();
    const analysis = new Analysis((f) => this.analyze(f));
    for (const f of files) analysis.add(f);
    const result = await this.send(files.map((f) => ({ path: f.rel, size: f.facts.size })), {});
    if (result.error) analysis.stop();
    await this.record(files, result, analysis, t0);
  }

  private async send(files: BatchFile[] | Promise<BatchFile[]>, opts: SendOptions): Promise<BatchResult> {
    const { transport, log } = this.d;
    log.debug(`sending via ${transport.description}${opts.wholeTree ? " (whole tree)" : ""}`);
    const t0 = performance.now();
    try {
      const onBytes = this.d.onProgress
        ? (n: number) => {
            this.inFlightBytes = n;
            this.reportProgress();
          }
        : undefined;
      const r = await transport.sendBatch(files, this.signal, { ...opts, onBytes });
      this.inFlightBytes = 0;
      log.debug(`transfer finished in ${((performance.now() - t0) / 1000).toFixed(2)} s${r.error ? `: ${r.error}` : ""}`);
      return r;
    } catch (e) {
      return { outcomes: new Map(), error: (e as Error).message, infoLines: [], bytesSent: 0 };
    }
  }

  /** Outcomes → state rows, change-log entries, published backups; one transaction for the batch. */
  private async record(files: Planned[], result: BatchResult, analysis: Analysis, t0: number): Promise<void> {
    const { transport, log } = this.d;
    const stats = this.stats;
    for (const line of result.infoLines) log.info(line);
    if (result.error) {
      stats.targetError = result.error;
      // Once per outage: while the target stays down, each retry's failure is only a debug line.
      // A transport that confirmed some files before it failed (SFTP renames each as it goes) keeps those.
      const unconfirmed = files.filter((f) => result.outcomes.get(f.rel)?.ok !== true).length;
      const line = `${transport.description}: ${result.error}; ${unconfirmed} files stay pending`;
      if (this.downSince === null || this.lastError !== result.error) log.error(line);
      else log.debug(line);
      this.lastError = result.error;
    }
    await analysis.drain();
    const rows: Row[] = [];
    const changes: ChangeRow[] = [];
    const versions: BackupVersion[] = [];
    const pending: string[] = [];
    const changed: string[] = [];
    const resend: Planned[] = [];
    let sentBytes = 0;
    for (const f of files) {
      const outcome = result.outcomes.get(f.rel);
      const a = analysis.take(f.rel);
      const confirmed = outcome?.ok === true && this.unchangedSince(f, stats, changed, outcome.seen);
      if (!confirmed) {
        if (a?.staged) this.stager.discard(a.staged);
        if (outcome?.ok) continue; // changed meanwhile or vanished: unchangedSince counted it
        if (outcome && !outcome.ok && outcome.vanished) {
          stats.vanished++;
          log.info(`${f.rel}: vanished before it was sent; skipped`);
          continue;
        }
        if (outcome && !outcome.ok && outcome.resend) {
          resend.push(f);
          continue;
        }
        stats.pending++;
        pending.push(f.rel);
        const reason = outcome && !outcome.ok ? outcome.reason : (result.error ?? "not confirmed by the destination");
        if (result.error) log.info(`pending: ${f.rel}`);
        else log.warn(`${f.rel}: not synced, stays pending: ${reason}`);
        continue;
      }
      // The first sync's whole-tree run took a file that looks torn: it is not recorded, but goes again through
      // the holds, so the replica ends with a whole copy or a flagged one, never silently a torn one.
      if (a && !(a.rec instanceof Error) && a.rec?.damage && !f.damage && RRD_NAME.test(f.rel) && this.d.config.rrdHold.attempts > 0) {
        if (a.staged) this.stager.discard(a.staged);
        if (!this.hold(f)) resend.push(f);
        continue;
      }
      stats.sent++;
      sentBytes += f.facts.size;
      const id = this.publish(f, a ?? (await this.analyze(f)), changes, versions);
      const ahead = f.ahead?.state;
      rows.push({ path: f.rel, state: ahead && ahead.sha256 === id.sha256 && ahead.rrd === id.rrd ? ahead : { ...f.facts, ...id } });
    }
    // The audit trail first (at-least-once), then one transaction: every confirmed file of the batch advances
    // with its change rows, or none does.
    try {
      this.d.changeLog.flush();
    } catch (e) {
      // Disk full, or not writable: replication goes on (the replica has these files), the gap is an error.
      this.stats.problems += changes.length;
      const names = changes.slice(0, 20).map((c) => JSON.stringify(c.path)).join(", ");
      log.error(`the change log cannot be written (${(e as Error).message}): audit gap for ${changes.length} entries: ${names}${changes.length > 20 ? ", …" : ""} (they are in the state DB: rrdsync log)`);
    }
    if (this.d.store.writingAhead) this.d.store.settleAhead(rows, changes, versions);
    else this.d.store.commit(rows, changes, versions);
    // Only a superseded copy can exceed keep_versions or max_backup_bytes (a first sync supersedes none).
    if (versions.some((v) => v.stored !== v.path)) this.pruneVersions(versions);
    this.noteStatus(rows.map((r) => r.path), pending, result.error ?? null, sentBytes);
    stats.bytes += sentBytes;
    stats.changes += changes.length;
    this.progress.doneFiles += rows.length;
    this.progress.doneBytes += sentBytes;
    this.reportProgress();
    this.d.onBatch?.({ files: rows.length, bytes: sentBytes, seconds: (performance.now() - t0) / 1000, changes, pending, changed, error: result.error ?? null });
    if (resend.length > 0) {
      log.debug(`${resend.length} files resent in list batches (the whole-tree run could not vouch for them)`);
      for (const f of resend) await this.enqueue(f);
      await this.flush();
    }
  }

  private async enqueue(f: Planned): Promise<void> {
    const limits = { maxFiles: this.d.config.batchMaxFiles, maxBytes: this.d.config.batchMaxBytes };
    if (batchWouldOverflow({ files: this.batch.length, bytes: this.batchBytes }, f.facts.size, limits)) await this.flush();
    this.batch.push(f);
    this.batchBytes += f.facts.size;
    if (!f.damage) {
      this.progress.plannedFiles++;
      this.progress.plannedBytes += f.facts.size;
    }
  }

  /** The destination has the version rsync read; if the file moved on meanwhile, that version is not ours to record. */
  private unchangedSince(f: Planned, stats: PassStats, changed: string[], seen?: StatFacts): boolean {
    let now: StatFacts;
    try {
      now = seen ?? statFacts(lstatSync(f.abs, { bigint: true }));
    } catch {
      stats.vanished++;
      return false;
    }
    if (sameVersion(now, f.facts)) return true;
    stats.changedDuringSend++;
    changed.push(f.rel);
    this.d.log.info(`${f.rel}: changed while it was being sent; not recorded, it goes again with the next pass`);
    return false;
  }

  private async analyze(f: Planned): Promise<Analyzed> {
    if (!this.d.config.changeTracking.enabled) return { rec: null, staged: null };
    const previous = f.prev && f.prev.size >= 0 ? { size: f.prev.size, sha256: f.prev.sha256, rrd: f.prev.rrd } : null;
    try {
      const probe = f.probe;
      f.probe = undefined;
      const rec = await describeChange({ srcPath: f.abs, relPath: f.rel, backupDir: this.d.config.changeTracking.backupDir, previous, size: f.facts.size, probe });
      if (rec?.fileKind !== "text") return { rec, staged: null };
      try {
        return { rec, staged: this.stager.stage(f.abs) };
      } catch (e) {
        return { rec, staged: null, backupError: (e as Error).message };
      }
    } catch (e) {
      return { rec: e as Error, staged: null };
    }
  }

  /** What `rrdsync status` shows: last good batch, last error, since when the target is down, what is pending. */
  private noteStatus(confirmed: string[], pending: string[], error: string | null, bytes: number): void {
    for (const p of confirmed) this.pendingSet.delete(p);
    for (const p of pending) this.pendingSet.add(p);
    const now = Date.now();
    const s: Record<string, unknown> = { pending: this.pendingSet.size, pendingSample: [...this.pendingSet].slice(0, 20) };
    if (error) {
      s.lastError = { time: now, message: error };
      if (this.downSince === null) this.downSince = now;
    } else if (confirmed.length > 0) {
      s.lastBatch = { time: now, files: confirmed.length, bytes };
      this.downSince = null;
    }
    s.downSince = this.downSince;
    try {
      this.d.store.setStatus(s);
    } catch (e) {
      this.d.log.debug(`status not recorded: ${(e as Error).message}`);
    }
  }

  /** First sync: the row and change a confirmation would record, written ahead into the open transaction. */
  private writeAhead(f: Planned, a: Analyzed): void {
    const rec = a.rec;
    if (rec instanceof Error || rec?.damage) return; // recorded (or held) after the transfer, as usual
    const time = Date.now();
    const change = rec ? changeRowFor(f, rec, time) : null;
    f.ahead = { time, state: { ...f.facts, sha256: rec?.sha256 ?? null, rrd: rec?.rrd ?? null }, change, entry: change ? formatEntry(new Date(time), f.rel, change.details) : null };
    if (!this.d.store.writingAhead) return;
    try {
      this.d.store.writeAhead(f.rel, f.ahead.state, change);
    } catch (e) {
      // Writing ahead is only a speed-up: without it the batch commits the ordinary way after the transfer.
      this.d.store.abortAhead();
      this.d.log.warn(`state DB: writing ahead failed (${(e as Error).message}); the first sync commits after the transfer instead`);
    }
  }

  /** Retention after the batch is committed: a failure here loses no data, it only keeps old copies longer. */
  private pruneVersions(published: BackupVersion[]): void {
    try {
      const dropped = this.versions.prune(new Set(published.filter((v) => v.stored === v.path).map((v) => v.path)));
      if (dropped.length > 0) this.d.log.debug(`retention: ${dropped.length} old backup versions removed`);
    } catch (e) {
      this.d.log.warn(`backup retention failed (old versions are kept): ${(e as Error).message}`);
    }
  }

  /**
   * Audit one confirmed file: change-log entry first, then the backup, so a crash in between repeats an entry
   * (at-least-once) rather than losing it. An audit failure never undoes replication; it is an error to report.
   */
  private publish(f: Planned, a: Analyzed, changes: ChangeRow[], versions: BackupVersion[]): { sha256: string | null; rrd: string | null } {
    const { log } = this.d;
    const rec = a.rec;
    if (f.damage) {
      this.stats.problems++;
      log.error(`${f.rel}: shipped although it looks damaged: ${f.damage}`);
    }
    try {
      if (rec instanceof Error) throw rec;
      if (rec === null) return { sha256: f.prev?.sha256 ?? null, rrd: f.prev?.rrd ?? null };
      // Written ahead (first sync): the same row objects and the entry text made during the transfer.
      const ahead = f.ahead && !f.damage ? f.ahead : null;
      const time = new Date(ahead?.time ?? Date.now());
      const change = ahead?.change ?? changeRowFor(f, rec, time.getTime());
      if (ahead?.entry) this.d.changeLog.appendFormatted(ahead.entry);
      else this.d.changeLog.append(time, f.rel, change.details);
      if (a.staged) {
        const old = this.versions.supersede(f.rel);
        if (old) versions.push(old);
        this.stager.publish(a.staged, f.rel);
        versions.push({ path: f.rel, syncedAt: time.getTime(), size: rec.size, stored: f.rel });
      }
      changes.push(change);
      if (a.backupError) {
        this.stats.problems++;
        log.error(`${f.rel}: synced and logged, but its backup could not be written (audit gap: its next change cannot be diffed): ${a.backupError}`);
      }
      log.debug(`recorded ${rec.kind} ${f.rel}: ${rec.summary}`);
      return { sha256: rec.sha256, rrd: rec.rrd ?? null };
    } catch (e) {
      if (a.staged) this.stager.discard(a.staged);
      this.stats.problems++;
      log.error(`${f.rel}: synced, but its change could not be recorded (audit gap): ${(e as Error).message}`);
      return { sha256: null, rrd: null };
    }
  }
}

/** The change row (and change-log body) of a recorded file: a file shipped despite damage says so first. */
function changeRowFor(f: Planned, rec: ChangeRecord, time: number): ChangeRow {
  const details = f.damage ? `ERROR: shipped although it looks damaged: ${f.damage}\n${rec.details}` : rec.details;
  return {
    time, path: f.rel, kind: `${rec.fileKind} ${rec.kind}`, summary: f.damage ? `${rec.summary}, DAMAGED` : rec.summary,
    details, added: rec.added, removed: rec.removed,
  };
}

/** A small work queue: describes files on up to `limit` async workers while a transfer runs. */
class Analysis {
  /** a queue read from `head` on (Array.shift on 20,000 entries is quadratic) */
  private queue: Planned[] = [];
  private head = 0;
  private results = new Map<string, Analyzed>();
  private workers = new Set<Promise<void>>();
  private stopped = false;

  constructor(
    private readonly fn: (f: Planned) => Promise<Analyzed>,
    private readonly limit = 2,
    private readonly onDone?: (f: Planned, a: Analyzed) => void,
  ) {}

  add(f: Planned): void {
    if (this.stopped) return;
    this.queue.push(f);
    if (this.workers.size < this.limit) {
      const w: Promise<void> = this.work().finally(() => this.workers.delete(w));
      this.workers.add(w);
    }
  }

  private async work(): Promise<void> {
    while (this.head < this.queue.length && !this.stopped) {
      const f = this.queue[this.head++] as Planned;
      const a = await this.fn(f);
      this.results.set(f.rel, a);
      if (!this.stopped) this.onDone?.(f, a);
      await yieldToIO(); // the describes are mostly synchronous reads: let the transfer's output through
    }
  }

  get backlog(): number {
    return this.queue.length - this.head;
  }

  /** The transfer failed: nothing will be published, so stop describing. */
  stop(): void {
    this.stopped = true;
    this.queue = [];
    this.head = 0;
  }

  async drain(): Promise<void> {
    while (this.workers.size > 0) await Promise.all(this.workers);
  }

  take(rel: string): Analyzed | undefined {
    const a = this.results.get(rel);
    this.results.delete(rel);
    return a;
  }
}

const yieldToIO = () => new Promise<void>((resolve) => setImmediate(resolve));
