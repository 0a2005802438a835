// The first sync (empty state): the tree goes in slices of whole directories (source/slices.ts), each one transfer
// that walks its directories itself (rsync; SFTP is handed the list), while our walk goes beside it to know each
// file's version and describe its change. A slice's state rows, change rows and backup copies are written ahead
// into one open transaction as its files are described, and the slice commits once the destination vouched for
// it: memory is bounded by a slice, whatever the tree's size, and a killed run resumes after the last slice it
// committed (the `first_sync` meta record), with rsync's quick check skipping what the replica already got.
import { lstatSync } from "node:fs";
import { joinPath } from "../store/schema.ts";
import type { ChangeRow } from "../store/state.ts";
import { DirLooker } from "../source/look.ts";
import { ownPathsInside } from "../source/own-files.ts";
import { hasLegacyCopies } from "../track/backup.ts";
import { readHead } from "../track/rrd-read.ts";
import { type Slice, type SliceDir, treeSlices } from "../source/slices.ts";
import type { BatchFile, BatchResult } from "../transport/types.ts";
import { changeRowFor } from "./audit.ts";
import type { PassState, TargetContext } from "./context.ts";
import { type Described, describeFile, yieldToIO } from "./describe.ts";
import { type Planned, sameVersion, statFacts } from "./plan.ts";
import type { Sender } from "./send.ts";

/**
 * A slice closes at slice_max_files files (default 50,000) or this many directories. Its transfer walks its
 * directories as one rsync run, so a slice costs one more ssh login and startup (~0.3 s here) over one run for
 * the whole tree; its memory is the slice's names and the files not confirmed yet.
 */
export const SLICE_MAX_DIRS = 10_000;
/** first_sync_entries "auto": a first sync of up to this many files writes one change-log entry per file, a larger one a summary. */
export const FIRST_SYNC_ENTRIES_MAX = 10_000;
export const FIRST_SYNC_KEY = "first_sync";

/** What the state DB keeps of a first sync in progress (committed with each slice). */
export interface FirstSyncRecord {
  /** the last directory (walk order) whose files are synced */
  after: string | null;
  /** per-file change-log entries, or one summary entry at the end */
  entries: "every" | "summary";
  /** the change rows of the first sync have ids above this */
  changesFrom: number;
  started: number;
}

/** Is a first sync due (empty state) or under way (resumed after a kill)? The record, or null. */
export function firstSyncState(t: TargetContext): FirstSyncRecord | "new" | null {
  const r = t.store.meta<FirstSyncRecord>(FIRST_SYNC_KEY);
  if (r !== null) return r;
  return t.store.countFiles() === 0 ? "new" : null;
}

