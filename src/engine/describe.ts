// Describing changes while the transfer runs: each file's change-log entry (hash, diff, RRD header) and its backup
// copy are made on a small pool of async workers beside the transfer process, so the two overlap instead of adding
// up. Nothing here is published: the audit step does that once the destination confirmed the file.
import type { ChangeTracking } from "../config/types.ts";
import { type BackupStager, Codec, encodeBackup, type PreviousCopy, SMALL_BACKUP_MAX } from "../track/backup.ts";
import { type ChangeRecord, describeChange } from "../track/change.ts";
import type { Planned } from "./plan.ts";

/** A change described ahead of its confirmation. */
export interface Described {
  rec: ChangeRecord | null | Error;
  /** a small text file's backup copy, for the state DB (committed with its row) */
  copy?: { data: Uint8Array; codec: Codec; size: number } | null;
  /** a large text file's backup copy, staged as a file and published by rename on confirmation */
  staged: string | null;
  /** the backup could not be made (backup dir full or unwritable): the entry is still logged */
  backupError?: string;
}

/** What describing needs besides the file: the tracking config, where large copies are staged, the previous copies. */
export interface DescribeDeps {
  tracking: ChangeTracking;
  stager: BackupStager;
  copies: (rel: string) => PreviousCopy | null;
}

/** Describes one file (no I/O beyond reading the source file, its previous copy and staging a large one). */
export async function describeFile(f: Planned, deps: DescribeDeps, read?: Buffer | null): Promise<Described> {
  if (!deps.tracking.enabled) return { rec: null, staged: null };
  const previous = f.prev && f.prev.size >= 0 ? { size: f.prev.size, sha256: f.prev.sha256, rrd: f.prev.rrd, summary: f.prevSummary } : null;
  // a routine update of an RRD not logged as stopped, rolled up: judged, no entry made (audit.ts)
  const rollup = deps.tracking.rrdUpdates === "rollup" && (f.prev?.stale ?? null) === null && !f.repair;
  try {
    const probe = f.probe;
    f.probe = undefined;
    const rec = await describeChange({ srcPath: f.abs, relPath: f.rel, copy: () => deps.copies(f.rel), previous, size: f.facts.size, probe, content: read, rollup });
    if (rec?.fileKind !== "text") return { rec, staged: null };
    const content = rec.content;
    rec.content = undefined; // the copy below is all that is kept of it
    if (content !== undefined && content.length <= SMALL_BACKUP_MAX) return { rec, staged: null, copy: { ...encodeBackup(content), size: content.length } };
    try {
      return { rec, staged: deps.stager.stage(f.abs) };
    } catch (e) {
      return { rec, staged: null, backupError: (e as Error).message };
    }
  } catch (e) {
    return { rec: e as Error, staged: null };
  }
}

/** A worker pool: describes queued files on up to `workers` async workers while a transfer runs. */
export class Describer {
  /** a queue read from `head` on (Array.shift on 20,000 entries is quadratic) */
  private queue: Planned[] = [];
  private head = 0;
  private results = new Map<string, Described>();
  private running = new Set<Promise<void>>();
  private stopped = false;

  constructor(
    private readonly describe: (f: Planned) => Promise<Described>,
    private readonly workers = 2,
  ) {}

  add(f: Planned): void {
    if (this.stopped) return;
    this.queue.push(f);
    if (this.running.size < this.workers) {
      const w: Promise<void> = this.work().finally(() => this.running.delete(w));
      this.running.add(w);
    }
  }

  private async work(): Promise<void> {
    let since = performance.now();
    while (this.head < this.queue.length && !this.stopped) {
      const f = this.queue[this.head++] as Planned;
      const d = await this.describe(f);
      this.results.set(f.rel, d);
      // The describes are mostly synchronous reads: every few ms the transfer's output is let through (a turn of
      // the event loop per file cost more than the describe itself at a million files).
      if (performance.now() - since > YIELD_EVERY_MS) {
        await yieldToIO();
        since = performance.now();
      }
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
    while (this.running.size > 0) await Promise.all(this.running);
  }

  take(rel: string): Described | undefined {
    const d = this.results.get(rel);
    this.results.delete(rel);
    return d;
  }
}

const YIELD_EVERY_MS = 4;

export const yieldToIO = () => new Promise<void>((resolve) => setImmediate(resolve));
