// A pass: short-lived, one per run of the engine over a target. A full pass walks the source and compares every
// monitored file with the state; a queue pass looks again at the files the queue says are due (the daemon's
// events, retries, holds). Both check each file (plan, rename, hold), hand what must go to the send stage, then
// do the renames and deletes they found, and leave every file they did not deliver pending in the queue.
import { join } from "node:path";
import { fsPath } from "../names.ts";
import { type Look, lookAt } from "../source/look.ts";
import { lstatSync } from "node:fs";
import { matchesExtensions } from "../source/walk.ts";
import { joinPath } from "../store/schema.ts";
import type { StateRow } from "../store/state.ts";
import { PassState, type TargetContext } from "./context.ts";
import { propagateDeletes, reallyGone } from "./deletes.ts";
import { yieldToIO } from "./describe.ts";
import { firstSyncState } from "./first-sync.ts";
import { firstSyncInOneRun } from "./first-sync-run.ts";
import { firstSyncInSlices } from "./first-sync-slices.ts";
import { splitScan } from "./scan-split.ts";
import type { PendingFile } from "./pending.ts";
import { decide, type Planned, statFacts } from "./plan.ts";
import { type Move, moveOnReplica, RenameFinder } from "./renames.ts";
import { Sender } from "./send.ts";
import type { PassStats } from "./types.ts";

/** A tree of at least this many directories is walked on two threads by a full pass. */
const PARALLEL_MIN_DIRS = 2_000;
/** Files the seed script already synced are recorded in transactions of this many rows. */
const ADOPT_CHUNK = 10_000;
/** unfence compares the replica with the state in pieces of this many files (one round trip each). */
const SETTLE_CHUNK = 5_000;


export class Pass {
  private readonly p: PassState;
  private readonly sender: Sender;
  private readonly renames: RenameFinder;
  private readonly started = performance.now();
  private adopted: StateRow[] = [];
  /** tracked files found gone (deleted on the replica at the end of the pass, when allowed) */
  private gone: string[] = [];

  constructor(private readonly t: TargetContext, signal?: AbortSignal) {
    this.p = new PassState(t.hooks, signal, t.config.sourceDir);
    this.sender = new Sender(t, this.p);
    this.renames = new RenameFinder(t.store, t.config.sourceDir);
  }

  /**
   * A full pass warms the target's connection at its first changed file (its login and the first batch's rsync
   * and replica check then start while the walk goes on), never earlier: a pass with nothing to send connects nowhere.
   */
  private warmAtFirstChange = false;

  /** A full pass: every monitored file of the tree compared with the state; what changed is sent. */
  async full(): Promise<PassStats> {
    const { config, log } = this.t;
    this.warmAtFirstChange = true;
    if (lookAt(config.sourceDir, "").kind !== "dir") {
      // Gone since the config was read (unmounted, moved away): every file would look deleted. Do nothing.
      this.p.stats.problems++;
      log.error(`source_dir ${config.sourceDir} is missing (unmounted or moved away?): nothing replicated, nothing deleted`);
      return this.finish(true);
    }
    if (this.t.guard.fenced) {
      // The standby was written to (or promoted): nothing is compared or sent until `rrdsync unfence`. The
      // status keeps what the run that fenced it recorded (its pending files).
      this.t.guard.tell();
      await this.t.guard.recordOnStandby(this.p.signal); // a fence the standby does not hold yet
      this.p.stats.fenced = true;
      this.p.stats.seconds = (performance.now() - this.started) / 1000;
      return this.p.stats;
    }
    const first = firstSyncState(this.t);
    if (first === null) {
      await this.compareTree();
    } else {
      // Before anything of a first sync: is the standby promoted? (One round trip.) A standby that cannot be asked
      // is left to the transfer to report, with every file it could not send; its --update never writes over a
      // copy newer than ours.
      if ((await this.t.guard.inspect([], this.p.signal)).kind === "fenced") {
        this.p.stats.fenced = true;
        return this.finish(false);
      }
      // A first sync killed before its end: the slices it committed are compared as usual, the rest goes in slices.
      const resume = first === "new" ? null : first;
      if (resume?.after != null) await this.compareTree(resume.after);
      await this.sender.flush();
      // rsync walks the tree itself: one run; a transport that needs a list: one transfer per slice
      const run = (await this.t.transport.walksTree?.()) ? firstSyncInOneRun : firstSyncInSlices;
      if (!(await run(this.t, this.p, this.sender, resume))) this.p.stats.firstSyncUnfinished = true;
    }
    this.p.progress.walking = false;
    await this.waitForHolds();
    await this.applyMoves();
    return this.finish(true);
  }

