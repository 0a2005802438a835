// The first sync (empty state): every file is sent while our walk goes beside the transfer, in bounded pieces of
// the tree (source/slices.ts), looking at each file, reading it once and describing its change; its state row,
// change row and backup copy are written ahead into an open transaction at once, so nothing per file stays in
// memory, whatever the tree's size. Through rsync it is ONE whole-tree run (first-sync-run.ts); through a transport
// that needs a list (SFTP), one transfer and one commit per slice (first-sync-slices.ts). The helpers both use are here.
import { lstatSync } from "node:fs";
import { fsPath, quoteName } from "../names.ts";
import { joinPath } from "../store/schema.ts";
import type { ChangeRow } from "../store/state.ts";
import { DirLooker } from "../source/look.ts";
import { hasLegacyCopies } from "../track/backup.ts";
import { readHead } from "../track/rrd-read.ts";
import { type Slice, type SliceDir, treeSlices } from "../source/slices.ts";
import type { BatchFile } from "../transport/types.ts";
import { changeRowFor } from "./audit.ts";
import type { PassState, TargetContext } from "./context.ts";
import { type DescribeDeps, type Described, describeFile, yieldToIO } from "./describe.ts";
import { type Planned, sameVersion, statFacts } from "./plan.ts";


/** A piece of the walk closes at slice_max_files files (default 10,000) or this many directories. */
export const SLICE_MAX_DIRS = 10_000;
/** first_sync_entries "auto": a first sync of up to this many files writes one change-log entry per file, a larger one a summary. */
export const FIRST_SYNC_ENTRIES_MAX = 10_000;
import { FIRST_SYNC_KEY } from "../store/status.ts";

export { FIRST_SYNC_KEY };

/** What the state DB keeps of a sliced first sync in progress (committed with each slice). */
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
  return t.store.isEmpty() ? "new" : null;
}

/** The tree's pieces as the walk lists them, after `after` (resuming), with problems counted and logged. */
export function walkPieces(t: TargetContext, p: PassState, after: string | null): Generator<Slice> {
  const { config, log } = t;
  return treeSlices(config.sourceDir, {
    extensions: config.monitoredExtensions, exclude: t.own, maxFiles: config.sliceMaxFiles, maxDirs: Math.min(SLICE_MAX_DIRS, config.sliceMaxFiles), after,
    onProblem: (rel, reason) => {
      p.stats.problems++;
      log.error(`${rel}: ${reason}`);
    },
    onSymlink: (rel) => {
      p.stats.symlinksSkipped++;
      log.debug(`${rel}: symlink, not followed`);
    },
  });
}

/** Which change-log entries a first sync of `files` files writes (first_sync_entries). */
export function entriesFor(t: TargetContext, files: number, complete: boolean): "every" | "summary" {
  const mode = t.config.changeTracking.firstSyncEntries;
  return mode === "every" || (mode === "auto" && complete && files <= FIRST_SYNC_ENTRIES_MAX) ? "every" : "summary";
}

const NONE = { size: -1, mtimeNs: "", ino: "" };

/** Is the file at `abs` still the version the walk saw? (For a transport that does not say what it read.) */
export function stillSame(abs: string, walked: { size: number; mtimeNs: string; ino: string }): boolean {
  return sameVersion(statNow(abs) ?? NONE, walked);
}

function statNow(abs: string) {
  const st = lstatSync(fsPath(abs), { bigint: true, throwIfNoEntry: false });
  return st === undefined ? null : statFacts(st);
}

/** One file of a piece of the walk: the small record a transfer's outcomes need (nothing else is kept per file). */
export type SliceFile = BatchFile & { walked: NonNullable<BatchFile["walked"]> };

/** A slice's file as the send, describe and audit stages take it (made when needed, not kept). */
export function planned(t: TargetContext, f: SliceFile): Planned {
  return { rel: f.path, abs: `${t.config.sourceDir}/${f.path}`, facts: f.walked, prev: null, ctimeNs: f.walked.ctimeNs, replaceable: true };
}

