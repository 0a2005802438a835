// Describing changes while the transfer runs: each file's change-log entry (hash, diff, RRD header) and its staged
// backup are made on a small pool of async workers beside the transfer process, so the two overlap instead of
// adding up. Nothing here is published: the audit step does that once the destination confirmed the file.
import type { ChangeTracking } from "../config/types.ts";
import type { BackupStager } from "../track/backup.ts";
import { type ChangeRecord, describeChange } from "../track/change.ts";
import type { Planned } from "./plan.ts";

/** A change described ahead of its confirmation. */
export interface Described {
  rec: ChangeRecord | null | Error;
  /** the staged backup copy of a text file, published by rename on confirmation */
  staged: string | null;
  /** the backup could not be staged (backup dir full or unwritable): the entry is still logged */
  backupError?: string;
}

/** Describes one file (no I/O beyond reading the source file, its backup and staging a copy). */
export async function describeFile(f: Planned, tracking: ChangeTracking, stager: BackupStager): Promise<Described> {
  if (!tracking.enabled) return { rec: null, staged: null };
  const previous = f.prev && f.prev.size >= 0 ? { size: f.prev.size, sha256: f.prev.sha256, rrd: f.prev.rrd } : null;
  try {
    const probe = f.probe;
    f.probe = undefined;
    const rec = await describeChange({ srcPath: f.abs, relPath: f.rel, backupDir: tracking.backupDir, previous, size: f.facts.size, probe });
    if (rec?.fileKind !== "text") return { rec, staged: null };
    try {
      return { rec, staged: stager.stage(f.abs) };
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
    /** each result as it is made (the first sync writes its rows ahead) */
    private readonly onDescribed?: (f: Planned, d: Described) => void,
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
    while (this.head < this.queue.length && !this.stopped) {
      const f = this.queue[this.head++] as Planned;
      const d = await this.describe(f);
      this.results.set(f.rel, d);
      if (!this.stopped) this.onDescribed?.(f, d);
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
    while (this.running.size > 0) await Promise.all(this.running);
  }

  take(rel: string): Described | undefined {
    const d = this.results.get(rel);
    this.results.delete(rel);
    return d;
  }
}

export const yieldToIO = () => new Promise<void>((resolve) => setImmediate(resolve));