  /**
   * The walk compared with the state, directory by directory (one query per directory: memory does not grow with
   * the tree). `until`: only the part of the tree up to that directory. With deletes on, tracked files the walk
   * did not see are looked at (in listed directories by name, elsewhere through the directories it marked).
   */
  private async compareTree(until?: string): Promise<void> {
    const { config, store, log } = this.t;
    const stats = this.p.stats;
    const deletes = config.delete && until === undefined;
    if (deletes) store.resetSeenDirs();
    const unseen: string[] = [];
    const scan = splitScan(config.sourceDir, {
      extensions: config.monitoredExtensions,
      exclude: [...this.t.own],
      until,
      trackedIn: (dir) => store.trackedIn(dir),
      trackedChildren: (dir, limit) => store.trackedChildren(dir, limit),
      // a second thread for a big tree (not for a resumed first sync's part: that walk stops in the middle)
      parallel: until === undefined && store.dirsEstimate() >= PARALLEL_MIN_DIRS,
      stateFile: store.path,
      allDirs: deletes,
      debug: (m) => log.debug(m),
    });
    let sinceYield = 0;
    for await (const item of scan) {
      switch (item.kind) {
        case "dir":
          stats.scanned += item.unchanged;
          sinceYield += item.unchanged;
          if (deletes) {
            store.markSeenDir(item.rel);
            for (const name of item.unseen) unseen.push(joinPath(item.rel, name));
          }
          break;
        case "file": {
          sinceYield++;
          const st = lstatSync(fsPath(item.abs), { bigint: true, throwIfNoEntry: false });
          if (st?.isFile()) await this.consider(item.rel, item.abs, st);
          break;
        }
        case "problem":
          stats.problems++;
          log.error(`${item.rel}: ${item.reason}`);
          break;
        case "symlink":
          stats.symlinksSkipped++;
          log.debug(`${item.rel}: symlink, not followed`);
          break;
      }
      if (sinceYield >= 2048) {
        sinceYield = 0;
        this.p.reportProgress();
        await yieldToIO();
      }
    }
    if (deletes) {
      this.gone.push(...reallyGone(this.t, unseen));
      this.gone.push(...reallyGone(this.t, store.pathsInUnseenDirs()));
    }
  }

  /** The queue's due records: each path is looked at again now (it may be gone, unchanged, or moved). */
  async records(due: PendingFile[]): Promise<PassStats> {
    const { config, queue } = this.t;
    const now = Date.now();
    for (const r of due) {
      if (this.t.own.has(join(config.sourceDir, r.path)) || !matchesExtensions(r.path, config.monitoredExtensions)) {
        queue.settle(r.path, { kind: "dropped" }, now);
        continue;
      }
      await this.lookAgain(r.path, lookAt(config.sourceDir, r.path), r.from);
    }
    this.p.progress.walking = false;
    await this.waitForHolds();
    await this.applyMoves();
    return this.finish(false);
  }

  /**
   * verify --repair: each file whose replica copy was found wrong goes again as it is now (no hold: this version
   * was confirmed before), through the ordinary send stage, and is recorded as repaired.
   */
  async repair(files: Array<{ path: string; why: string }>): Promise<PassStats> {
    const { config, store } = this.t;
    for (const r of files) {
      const look = lookAt(config.sourceDir, r.path);
      if (look.kind !== "file") continue; // gone since the check: nothing left to repair
      this.p.stats.scanned++;
      await this.sender.add({ rel: r.path, abs: join(config.sourceDir, r.path), facts: statFacts(look.stat), prev: store.get(r.path), repair: r.why });
    }
    this.p.progress.walking = false;
    return this.finish(false);
  }

