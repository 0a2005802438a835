// The send stage of a pass: planned files are cut into bounded batches; each batch goes to the transport while its
// changes are described beside it, then the confirm step's verdicts are acted on: confirmed files are recorded
// through the one audit commit, the rest settle in the pending queue. Files a whole-tree run could not vouch for
// come back here (the pass's loop sends them again; confirming never starts a send).
import { lstatSync } from "node:fs";
import { newAuditBatch } from "./audit.ts";
import { confirmBatch } from "./confirm.ts";
import type { PassState, TargetContext } from "./context.ts";
import { Describer, describeFile } from "./describe.ts";
import { checkHold } from "./holds.ts";
import { batchWouldOverflow, type Planned, statFacts } from "./plan.ts";
import type { BatchFile, BatchResult, FileOutcome, SendOptions } from "../transport/types.ts";
import { ROOT_REPLACED } from "./context.ts";
import { fsPath } from "../names.ts";
import { statPath } from "../source/look.ts";
import { CONFLICT_WORDS } from "./policy/conflict.ts";

function failedBatch(files: Planned[], error: string): BatchResult {
  return { outcomes: new Map(files.map((f) => [f.rel, { ok: false as const, reason: error }])), error, infoLines: [], bytesSent: 0 };
}

export class Sender {
  private batch: Planned[] = [];
  private batchBytes = 0;
  /** sent by a whole-tree run that could not vouch for them: sent again in list batches */
  private resend: Planned[] = [];

  constructor(private readonly t: TargetContext, private readonly p: PassState) {}

  /** Adds a file to the current batch; a full batch goes first. */
  async add(f: Planned): Promise<void> {
    const limits = { maxFiles: this.t.config.batchMaxFiles, maxBytes: this.t.config.batchMaxBytes };
    if (batchWouldOverflow({ files: this.batch.length, bytes: this.batchBytes }, f.facts.size, limits)) await this.sendCurrent();
    this.batch.push(f);
    this.batchBytes += f.facts.size;
    if (!f.damage) {
      this.p.progress.plannedFiles++;
      this.p.progress.plannedBytes += f.facts.size;
    }
  }

  /** Sends everything added so far, and what has to go again, until nothing is left. */
  async flush(): Promise<void> {
    while (this.batch.length > 0 || this.resend.length > 0) {
      if (this.batch.length > 0) {
        await this.sendCurrent();
        continue;
      }
      const again = this.resend;
      this.resend = [];
      this.t.log.debug(`${again.length} files resent in list batches (the whole-tree run could not vouch for them)`);
      for (const f of again) await this.add(f);
    }
  }

  private async sendCurrent(): Promise<void> {
    const files = this.batch;
    this.batch = [];
    this.batchBytes = 0;
    if (files.length === 0) return;
    const { stats } = this.p;
    if (this.t.guard.fenced) return this.fenced(files, new Map());
    if (stats.targetError !== null || this.p.stopping) {
      // The destination is down (or we are stopping): the rest stays pending without a doomed connection per batch.
      const why = stats.targetError ?? "stopping";
      // one line, not one per file: a river of updates while the standby is down would flood the log
      this.t.log.info(`pending: ${files.length} file${files.length === 1 ? "" : "s"} not sent (${why})`);
      for (const f of files) this.t.log.debug(`pending: ${f.rel} (not sent: ${why})`);
      const now = Date.now();
      for (const f of files) this.t.queue.settle(f.rel, { kind: "failed", error: why }, now, this.t.health.nextRetry);
      stats.pending += files.length;
      this.notePending();
      this.t.hooks.onBatch?.({ files: 0, bytes: 0, seconds: 0, changes: [], routine: [], pending: files.map((f) => f.rel), changed: [], error: stats.targetError });
      return;
    }
    const t0 = performance.now();
    // Described while the replica is asked (the check waits on the standby, describing reads here) and while sent.
    const describer = this.describer();
    for (const f of files) describer.add(f);
    const cleared = await this.check(files, t0, describer);
    if (cleared.length > 0) {
      // What may land: known before the transfer starts, so a kill -9 before the commit leaves no false conflict.
      this.t.store.replicaVersions.note(cleared.map((f) => ({ path: f.rel, size: f.facts.size, mtimeNs: f.facts.mtimeNs })), "sent");
      const result = await this.transfer(cleared.map((f) => ({ path: f.rel, size: f.facts.size, sparse: f.sparse })), {});
      if (result.error) describer.stop();
      await this.record(cleared, result, describer, t0);
    }
    // The files the check held back were described for nothing: a large one's staged copy goes.
    if (cleared.length < files.length) {
      const going = new Set(cleared.map((f) => f.rel));
      describer.stop();
      await describer.drain();
      for (const f of files) if (!going.has(f.rel)) this.t.audit.discard(describer.take(f.rel));
    }
  }

