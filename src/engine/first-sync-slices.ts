// The first sync through a transport that needs a file list (SFTP): one transfer per slice of whole directories
// (about slice_max_files files), its files looked at, described and written ahead into the slice's transaction
// while it runs; the slice commits once the destination confirmed its files (SFTP's outcomes are per file), so a
// killed run resumes after the last slice it committed (the `first_sync` record).
import { ownPathsInside } from "../source/own-files.ts";
import type { Slice } from "../source/slices.ts";
import type { BatchFile, BatchResult } from "../transport/types.ts";
import type { PassState, TargetContext } from "./context.ts";
import type { Described } from "./describe.ts";
import {
  entriesFor, FIRST_SYNC_KEY, FirstSyncDescriber, type FirstSyncRecord, logEntries, lookDir, planned, type SliceFile, stillSame, summarize, walkPieces,
} from "./first-sync.ts";
import { type Planned, sameVersion } from "./plan.ts";
import type { Sender } from "./send.ts";

/** Runs the slices (after `resume.after` when resuming); true when it reached the end of the tree. */
export async function firstSyncInSlices(t: TargetContext, p: PassState, sender: Sender, resume: FirstSyncRecord | null): Promise<boolean> {
  const { log, store } = t;
  const slices = walkPieces(t, p, resume?.after ?? null);
  let record = resume;
  let n = 0;
  for (const slice of slices) {
    if (p.stopping || p.stats.targetError !== null || t.guard.fenced !== null) return false;
    record ??= { after: null, entries: entriesFor(t, slice.files, slice.last), changesFrom: store.maxChangeId(), started: Date.now() };
    n++;
    log.debug(`first sync: slice ${n}: ${slice.files} files in ${slice.dirs.length} directories`);
    if (!(await runSlice(t, p, sender, slice, record))) return false;
    await sender.flush(); // what the slice could not vouch for goes now, in list batches
  }
  if (record === null) return true; // nothing at all to sync
  if (p.stats.targetError !== null) return false;
  summarize(t, record.entries, record.changesFrom);
  return true;
}

/** One slice: its transfer, our walk and descriptions beside it (written ahead), then its verdicts and commit. */
async function runSlice(t: TargetContext, p: PassState, sender: Sender, slice: Slice, record: FirstSyncRecord): Promise<boolean> {
  const { store, config, log, queue, health } = t;
  const t0 = performance.now();
  const sliceStart = Date.now();
  const changesAfter = store.beginSlice();
  let committed = false;
  try {
    let listed!: (files: BatchFile[]) => void;
    const listedP = new Promise<BatchFile[]>((resolve) => {
      listed = resolve;
    });
    const exclude = ownPathsInside(config.sourceDir, t.own);
    const transfer = sender.transfer(listedP, { wholeTree: { extensions: config.monitoredExtensions, exclude } });
    // The files as they are now; the list goes to the transport at once (SFTP sends from it). One small record per
    // file is all a slice keeps (what the transport needs for its outcomes).
    const files: SliceFile[] = [];
    for (const dir of slice.dirs) await lookDir(t, p, dir, files);
    listed(files);
    if (slice.last) p.progress.walking = false;
    p.reportProgress();
    // Described while the transfer runs, one by one, each written ahead at once: only the exceptions are kept.
    const kept = new Map<string, Described>();
    await new FirstSyncDescriber(t, (f, d) => {
      if (d !== null) kept.set(f.path, d);
    }).all(files);
    const result = await transfer;
    if (result.error) {
      store.abortSlice();
      for (const d of kept.values()) t.audit.discard(d);
      failSlice(t, p, files, result);
      return false;
    }

    // Left by the transport's quick check: newer on the standby than ours. A conflict (the target is fenced).
    const newer = files.filter((f) => (result.outcomes.get(f.path) as { newer?: boolean } | undefined)?.newer === true).map((f) => f.path);
    if (newer.length > 0) {
      await t.guard.newerFound(newer, p.signal);
      p.stats.fenced ||= t.guard.fenced !== null;
    }
    // Written ahead and vouched for: done. Everything else (not vouched for, damaged, not described) takes the
    // usual confirm + audit path, whose commit joins this slice's transaction.
    const exceptions: Planned[] = [];
    const delivered: string[] = [];
    let bytes = 0;
    for (const f of files) {
      const o = result.outcomes.get(f.path);
      const written = !kept.has(f.path);
      // the version the transport read must be the one described (a transport that does not say is asked the file)
      if (written && o?.ok && (o.seen ? sameVersion(o.seen, f.walked) : stillSame(`${config.sourceDir}/${f.path}`, f.walked))) {
        delivered.push(f.path);
        bytes += f.size;
        continue;
      }
      if (written) store.unwriteAhead(f.path, changesAfter, sliceStart);
      exceptions.push(planned(t, f));
    }
    let problems = 0;
    if (record.entries === "every") problems += logEntries(t, store.changesSince(changesAfter));
    if (exceptions.length > 0) {
      const described = { drain: async () => {}, take: (rel: string) => kept.get(rel) };
      await sender.record(exceptions, { ...result, infoLines: [] }, described, t0);
    }
    const last = slice.dirs.at(-1)?.rel ?? record.after;
    store.setMeta(FIRST_SYNC_KEY, { ...record, after: last });
    record.after = last;
    store.commitSlice();
    committed = true;

    const now = Date.now();
    if (queue.size > 0) for (const rel of delivered) queue.settle(rel, { kind: "delivered" }, now);
    p.stats.sent += delivered.length;
    p.stats.bytes += bytes;
    p.stats.changes += config.changeTracking.enabled ? delivered.length : 0;
    p.stats.problems += problems;
    p.progress.doneFiles += delivered.length;
    p.progress.doneBytes += bytes;
    p.reportProgress();
    health.succeeded(delivered.length, bytes, now);
    t.counters.add({ filesTransferred: delivered.length, bytesTransferred: bytes, bytesSent: result.bytesSent });
    for (const line of result.infoLines) log.info(line);
    // The live view hears of the slice as one batch; its changes are in the DB (a million lines help nobody).
    t.hooks.onBatch?.({ files: delivered.length, bytes, seconds: (performance.now() - t0) / 1000, changes: [], routine: [], pending: [], changed: [], error: null });
    return true;
  } finally {
    if (!committed) store.abortSlice();
  }
}

/** The slice's transfer failed as a whole: nothing of it was committed; its files wait (bounded: one slice). */
function failSlice(t: TargetContext, p: PassState, files: SliceFile[], result: BatchResult): void {
  const { log, queue, health, transport } = t;
  const error = result.error as string;
  const now = Date.now();
  p.stats.targetError = error;
  health.failed(transport.description, error, files.length, now, p.stopping);
  for (const f of files) queue.settle(f.path, { kind: "failed", error }, now, health.nextRetry);
  p.stats.pending += files.length;
  t.counters.add({ errors: 1 });
  log.info(`first sync interrupted (${error}): ${files.length} files of this slice and the rest of the tree wait; the next run resumes after the last slice committed`);
  t.hooks.onBatch?.({ files: 0, bytes: 0, seconds: 0, changes: [], routine: [], pending: files.slice(0, 20).map((f) => f.path), changed: [], error });
}

