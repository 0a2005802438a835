// What monitoring reads, counted in one place (the Prometheus names and the HTTP server are at the edge:
// src/metrics/prometheus.ts). Per target: totals since its state DB was made, kept in the status record so they only
// ever grow (across --once runs and daemon restarts, as Prometheus counters must), and a snapshot of its gauges;
// per process: the watcher's queue overflows (its inotify watches are read from the watcher when rendered).
import { type FenceRecord, readFence } from "../store/fence.ts";
import type { StateStore } from "../store/state.ts";
import type { StatusRecord, Totals } from "../store/status.ts";
import { type ReplicaLag, replicaLagNow } from "./lag.ts";
import type { EngineLog } from "./types.ts";

export type { Totals };

export const zeroTotals = (): Totals => ({ filesTransferred: 0, bytesTransferred: 0, bytesSent: 0, filesDeleted: 0, filesRenamed: 0, filesRepaired: 0, errors: 0 });

/** A target's counters: added to by the send, rename and delete stages, written to the status record per pass. */
export class TargetCounters {
  private readonly t: Totals;
  private dirty = false;

  constructor(private readonly store: StateStore, private readonly log: EngineLog) {
    this.t = { ...zeroTotals(), ...store.status().totals };
  }

  add(d: Partial<Totals>): void {
    for (const [k, v] of Object.entries(d) as Array<[keyof Totals, number]>) {
      if (v === 0) continue;
      this.t[k] += v;
      this.dirty = true;
    }
  }

  get totals(): Totals {
    return { ...this.t };
  }

  /** Once per pass (not per file): one small write. */
  flush(): void {
    if (!this.dirty) return;
    try {
      this.store.setStatus({ totals: this.t });
      this.dirty = false;
    } catch (e) {
      this.log.debug(`counters not recorded: ${(e as Error).message}`);
    }
  }
}

/** The daemon's own counter: one watcher per process. */
export const processMetrics = { queueOverflows: 0 };

/** The kernel's event queue overflowed (events were lost; a rescan follows). */
export function countQueueOverflow(): void {
  processMetrics.queueOverflows++;
}

/** One target's metrics at one moment: what the status record says, with what only a live engine knows. */
export interface TargetSnapshot {
  target: string;
  status: StatusRecord;
  totals: Totals;
  trackedFiles: number;
  /** files waiting to go (debounce, retry, hold) */
  pendingFiles: number;
  up: boolean;
  lag: ReplicaLag | null;
  /** the target is fenced (issue 23), and the conflicting files its fence found */
  fenced: boolean;
  conflicts: number;
}

/**
 * A target's snapshot from its state DB alone (--once's metrics file, after the pass): the counters, pending count
 * and replica lag as the run recorded them (its pass recorded the lag at its end: not looked for again); the lag
 * of every tracked RRD now when no run has recorded one.
 */
export async function storedSnapshot(target: string, store: StateStore, sourceDir: string): Promise<TargetSnapshot> {
  const status = store.status();
  let lag: ReplicaLag;
  if (status.lag !== undefined) {
    const { time: _, ...figures } = status.lag;
    lag = figures;
  } else {
    lag = await replicaLagNow(store, sourceDir);
  }
  return {
    target, status, totals: { ...zeroTotals(), ...status.totals }, trackedFiles: store.countFiles(), pendingFiles: status.pending ?? 0,
    up: status.downSince === undefined, lag, ...fenceFigures(readFence(store)),
  };
}

/** The fence as monitoring counts it: fenced or not, and the files its conflicts named (0 for a promotion). */
export function fenceFigures(f: FenceRecord | null): { fenced: boolean; conflicts: number } {
  return { fenced: f !== null, conflicts: f?.files ?? 0 };
}