  /**
   * The replica's state of the batch's files, judged before anything is written (engine/guard.ts): the files that
   * may go. The others are settled here: the whole batch when the replica cannot be asked (a failed batch) or the
   * target is fenced; a conflict's file in the overwrite mode when its copy could not be kept aside, and in the
   * keep mode (the standby's version recorded as delivered).
   */
  private async check(files: Planned[], t0: number, describer: Describer): Promise<Planned[]> {
    const { guard, store } = this.t;
    const also = store.replicaVersions.of(files.map((f) => f.rel));
    const items = files.map((f) => ({ rel: f.rel, op: "write" as const, known: guard.known(f, also.get(f.rel), f.replaceable === true || f.repair !== undefined), abs: f.abs }));
    const r = await guard.inspect(items, this.p.signal);
    if (r.kind === "error") {
      describer.stop();
      await this.record(files, failedBatch(files, r.error), describer, t0);
      return [];
    }
    if (r.kind === "fenced") {
      this.fenced(files, new Map(r.conflicts.map((c) => [c.item.rel, `conflict: ${CONFLICT_WORDS[c.why]}`])));
      return [];
    }
    if (r.conflicts.length === 0) return files;
    const conflicting = new Set(r.conflicts.map((c) => c.item.rel));
    if (guard.mode.kind === "keep") {
      // The standby's version is the truth for these: recorded as delivered (ours is the source's version, so the
      // file is not pending), and the standby's version noted, so the next check accepts it.
      const kept = files.filter((f) => conflicting.has(f.rel));
      store.commit(kept.map((f) => ({ path: f.rel, state: { ...f.facts, sha256: f.prev?.sha256 ?? null, rrd: f.prev?.rrd ?? null } })), []);
      guard.accept(r.conflicts);
      const now = Date.now();
      for (const f of kept) this.t.queue.settle(f.rel, { kind: "delivered" }, now);
      return files.filter((f) => !conflicting.has(f.rel));
    }
    const k = await guard.keepCopies(r.conflicts, this.p.signal);
    if (k.error !== null) {
      describer.stop();
      await this.record(files, failedBatch(files, k.error), describer, t0);
      return [];
    }
    const notKept = files.filter((f) => conflicting.has(f.rel) && !k.kept.has(f.rel));
    if (notKept.length > 0) {
      const now = Date.now();
      for (const f of notKept) this.t.queue.settle(f.rel, { kind: "failed", error: "its copy on the standby could not be kept aside: not overwritten" }, now, this.t.health.nextRetry);
      this.p.stats.pending += notKept.length;
    }
    return files.filter((f) => !conflicting.has(f.rel) || k.kept.has(f.rel));
  }

  /** The target is fenced: the files stay pending (conflicts with their reason), and nothing retries them. */
  private fenced(files: Planned[], reasons: Map<string, string>): void {
    const { stats } = this.p;
    stats.fenced = true;
    const now = Date.now();
    for (const f of files) this.t.queue.settle(f.rel, { kind: "failed", error: reasons.get(f.rel) ?? "not sent: the target is fenced" }, now, Number.POSITIVE_INFINITY);
    stats.pending += files.length;
    this.notePending();
    this.t.hooks.onBatch?.({ files: 0, bytes: 0, seconds: 0, changes: [], routine: [], pending: files.map((f) => f.rel), changed: [], error: "the target is fenced" });
  }

  describer(): Describer {
    const { config, stager, copies } = this.t;
    const deps = { tracking: config.changeTracking, stager, copies };
    return new Describer((f) => describeFile(f, deps), 2);
  }

