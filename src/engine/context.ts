// What the stages of a pass share: the target's long-lived parts (its context) and the pass's own figures.
import type { Config } from "../config/types.ts";
import type { StateStore } from "../store/state.ts";
import type { BackupStager, PreviousCopy } from "../track/backup.ts";
import type { ChangeLog } from "../track/changelog.ts";
import { rootIdOf } from "../transport/in-source.ts";
import type { Transport } from "../transport/types.ts";
import type { Audit } from "./audit.ts";
import type { ReplicaGuard } from "./guard.ts";
import type { TargetHealth } from "./health.ts";
import type { TargetCounters } from "./metrics.ts";
import type { HistoryRetention } from "./history.ts";
import type { PendingQueue } from "./pending.ts";
import type { RollupLedger } from "./rollup.ts";
import { type EngineHooks, type EngineLog, newStats, type PassStats, type Progress } from "./types.ts";

/** One target, for the life of the process: its state, transport, audit, queue and health. */
export interface TargetContext {
  /** "rsync → host:/dest", for messages */
  readonly name: string;
  readonly config: Config;
  readonly store: StateStore;
  readonly transport: Transport;
  readonly audit: Audit;
  readonly stager: BackupStager;
  /** a text file's copy as last synced (the diff's "before") */
  readonly copies: (rel: string) => PreviousCopy | null;
  readonly changeLog: ChangeLog;
  readonly queue: PendingQueue;
  readonly health: TargetHealth;
  /** checks the replica before anything is written, deleted or moved there; keeps the target's fence */
  readonly guard: ReplicaGuard;
  /** monitoring's counters (files, bytes, deletes, renames, repairs, errors) */
  readonly counters: TargetCounters;
  /** routine RRD updates rolled up, stale RRDs (null: change tracking off) */
  readonly ledger: RollupLedger | null;
  /** the change history's retention */
  readonly history: HistoryRetention;
  readonly log: EngineLog;
  readonly hooks: EngineHooks;
  /** rrdsync's own files (never replicated) */
  readonly own: Set<string>;
  /** --once: the pass waits for its held RRDs; the daemon's queue brings them back by itself */
  readonly waitForHolds: boolean;
  /** the queue holds every pending file of the target, so `status` may show it (not so for verify --repair's) */
  readonly reportsPending: boolean;
}

export const ROOT_REPLACED = "the source directory was replaced while it was being sent (what was read may be the old tree's): it goes again";

/** One pass's figures and signal, shared by its stages; thrown away with the pass. */
export class PassState {
  readonly stats: PassStats = newStats();
  readonly progress: Progress = { scanned: 0, plannedFiles: 0, plannedBytes: 0, doneFiles: 0, doneBytes: 0, walking: true };
  /** bytes the running transfer has sent so far (added to doneBytes when its batch is recorded) */
  inFlightBytes = 0;
  /**
   * The source root this pass looks at files under (dev:ino): a batch that ends under another root (the directory
   * was replaced meanwhile) confirms nothing, as what the transfer read may not be what was looked at.
   */
  readonly rootId: string | null;

  constructor(
    private readonly hooks: EngineHooks,
    readonly signal: AbortSignal | undefined,
    sourceDir: string,
  ) {
    this.rootId = rootIdOf(sourceDir);
  }

  /** Is the source root another directory now than when this pass began (see rootId)? */
  rootReplaced(sourceDir: string): boolean {
    return rootIdOf(sourceDir) !== this.rootId;
  }

  get stopping(): boolean {
    return this.signal?.aborted === true;
  }

  reportProgress(): void {
    if (!this.hooks.onProgress) return;
    const p = this.progress;
    this.hooks.onProgress({ ...p, scanned: this.stats.scanned, doneBytes: p.doneBytes + this.inFlightBytes });
  }
}