  /**
   * unfence: every tracked file's replica copy compared with what rrdsync delivered, in pieces of SETTLE_CHUNK
   * (one round trip each), and each one the standby changed settled in the guard's mode: sent again (overwrite:
   * its copy kept aside first) or taken as it is (keep). A file gone from the source is left to the deletes (when
   * `delete` is on), else its standby copy is taken as it is.
   */
  async settleReplica(): Promise<PassStats> {
    const { store, config, guard } = this.t;
    let chunk: Array<{ rel: string; prev: StateRow["state"] & { seedMtime: null } }> = [];
    const settle = async () => {
      const rows = chunk;
      chunk = [];
      const also = store.replicaVersions.of(rows.map((r) => r.rel));
      const looks = rows.map((r) => lookAt(config.sourceDir, r.rel));
      const items = rows.map((r, i) => {
        const look = looks[i] as Look;
        return look.kind === "file"
          ? { rel: r.rel, op: "write" as const, known: guard.known({ prev: r.prev, facts: statFacts(look.stat) }, also.get(r.rel), false), abs: join(config.sourceDir, r.rel) }
          : { rel: r.rel, op: "delete" as const, known: guard.knownRow(r.prev, also.get(r.rel), null), abs: null };
      });
      const r = await guard.inspect(items, this.p.signal);
      if (r.kind === "error") {
        this.p.stats.targetError = r.error;
        return;
      }
      if (r.kind === "fenced") {
        this.p.stats.fenced = true;
        return;
      }
      const gone = [];
      const at = new Map(rows.map((x, i) => [x.rel, i]));
      for (const c of r.conflicts) {
        this.p.stats.scanned++;
        const look = looks[at.get(c.item.rel) as number] as Look;
        if (look.kind === "file") await this.sender.add({ rel: c.item.rel, abs: join(config.sourceDir, c.item.rel), facts: statFacts(look.stat), prev: store.get(c.item.rel) });
        else if (config.delete && look.kind === "gone") this.gone.push(c.item.rel);
        else gone.push(c);
      }
      guard.accept(gone);
    };
    for (const { rel, key } of store.trackedKeys()) {
      if (this.p.stopping || this.p.stats.targetError !== null || this.p.stats.fenced) break;
      const [size, mtimeNs, ino] = key.split(":") as [string, string, string];
      chunk.push({ rel, prev: { size: Number(size), mtimeNs, ino, sha256: null, rrd: null, seedMtime: null } });
      if (chunk.length >= SETTLE_CHUNK) await settle();
    }
    if (chunk.length > 0 && this.p.stats.targetError === null && !this.p.stats.fenced) await settle();
    this.p.progress.walking = false;
    return this.finish(false);
  }

  /** One path looked at again: a file is checked (as a move first if the watcher saw it renamed), a gone one deleted. */
  private async lookAgain(rel: string, look: Look, from?: string): Promise<void> {
    const { config, store, queue } = this.t;
    const now = Date.now();
    if (look.kind === "file") {
      if (from !== undefined) {
        const f: Planned = { rel, abs: join(config.sourceDir, rel), facts: statFacts(look.stat), prev: store.get(rel) };
        if (this.renames.byEvent(from, f)) {
          this.p.stats.scanned++;
          return;
        }
        // Not a move the replica can do (changed since, or never synced): its content goes, the old name is deleted.
        if (store.get(from) !== null && lookAt(config.sourceDir, from).kind === "gone") this.gone.push(from);
      }
      await this.consider(rel, join(config.sourceDir, rel), look.stat);
      return;
    }
    // Gone since the event: nothing to send. Deleted on the replica too when `delete` is on and it was synced.
    if (look.kind === "gone" && config.delete && store.get(rel) !== null) this.gone.push(rel);
    else queue.settle(rel, { kind: "dropped" }, now);
  }

  /**
   * The check stage: unchanged, adopted from the seed, a rename, held back, or sent (the walk already passed over
   * the files it found unchanged).
   */
  private async consider(rel: string, abs: string, stat: Parameters<typeof statFacts>[0] & { blocks?: bigint; birthtimeNs?: bigint }): Promise<void> {
    const { store, queue } = this.t;
    this.p.stats.scanned++;
    const facts = statFacts(stat);
    const prev = store.get(rel);
    const decision = decide(facts, prev);
    if (decision === "unchanged") {
      queue.settle(rel, { kind: "dropped" }, Date.now());
      return;
    }
    if (decision === "adopt") {
      this.adopted.push({ path: rel, state: { ...facts, sha256: null, rrd: null } });
      if (this.adopted.length >= ADOPT_CHUNK) this.commitAdopted();
      queue.settle(rel, { kind: "dropped" }, Date.now());
      return;
    }
    const f: Planned = { rel, abs, facts, prev, sparse: stat.blocks === undefined ? undefined : stat.blocks * 512n < stat.size };
    if (this.warmAtFirstChange) {
      this.warmAtFirstChange = false;
      if (this.t.guard.fenced === null) void this.t.transport.warm?.(this.p.signal);
    }
    if (prev === null && (await this.renames.byInode(f, stat.birthtimeNs ?? 0n))) return;
    await this.holdOrSend(f);
  }

