// The first sync through rsync: ONE whole-tree run, rsync walking and pipelining the tree itself, which is the
// fastest way (measured on 1,200,000 files: the same tree in 26 runs of one-level directories took 2.25× as
// long, in 25 runs of recursive node subtrees 1.65×: each run's start, file list and drain cost more than its
// work saves). Our walk goes beside it in bounded pieces: each file looked at, read once, described and written
// ahead into the run's one open transaction, or, when the run cannot vouch for it (changed around its start,
// damaged, not described), put on a resend list in a temporary table. Nothing per file stays in memory. The
// transaction commits when rsync exited 0 (or 23/24 with every failed file named: those go on the resend list);
// then the resend list goes in ordinary list batches, whose outcomes are exact. Anything else rolls it all back:
// nothing unconfirmed is recorded, and the next run starts over, rsync's quick check skipping what arrived.
import { type DirLooker, lookAt } from "../source/look.ts";
import { ownPathsInside } from "../source/own-files.ts";
import { runVouches } from "../transport/types.ts";
import { type PassState, ROOT_REPLACED, type TargetContext } from "./context.ts";
import { entriesFor, FirstSyncDescriber, type FirstSyncRecord, logEntries, lookDir, type SliceFile, summarize, walkPieces } from "./first-sync.ts";
import { statFacts } from "./plan.ts";
import type { Sender } from "./send.ts";

/** The resend list is read back in pieces of this many paths. */
const RESEND_CHUNK = 10_000;