/** Runs the first sync's slices (after `resume.after` when resuming); true when it reached the end of the tree. */
export async function firstSync(t: TargetContext, p: PassState, sender: Sender, resume: FirstSyncRecord | null): Promise<boolean> {
  const { config, log, store } = t;
  const slices = treeSlices(config.sourceDir, {
    extensions: config.monitoredExtensions, exclude: t.own, maxFiles: config.sliceMaxFiles, maxDirs: Math.min(SLICE_MAX_DIRS, config.sliceMaxFiles), after: resume?.after ?? null,
    onProblem: (rel, reason) => {
      p.stats.problems++;
      log.error(`${rel}: ${reason}`);
    },
    onSymlink: (rel) => {
      p.stats.symlinksSkipped++;
      log.debug(`${rel}: symlink, not followed`);
    },
  });
  let record = resume;
  let n = 0;
  for (const slice of slices) {
    if (p.stopping || p.stats.targetError !== null) return false;
    if (record === null) {
      const mode = config.changeTracking.firstSyncEntries;
      const small = slice.last && slice.files <= FIRST_SYNC_ENTRIES_MAX;
      record = { after: null, entries: mode === "every" || (mode === "auto" && small) ? "every" : "summary", changesFrom: store.maxChangeId(), started: Date.now() };
    }
    n++;
    log.debug(`first sync: slice ${n}: ${slice.files} files in ${slice.dirs.length} directories`);
    if (!(await runSlice(t, p, sender, slice, record))) return false;
    await sender.flush(); // what the slice could not vouch for goes now, in list batches
  }
  if (record === null) return true; // nothing at all to sync
  if (p.stats.targetError !== null) return false;
  summarize(t, record);
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
    const transfer = sender.transfer(listedP, { wholeTree: { extensions: config.monitoredExtensions, exclude, dirs: slice.dirs.map((d) => d.rel) } });
    // The files as they are now (after the transfer started: the inode change time then tells whether rsync saw
    // this version, see rsync.ts); the list goes to the transport at once (SFTP sends from it).
    const files: Planned[] = [];
    for (const dir of slice.dirs) await lookDir(t, p, dir, files);
    listed(files.map((f) => ({ path: f.rel, size: f.facts.size, walked: { ...f.facts, ctimeNs: f.ctimeNs as bigint } })));
    if (slice.last) p.progress.walking = false;
    p.reportProgress();
    // Described while the transfer runs, one by one, each written ahead at once: only the exceptions are kept.
    const kept = await describeAll(t, files);
    const result = await transfer;
    if (result.error) {
      store.abortSlice();
      for (const d of kept.values()) t.audit.discard(d);
      failSlice(t, p, files, result);
      return false;
    }

    // Written ahead and vouched for: done. Everything else (not vouched for, damaged, not described) takes the
    // usual confirm + audit path, whose commit joins this slice's transaction.
    const exceptions: Planned[] = [];
    const delivered: string[] = [];
    let bytes = 0;
    for (const f of files) {
      const o = result.outcomes.get(f.rel);
      const written = !kept.has(f.rel);
      // the version the transport read must be the one described (a transport that does not say is asked the file)
      if (written && o?.ok && sameVersion(o.seen ?? statNow(f.abs) ?? NONE, f.facts)) {
        delivered.push(f.rel);
        bytes += f.facts.size;
        continue;
      }
      if (written) store.unwriteAhead(f.rel, changesAfter, sliceStart);
      exceptions.push(f);
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
    for (const line of result.infoLines) log.info(line);
    // The live view hears of the slice as one batch; its changes are in the DB (a million lines help nobody).
    t.hooks.onBatch?.({ files: delivered.length, bytes, seconds: (performance.now() - t0) / 1000, changes: [], pending: [], changed: [], error: null });
    return true;
  } finally {
    if (!committed) store.abortSlice();
  }
}

const NONE = { size: -1, mtimeNs: "", ino: "" };

function statNow(abs: string) {
  const st = lstatSync(abs, { bigint: true, throwIfNoEntry: false });
  return st === undefined ? null : statFacts(st);
}

/** One directory of the slice: its files as they are now. */
async function lookDir(t: TargetContext, p: PassState, dir: SliceDir, files: Planned[]): Promise<void> {
  const absDir = dir.rel === "" ? t.config.sourceDir : `${t.config.sourceDir}/${dir.rel}`;
  const looker = new DirLooker(absDir, dir.rel === "");
  try {
    for (const name of dir.names) {
      const st = looker.look(name);
      if (st === null) continue; // gone since the listing
      if (st.kind !== "file") {
        if (st.kind === "symlink") p.stats.symlinksSkipped++;
        continue;
      }
      p.stats.scanned++;
      files.push({ rel: joinPath(dir.rel, name), abs: `${absDir}/${name}`, facts: { size: st.size, mtimeNs: st.mtimeNs, ino: st.ino }, prev: null, ctimeNs: st.ctimeNs });
      p.progress.plannedFiles++;
      p.progress.plannedBytes += st.size;
      if (files.length % 4096 === 0) {
        p.reportProgress();
        await yieldToIO(); // let rsync's output be read meanwhile
      }
    }
  } finally {
    looker.close();
  }
}

/**
 * Each file read once (header, and the whole content when small) and described, its rows written ahead at once;
 * the descriptions that cannot be (damaged, an error, a large copy to publish) are kept, by path. The transfer's
 * output is let through every few ms.
 */
async function describeAll(t: TargetContext, files: Planned[]): Promise<Map<string, Described>> {
  const kept = new Map<string, Described>();
  // The state is empty: a text file can have a copy only if backup_dir holds copies without rows (the seed's).
  const legacy = hasLegacyCopies(t.config.changeTracking.backupDir);
  const deps = { tracking: t.config.changeTracking, stager: t.stager, copies: legacy ? t.copies : () => null };
  let since = performance.now();
  let looker: DirLooker | null = null;
  let lookerDir = "";
  try {
    for (const f of files) {
      const slash = f.abs.lastIndexOf("/");
      const dir = f.abs.slice(0, slash);
      if (looker === null || dir !== lookerDir) {
        looker?.close();
        looker = new DirLooker(dir, dir === t.config.sourceDir);
        lookerDir = dir;
      }
      const name = f.abs.slice(slash + 1);
      let content: Buffer | null = null;
      if (t.config.changeTracking.enabled) {
        const fd = looker.open(name);
        if (fd !== null) {
          try {
            const head = readHead(fd, f.facts.size);
            f.probe = head.probe;
            content = head.content;
          } catch {
            // described the usual way below, which reports the error
          }
        }
      }
      const d = await describeFile(f, deps, content);
      if (!writeAhead(t, f, d)) kept.set(f.rel, d);
      if (performance.now() - since > 4) {
        await yieldToIO();
        since = performance.now();
      }
    }
  } finally {
    looker?.close();
  }
  return kept;
}