  private async holdOrSend(f: Planned): Promise<void> {
    const delayMs = this.sender.hold(f);
    if (delayMs === null) await this.sender.add(f);
    else this.t.queue.settle(f.rel, { kind: "held", delayMs }, Date.now());
  }

  /** --once: held RRDs are looked at again after the hold delay, until each is whole or has used its holds. */
  private async waitForHolds(): Promise<void> {
    const { queue, config } = this.t;
    if (!this.t.waitForHolds) return;
    for (let next = queue.nextDue("held"); next !== null && !this.p.stopping; next = queue.nextDue("held")) {
      await this.sender.flush(); // what is ready goes now, not after the wait
      const wait = next - Date.now();
      if (wait > 0) await Bun.sleep(wait);
      for (const r of queue.takeDue(Date.now(), 0, "held")) {
        const look = lookAt(config.sourceDir, r.path);
        if (look.kind !== "file") {
          queue.settle(r.path, { kind: "dropped" }, Date.now());
          continue;
        }
        this.p.stats.scanned--; // the same file, looked at again
        await this.consider(r.path, join(config.sourceDir, r.path), look.stat);
      }
    }
  }

  /** The renames found: moved on the replica; those that cannot be are sent, and the old name deleted. */
  private async applyMoves(): Promise<void> {
    const all = this.renames.take();
    if (all.length === 0) return;
    const { transport, log, audit, queue, config, store } = this.t;
    const stats = this.p.stats;
    const checked = stats.targetError === null ? await this.checkMoves(all) : { moves: [], fallback: all, error: stats.targetError };
    if (checked === null) return;
    const { moves, fallback } = checked;
    const r = moves.length > 0 ? await moveOnReplica(transport, moves, this.p.signal) : { done: [], failed: [], error: checked.error };
    r.failed.push(...fallback);
    if (r.done.length > 0) {
      const gaps = audit.commitMoves(r.done.map((m) => ({ from: m.from, to: m.to.rel, rrd: m.prev.rrd !== null })));
      stats.problems += gaps;
      this.t.counters.add({ filesRenamed: r.done.length, errors: gaps });
      stats.renamed += r.done.length;
      stats.changes += r.done.length;
      const now = Date.now();
      for (const m of r.done) queue.settle(m.to.rel, { kind: "delivered" }, now);
    }
    if (r.failed.length > 0) {
      log.info(`${r.failed.length} renames could not be done on the replica${r.error ? ` (${r.error})` : ""}: sending the files under their new names and deleting the old ones`);
      for (const m of r.failed) await this.holdOrSend(m.to);
      // Renames are done whatever `delete` says: the old name goes, its content lives on under the new one.
      for (const m of r.failed) if (store.get(m.from) !== null && lookAt(config.sourceDir, m.from).kind === "gone") this.gone.push(m.from);
    }
  }

  /**
   * The replica checked before the moves (engine/guard.ts): the old name must hold the file rrdsync delivered, the
   * new one nothing, or ours. null: the target is fenced (the moves wait with the rest). In the overwrite and keep
   * modes a conflicting move is not done as a move: its file is sent and its old name deleted, each checked again.
   */
  private async checkMoves(moves: Move[]): Promise<{ moves: Move[]; fallback: Move[]; error: string | null } | null> {
    const { guard, store, queue } = this.t;
    const now = Date.now();
    if (guard.fenced) {
      this.p.stats.fenced = true;
      for (const m of moves) queue.settle(m.to.rel, { kind: "failed", error: "not moved: the target is fenced" }, now, Number.POSITIVE_INFINITY);
      return null;
    }
    const also = store.replicaVersions.of(moves.flatMap((m) => [m.from, m.to.rel]));
    const items = moves.flatMap((m) => [
      { rel: m.from, op: "move-from" as const, known: guard.knownRow(m.prev, also.get(m.from), null), abs: null },
      { rel: m.to.rel, op: "move-to" as const, known: guard.knownRow(store.get(m.to.rel), also.get(m.to.rel), { size: m.to.facts.size, mtimeNs: BigInt(m.to.facts.mtimeNs) }), abs: m.to.abs },
    ]);
    const r = await guard.inspect(items, this.p.signal);
    if (r.kind === "error") return { moves: [], fallback: moves, error: r.error };
    if (r.kind === "fenced") {
      this.p.stats.fenced = true;
      for (const m of moves) queue.settle(m.to.rel, { kind: "failed", error: "not moved: the target is fenced" }, now, Number.POSITIVE_INFINITY);
      return null;
    }
    const conflicting = new Set(r.conflicts.map((c) => c.item.rel));
    const go = moves.filter((m) => !conflicting.has(m.from) && !conflicting.has(m.to.rel));
    // What may land at the new names: known before the moves, so a kill -9 before the commit is no conflict later.
    store.replicaVersions.note(go.map((m) => ({ path: m.to.rel, size: m.prev.size, mtimeNs: m.prev.mtimeNs })), "moved");
    return { moves: go, fallback: moves.filter((m) => conflicting.has(m.from) || conflicting.has(m.to.rel)), error: null };
  }