export async function firstSyncInOneRun(t: TargetContext, p: PassState, sender: Sender, resume: FirstSyncRecord | null): Promise<boolean> {
  const { store, config, log, health, audit, queue } = t;
  const t0 = performance.now();
  // Taken before rsync starts: a file is vouched for only if it last changed 2 s before this (a stricter rule than
  // rsync's own start time would give).
  const startedNs = BigInt(Date.now()) * 1_000_000n;
  const changesFrom = store.beginSlice();
  store.resetResend();
  let committed = false;
  try {
    const transfer = sender.transfer([], { wholeTree: { extensions: config.monitoredExtensions, exclude: ownPathsInside(config.sourceDir, t.own) } });
    let looked = 0;
    const sample: string[] = []; // the first files looked at: named by status if the run fails
    let written = 0;
    let bytes = 0;
    const describer = new FirstSyncDescriber(t, (f, d) => {
      if (d?.staged) audit.discard(d); // a large copy staged for nothing: it is described again when sent
      store.markResend(f.path);
    });
    // Each file looked at, read and described in one go through its directory's fd; one changed around the run's
    // start cannot be vouched for: it goes again in a list batch (and is described then).
    const each = async (looker: DirLooker, name: string, f: SliceFile) => {
      looked++;
      if (sample.length < 20) sample.push(f.path);
      if (runVouches(f.walked.ctimeNs, startedNs)) await describer.file(looker, name, f);
      else store.markResend(f.path);
    };
    for (const piece of walkPieces(t, p, resume?.after ?? null)) {
      if (p.stopping) break;
      if (piece.last) p.progress.walking = false;
      for (const dir of piece.dirs) await lookDir(t, p, dir, null, each);
      log.debug(`first sync: ${looked} files looked at, ${describer.written} written ahead`);
    }
    written = describer.written;
    bytes = describer.bytes;
    p.progress.walking = false;
    p.reportProgress();
    const result = await transfer;
    const tree = result.tree;
    const replaced = p.rootReplaced(config.sourceDir);
    if (result.error || tree === undefined || replaced || (tree.code !== 0 && tree.unattributed.length > 0)) {
      store.abortSlice();
      const why = result.error ?? (replaced ? ROOT_REPLACED : `rsync exited ${tree?.code ?? "?"} with errors that name no file (${tree?.unattributed.slice(0, 3).join("; ") ?? ""})`);
      p.stats.pending += looked; // none of them is recorded
      t.counters.add({ errors: 1 });
      health.firstSyncUnsent(looked, sample);
      if (result.error) {
        p.stats.targetError = result.error;
        health.failed(t.transport.description, result.error, looked, Date.now(), p.stopping);
      } else {
        p.stats.problems++;
        log.error(`the first sync's rsync run could not be vouched for: ${why}; nothing is recorded, the next run starts it again (what arrived costs only rsync's quick check)`);
      }
      log.info(`first sync interrupted (${why}): the next run starts it again`);
      t.hooks.onBatch?.({ files: 0, bytes: 0, seconds: 0, changes: [], routine: [], pending: [], changed: [], error: result.error ?? why });
      return false;
    }
    // Exit 23/24 with every failure named: those files lose what was written ahead for them and go again.
    for (const path of tree.failed) {
      store.unwriteAhead(path, changesFrom, 0);
      store.markResend(path);
    }
    for (const path of tree.vanished) store.unwriteAhead(path, changesFrom, 0);
    // Left by --update: newer on the standby than ours. Not recorded; a conflict (fenced below, after the commit).
    const newer = tree.newer ?? [];
    for (const path of newer) store.unwriteAhead(path, changesFrom, 0);
    const lost = tree.failed.length + tree.vanished.length + newer.length;
    for (const line of result.infoLines) log.info(line);
    const entries = entriesFor(t, written, true);
    const problems = entries === "every" ? logEntries(t, store.changesSince(changesFrom)) : 0;
    store.commitSlice();
    committed = true;
    health.firstSyncUnsent(0, []);
    const now = Date.now();
    const delivered = Math.max(0, written - lost);
    p.stats.sent += delivered;
    p.stats.bytes += bytes;
    p.stats.changes += config.changeTracking.enabled ? delivered : 0;
    p.stats.problems += problems;
    p.progress.doneFiles += delivered;
    p.progress.doneBytes += bytes;
    p.reportProgress();
    health.succeeded(delivered, bytes, now);
    t.counters.add({ filesTransferred: delivered, bytesTransferred: bytes, bytesSent: result.bytesSent, errors: problems });
    t.hooks.onBatch?.({ files: delivered, bytes, seconds: (performance.now() - t0) / 1000, changes: [], routine: [], pending: [], changed: [], error: null });
    if (newer.length > 0) {
      await t.guard.newerFound(newer, p.signal);
      p.stats.pending += newer.length;
      p.stats.fenced ||= t.guard.fenced !== null;
      const now = Date.now();
      for (const path of newer) queue.settle(path, { kind: "failed", error: "conflict: newer on the standby than ours" }, now, Number.POSITIVE_INFINITY);
    }
    await resendList(t, p, sender);
    if (p.stats.targetError !== null) return false;
    summarize(t, entries, changesFrom); // also ends a sliced one (SFTP) this run finished
    return true;
  } finally {
    if (!committed) store.abortSlice();
  }
}

/** The files the run could not vouch for, sent again in list batches (read back in pieces). */
async function resendList(t: TargetContext, p: PassState, sender: Sender): Promise<void> {
  const { config, queue, log } = t;
  let n = 0;
  for (let after = 0; ;) {
    const chunk = t.store.resendChunk(after, RESEND_CHUNK);
    if (chunk.length === 0) break;
    after = chunk[chunk.length - 1]?.id as number;
    for (const { path } of chunk) {
      const look = lookAt(config.sourceDir, path);
      if (look.kind !== "file") continue;
      n++;
      const f = { rel: path, abs: `${config.sourceDir}/${path}`, facts: statFacts(look.stat), prev: null, replaceable: true };
      const delayMs = sender.hold(f);
      if (delayMs === null) await sender.add(f);
      else queue.settle(path, { kind: "held", delayMs }, Date.now());
    }
    await sender.flush();
  }
  if (n > 0) log.debug(`first sync: ${n} files the run could not vouch for were sent again in list batches`);
}