  /** One transport call; a transport that throws fails the batch like one that reports an error. */
  async transfer(files: BatchFile[] | Promise<BatchFile[]>, opts: SendOptions): Promise<BatchResult> {
    const { transport, log } = this.t;
    log.debug(`sending via ${transport.description}${opts.wholeTree ? " (whole tree)" : ""}`);
    const t0 = performance.now();
    try {
      const onBytes = this.t.hooks.onProgress
        ? (n: number) => {
            this.p.inFlightBytes = n;
            this.p.reportProgress();
          }
        : undefined;
      const r = await transport.sendBatch(files, this.p.signal, { ...opts, onBytes });
      this.p.inFlightBytes = 0;
      log.debug(`transfer finished in ${((performance.now() - t0) / 1000).toFixed(2)} s${r.error ? `: ${r.error}` : ""}`);
      if (this.p.rootReplaced(this.t.config.sourceDir)) {
        // What the transport read may be another tree's (rsync works inside the directory it entered): none of it is
        // confirmed; each file goes again, looked at under the root that is there now.
        const outcomes = new Map<string, FileOutcome>();
        for (const path of r.outcomes.keys()) outcomes.set(path, { ok: false, reason: ROOT_REPLACED });
        return { ...r, outcomes };
      }
      return r;
    } catch (e) {
      return { outcomes: new Map(), error: (e as Error).message, infoLines: [], bytesSent: 0 };
    }
  }