/** A file described during the transfer: its row, change and copy go into the slice's transaction at once. */
function writeAhead(t: TargetContext, f: Planned, d: Described): boolean {
  const rec = d.rec;
  // recorded (or held, or resent) after the transfer, the usual way
  if (rec instanceof Error || rec?.damage || d.staged || d.backupError) return false;
  const time = Date.now();
  const change = rec ? changeRowFor(f, rec, time) : null;
  const copy = d.copy ? { path: f.rel, syncedAt: time, size: d.copy.size, stored: null, data: d.copy.data, codec: d.copy.codec } : null;
  t.store.writeAhead({ path: f.rel, state: { ...f.facts, sha256: rec?.sha256 ?? null, rrd: rec?.rrd ?? null } }, change, copy);
  return true;
}

/** The slice's entries (its rows read back from the open transaction), written before its commit; gaps counted. */
function logEntries(t: TargetContext, rows: Iterable<ChangeRow>): number {
  const { changeLog, log } = t;
  let n = 0;
  const names: string[] = [];
  let error: Error | null = null;
  for (const c of rows) {
    n++;
    if (names.length < 20) names.push(JSON.stringify(c.path));
    if (error !== null) continue;
    try {
      changeLog.append(new Date(c.time), c.path, c.details);
    } catch (e) {
      error = e as Error;
    }
  }
  if (error === null) {
    try {
      changeLog.flush();
      return 0;
    } catch (e) {
      error = e as Error;
    }
  }
  // Disk full, or not writable: replication goes on (the replica has these files), the gap is an error.
  log.error(`the change log cannot be written (${error.message}): audit gap for ${n} entries of the first sync: ${names.join(", ")}${n > names.length ? ", …" : ""} (they are in the state DB: rrdsync log)`);
  return n;
}

/** The slice's transfer failed as a whole: nothing of it was committed; its files wait (bounded: one slice). */
function failSlice(t: TargetContext, p: PassState, files: Planned[], result: BatchResult): void {
  const { log, queue, health, transport } = t;
  const error = result.error as string;
  const now = Date.now();
  p.stats.targetError = error;
  health.failed(transport.description, error, files.length, now, p.stopping);
  for (const f of files) queue.settle(f.rel, { kind: "failed", error }, now, health.nextRetry);
  p.stats.pending += files.length;
  log.info(`first sync interrupted (${error}): ${files.length} files of this slice and the rest of the tree wait; the next run resumes after the last slice committed`);
  t.hooks.onBatch?.({ files: 0, bytes: 0, seconds: 0, changes: [], pending: files.slice(0, 20).map((f) => f.rel), changed: [], error });
}

/** The end of a first sync: its summary entry (when not one per file), and the record goes. */
function summarize(t: TargetContext, record: FirstSyncRecord): void {
  const { store, changeLog, log, config } = t;
  if (record.entries === "summary" && config.changeTracking.enabled) {
    const kinds = store.changeKindsSince(record.changesFrom);
    const total = store.totals();
    const what = kinds.map((k) => `${k.n.toLocaleString("en-US")} ${k.kind}`).join(", ");
    const details = `First sync: ${total.files.toLocaleString("en-US")} files (${(total.bytes / 2 ** 30).toFixed(1)} GiB) are on the replica${what ? `: ${what}` : ""}.\n` +
      `One entry per file is in the state DB: rrdsync log PATH (change_tracking.first_sync_entries = "every" writes them here too).`;
    try {
      changeLog.append(new Date(), ".", details);
      changeLog.flush();
    } catch (e) {
      log.error(`the change log cannot be written (${(e as Error).message}): the first sync's summary entry is missing (the per-file entries are in the state DB: rrdsync log)`);
    }
  }
  store.setMeta(FIRST_SYNC_KEY, null);
}