  /** Tracked files gone from the source: deleted on the replica behind the guard, or left pending. */
  private async deletes(): Promise<void> {
    const paths = [...new Set(this.gone)].filter((p) => this.t.store.get(p) !== null); // a renamed file's old name moved with it
    this.gone = [];
    if (paths.length === 0) return;
    const { queue, health, transport } = this.t;
    const stats = this.p.stats;
    const now = Date.now();
    if (this.t.guard.fenced) {
      stats.fenced = true;
      for (const rel of paths) queue.settle(rel, { kind: "failed", error: "not deleted: the target is fenced" }, now, Number.POSITIVE_INFINITY);
      return;
    }
    if (stats.targetError !== null) {
      stats.problems += paths.length; // the destination is down: they stay tracked and wait for the retry
      for (const rel of paths) queue.settle(rel, { kind: "failed", error: stats.targetError }, now, health.nextRetry);
      return;
    }
    const r = await propagateDeletes(this.t, paths, this.p.signal);
    this.t.counters.add({ filesDeleted: r.deleted, errors: r.problems + (r.error ? 1 : 0) });
    stats.deleted += r.deleted;
    for (const rel of r.done) queue.settle(rel, { kind: "delivered" }, now);
    const left = paths.filter((rel) => !r.done.has(rel));
    if (r.fenced) {
      stats.fenced = true;
      for (const rel of left) queue.settle(rel, { kind: "failed", error: r.conflicts.get(rel) ?? "not deleted: the target is fenced" }, now, Number.POSITIVE_INFINITY);
      return;
    }
    stats.problems += r.failed + r.problems;
    if (r.error && !r.refused) {
      stats.targetError = r.error;
      health.failed(transport.description, r.error, r.failed, now, this.p.stopping);
      for (const rel of left) queue.settle(rel, { kind: "failed", error: r.error }, now, health.nextRetry);
    } else {
      // refused by the guard: the next full pass (or rescan) finds them again, judged anew
      for (const rel of left) queue.settle(rel, { kind: "dropped" }, now);
    }
  }

  private commitAdopted(): void {
    this.t.store.commit(this.adopted, []);
    this.p.stats.adopted += this.adopted.length;
    this.adopted = [];
  }

  /** `full`: a whole pass (not a queue pass), whose figures `status` shows as the last pass. */
  private async finish(full: boolean): Promise<PassStats> {
    await this.sender.flush();
    await this.deletes();
    if (this.adopted.length > 0) this.commitAdopted();
    const s = this.p.stats;
    // The roll-up's summary and stale RRDs, and a step of the history's retention: beside the batches, small.
    // --once (which waits for its holds) looks for stale RRDs at the end of each run and prunes what is overdue.
    const now = Date.now();
    s.problems += this.t.ledger?.tick(now, this.t.waitForHolds) ?? 0;
    if (this.t.waitForHolds) this.t.history.drain(now);
    else this.t.history.step(now);
    s.seconds = (performance.now() - this.started) / 1000;
    this.t.counters.flush();
    if (full) this.t.health.lastPass({ time: Date.now(), seconds: Number(s.seconds.toFixed(3)), scanned: s.scanned, sent: s.sent, pending: s.pending, problems: s.problems });
    this.sender.notePending();
    return s;
  }
}
