// Retention of the change history in the state DB (issue 25): change_tracking.keep_history (days) and
// max_history_bytes, pruned oldest first in small steps beside the batches (a few thousand rows per short
// transaction: a daemon's batches never wait behind one long write), and the freed pages given back to the file
// system a few at a time (incremental auto-vacuum). The change log's rotation is apart (track/rotate.ts).
import type { ChangeTracking } from "../config/types.ts";
import type { StateStore } from "../store/state.ts";
import type { EngineLog } from "./types.ts";

/** Rows removed per step: ~1 MB of history, a few ms of write lock. */
const ROWS_PER_STEP = 2000;
/** The daemon prunes at most this often when nothing is overdue (a batch per second would otherwise ask each time). */
const STEP_EVERY_MS = 10_000;
/** Free pages beyond this share of the DB (and FREE_MIN_PAGES) are given back, RELEASE_PAGES per step. */
const FREE_SHARE = 0.1;
const FREE_MIN_PAGES = 4096;
const RELEASE_PAGES = 2048;
/**
 * An existing DB made without incremental auto-vacuum is switched by one VACUUM (a rewrite of the whole DB, its
 * size again on disk meanwhile, the write lock throughout) only while it is this small: a moment at open. A larger
 * one stays as it is: SQLite reuses its free pages for new rows, so it stops growing, but gives none back
 * (`check` says so, and how to switch it).
 */
export const VACUUM_SWITCH_MAX_BYTES = 256 * 1024 ** 2;

export class HistoryRetention {
  private lastStep = 0;
  /** the previous step found more to prune: the next batch goes on at once */
  private behind = false;

  constructor(
    private readonly store: StateStore,
    private readonly tracking: Pick<ChangeTracking, "keepHistoryDays" | "maxHistoryBytes">,
    private readonly log: EngineLog,
  ) {}

  /** At open, by the writer: an existing small DB is switched to incremental auto-vacuum (one VACUUM). */
  prepare(): void {
    try {
      const p = this.store.pages();
      const used = (p.total - p.free) * p.size;
      if (p.incremental || used > VACUUM_SWITCH_MAX_BYTES) return;
      const t0 = performance.now();
      this.store.switchToIncrementalVacuum();
      this.log.info(`state DB switched to incremental auto-vacuum (one VACUUM of ${(used / 1024 ** 2).toFixed(1)} MiB, ${((performance.now() - t0) / 1000).toFixed(2)} s): pruned history gives its space back`);
    } catch (e) {
      this.log.warn(`state DB not switched to incremental auto-vacuum (${(e as Error).message}); pruned history's space is still reused`);
    }
  }

  /**
   * One step after a commit: the oldest rows past keep_history, else the oldest while the history is over
   * max_history_bytes; then some free pages back. `force`: whatever the time since the last step (--once's end).
   */
  step(now: number, force = false): number {
    if (!force && !this.behind && now - this.lastStep < STEP_EVERY_MS) return 0;
    this.lastStep = now;
    const { keepHistoryDays, maxHistoryBytes } = this.tracking;
    let removed = 0;
    try {
      if (keepHistoryDays > 0) removed = this.store.pruneHistory(now - keepHistoryDays * 86_400_000, ROWS_PER_STEP).rows;
      if (removed === 0 && maxHistoryBytes > 0 && this.store.historySize() > maxHistoryBytes) {
        removed = this.store.pruneHistory(null, ROWS_PER_STEP, this.store.historySize() - maxHistoryBytes).rows;
      }
      this.behind = removed === ROWS_PER_STEP || (maxHistoryBytes > 0 && removed > 0 && this.store.historySize() > maxHistoryBytes);
      const p = this.store.pages();
      if (p.incremental && p.free > FREE_MIN_PAGES && p.free > p.total * FREE_SHARE) this.store.releasePages(RELEASE_PAGES);
      if (removed > 0) this.log.debug(`history retention: ${removed} oldest changes pruned`);
      // the count written down, so `status` and the next start need not count the history's rows
      else this.store.saveHistorySize();
    } catch (e) {
      this.behind = false;
      this.log.warn(`history retention failed (the history is kept longer): ${(e as Error).message}`);
    }
    return removed;
  }

  /** --once: steps until nothing is overdue, within a time budget (the rest waits for the next run). */
  drain(now: number, budgetMs = 5000): number {
    const t0 = performance.now();
    let total = 0;
    do {
      total += this.step(now, true);
    } while (this.behind && performance.now() - t0 < budgetMs);
    try {
      this.store.saveHistorySize();
    } catch {
      // counted again next time
    }
    return total;
  }
}