  /** Outcomes → verdicts → the audit commit for what was confirmed, the queue for the rest. */
  async record(files: Planned[], result: BatchResult, describer: Pick<Describer, "drain" | "take">, t0: number): Promise<void> {
    const { log, queue, health, audit, config } = this.t;
    const { stats } = this.p;
    for (const line of result.infoLines) log.info(line);
    const now = Date.now();
    const nowNs = BigInt(now + 1) * 1_000_000n; // the file system's clock may run a little ahead of ours
    if (result.error) {
      stats.targetError = result.error;
      // A transport that confirmed some files before it failed (SFTP renames each as it goes) keeps those.
      const unconfirmed = files.filter((f) => result.outcomes.get(f.rel)?.ok !== true).length;
      health.failed(this.t.transport.description, result.error, unconfirmed, now, this.p.stopping);
    }
    await describer.drain();
    const verdicts = confirmBatch({
      files, result, described: (rel) => describer.take(rel), holdsOn: config.rrdHold.attempts > 0,
      statNow: (f) => {
        const fast = statPath(f.abs);
        if (fast !== undefined) return fast.kind === "file" ? statFacts(fast.stat) : null;
        try {
          return statFacts(lstatSync(fsPath(f.abs), { bigint: true }));
        } catch {
          return null;
        }
      },
    });
    const b = newAuditBatch();
    const pending: Array<{ rel: string; reason: string }> = [];
    const changed: string[] = [];
    const landed: Array<{ path: string; from: string; to: string }> = [];
    const dropped: string[] = [];
    const held: Array<{ rel: string; delayMs: number }> = [];
    let sentBytes = 0;
    let repaired = 0;
    for (const v of verdicts) {
      const { f } = v;
      if (v.kind !== "record") audit.discard(v.d);
      switch (v.kind) {
        case "record":
          stats.sent++;
          if (f.repair) repaired++;
          sentBytes += f.facts.size;
          audit.publish(f, v.d, b);
          break;
        case "pending":
          stats.pending++;
          pending.push({ rel: f.rel, reason: v.reason });
          // Not confirmed, but the transport may have written it, in any version the file had since it was
          // planned (it can change before rsync reads it): up to now, each is one we may have put there.
          landed.push({ path: f.rel, from: f.facts.mtimeNs, to: nowNs.toString() });
          if (result.error) log.info(`pending: ${f.rel}`);
          else log.warn(`${f.rel}: not synced, stays pending: ${v.reason}`);
          break;
        case "vanished":
          stats.vanished++;
          if (v.before) log.info(`${f.rel}: vanished before it was sent; skipped`);
          dropped.push(f.rel);
          break;
        case "changed": {
          stats.changedDuringSend++;
          changed.push(f.rel);
          const now = lstatSync(fsPath(f.abs), { bigint: true, throwIfNoEntry: false });
          landed.push({ path: f.rel, from: f.facts.mtimeNs, to: (now?.mtimeNs ?? BigInt(Date.now()) * 1_000_000n).toString() });
          log.debug(`${f.rel}: changed while it was being sent; not recorded, it goes again with the next pass`);
          break;
        }
        case "resend":
          this.resend.push(f);
          break;
        case "rehold": {
          // The first sync's whole-tree run took a file that looks torn: it is not recorded, but goes through the
          // holds, so the replica ends with a whole copy or a flagged one, never silently a torn one.
          const h = this.hold(f);
          if (h !== null) held.push({ rel: f.rel, delayMs: h });
          else this.resend.push(f);
          break;
        }
      }
    }
    const gaps = audit.commitSent(b);
    stats.problems += gaps;
    stats.repaired += repaired;
    const delivered = b.rows.length + b.routine.length;
    this.t.counters.add({
      filesTransferred: delivered, bytesTransferred: sentBytes, bytesSent: result.bytesSent, filesRepaired: repaired,
      errors: (result.error ? 1 : 0) + pending.length + gaps,
    });
    // Only now, with the state committed, do the queue's records of the delivered files go.
    for (const r of b.rows) queue.settle(r.path, { kind: "delivered" }, now);
    for (const r of b.routine) queue.settle(r.path, { kind: "delivered" }, now);
    for (const rel of dropped) queue.settle(rel, { kind: "dropped" }, now);
    for (const rel of changed) queue.settle(rel, { kind: "changed" }, now);
    // Changed while it was sent: the replica holds a version between the planned one and the one there now.
    if (landed.length > 0) this.t.guard.noteLanded(landed);
    for (const h of held) queue.settle(h.rel, { kind: "held", delayMs: h.delayMs }, now);
    if (!result.error) {
      health.succeeded(delivered, sentBytes, now);
      if (pending.length > 0) health.filesFailed(now);
    }
    for (const x of pending) queue.settle(x.rel, { kind: "failed", error: x.reason }, now, health.nextRetry);
    this.notePending();
    stats.bytes += sentBytes;
    stats.changes += b.changes.length;
    stats.routine += b.routine.length;
    this.p.progress.doneFiles += delivered;
    this.p.progress.doneBytes += sentBytes;
    this.p.reportProgress();
    const seconds = (performance.now() - t0) / 1000;
    // One INFO line per batch (the per-file lines are DEBUG, and the live view's on a terminal): a tree updated
    // day and night never floods the log or journald.
    if (delivered > 0 || changed.length > 0) {
      log.info(`batch: ${delivered} files, ${sentBytes} bytes (${result.bytesSent} sent), ${seconds.toFixed(2)} s, ${b.changes.length} entries, ${b.routine.length} routine RRD updates rolled up${changed.length > 0 ? `, ${changed.length} changed while sent (they go again)` : ""}`);
    }
    this.t.hooks.onBatch?.({
      files: delivered, bytes: sentBytes, seconds, changes: b.changes, routine: b.routine.map((r) => r.path),
      pending: pending.map((x) => x.rel), changed, error: result.error ?? null,
    });
  }

  /**
   * The hold check for one file, with the count its pending record keeps: the delay (ms) when it is held back
   * now, or null when it goes (whole, or shipped flagged after every hold).
   */
  hold(f: Planned): number | null {
    const { config, queue, log } = this.t;
    const { attempts, delaySeconds } = config.rrdHold;
    const v = checkHold(f, queue.holdsOf(f.rel), attempts);
    if (v.kind !== "hold") {
      queue.clearHolds(f.rel);
      return null;
    }
    if (v.n === 1) this.p.stats.held++;
    log.warn(`${f.rel}: held back (${v.n}/${attempts}): ${v.damage}; looked at again in ${delaySeconds} s`);
    return delaySeconds * 1000;
  }

  /** `status` shows the files the destination has refused, wherever they wait. */
  notePending(): void {
    if (!this.t.reportsPending) return;
    const failed = this.t.queue.failed();
    this.t.health.pending(failed.length, failed.slice(0, 20).map((r) => ({ path: r.path, since: r.first })));
  }
}