/** One directory of the slice: its files as they are now. */
/**
 * One directory of a piece: its files as they are now, each handed to `each` (with the directory's looker, so
 * the file can be read through the same fd) or collected.
 */
export async function lookDir(t: TargetContext, p: PassState, dir: SliceDir, files: SliceFile[] | null, each?: (looker: DirLooker, name: string, f: SliceFile) => Promise<void>): Promise<void> {
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
      const f: SliceFile = { path: joinPath(dir.rel, name), size: st.size, walked: { size: st.size, mtimeNs: st.mtimeNs, ino: st.ino, ctimeNs: st.ctimeNs } };
      files?.push(f);
      p.progress.plannedFiles++;
      p.progress.plannedBytes += st.size;
      if (each) await each(looker, name, f);
      if (p.stats.scanned % 4096 === 0) {
        p.reportProgress();
        await yieldToIO(); // let rsync's output be read meanwhile
      }
    }
  } finally {
    looker.close();
  }
}

/**
 * Describes a first sync's files one by one: each read once (header, and the whole content when small) through
 * its directory's fd, described, and its rows written ahead at once; the others (damaged, an error, a large copy
 * to publish) go to `notWritten` with their description. The transfer's output is let through every few ms.
 */
export class FirstSyncDescriber {
  written = 0;
  bytes = 0;
  private readonly deps: DescribeDeps;
  private since = performance.now();

  constructor(private readonly t: TargetContext, private readonly notWritten: (f: SliceFile, d: Described | null) => void) {
    // The state is empty: a text file can have a copy only if backup_dir holds copies without rows (the seed's).
    const legacy = hasLegacyCopies(t.config.changeTracking.backupDir);
    this.deps = { tracking: t.config.changeTracking, stager: t.stager, copies: legacy ? t.copies : () => null };
  }

  /** One file of the directory `looker` looks into. */
  async file(looker: DirLooker, name: string, sf: SliceFile): Promise<void> {
    const { t } = this;
    const f = planned(t, sf);
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
    const d = await describeFile(f, this.deps, content);
    if (writeAhead(t, f, d)) {
      this.written++;
      this.bytes += sf.size;
    } else this.notWritten(sf, d);
    if (performance.now() - this.since > 4) {
      await yieldToIO();
      this.since = performance.now();
    }
  }

  /** A slice's files looked at already (SFTP): each described through its directory's fd. */
  async all(files: SliceFile[]): Promise<void> {
    let looker: DirLooker | null = null;
    let lookerDir = "";
    try {
      for (const sf of files) {
        const slash = sf.path.lastIndexOf("/");
        const dir = slash < 0 ? "" : sf.path.slice(0, slash);
        if (looker === null || dir !== lookerDir) {
          looker?.close();
          looker = new DirLooker(dir === "" ? this.t.config.sourceDir : `${this.t.config.sourceDir}/${dir}`, dir === "");
          lookerDir = dir;
        }
        await this.file(looker, sf.path.slice(slash + 1), sf);
      }
    } finally {
      looker?.close();
    }
  }
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
export function logEntries(t: TargetContext, rows: Iterable<ChangeRow>): number {
  const { changeLog, log } = t;
  let n = 0;
  const names: string[] = [];
  let error: Error | null = null;
  for (const c of rows) {
    n++;
    if (names.length < 20) names.push(quoteName(c.path));
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

/** The end of a first sync: its summary entry (when not one per file), and the sliced one's record goes. */
export function summarize(t: TargetContext, entries: "every" | "summary", changesFrom: number): void {
  const { store, changeLog, log, config } = t;
  if (entries === "summary" && config.changeTracking.enabled) {
    const kinds = store.changeKindsSince(changesFrom);
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
  t.guard.settle();
}
