// Target health: is the standby reachable, since when is it failing, when may it be tried again. The one place
// that tracks an outage, logs it (once per outage and per new error, with its cause), and writes the status
// record `rrdsync status` and monitoring read.
import { backoffDelay, type BackoffPolicy } from "./backoff.ts";
import type { EngineLog } from "./types.ts";
import type { StateStore } from "../store/state.ts";
import type { StatusRecord, StatusUpdate } from "../store/status.ts";
import { plural } from "../text.ts";

export class TargetHealth {
  /** when the target started failing (also across runs, for `status`) */
  private downSince: number | null;
  /** the error of the outage this process has reported: a different one is news again */
  private reported: string | null = null;
  private failures = 0;
  private retryAt = 0;
  /** since when each file `status` lists has been pending, as earlier runs recorded it (--once starts afresh) */
  private pendingSince: Map<string, number>;

  constructor(
    private readonly name: string,
    private readonly store: StateStore,
    private readonly log: EngineLog,
    private readonly backoff: BackoffPolicy,
    /** the daemon retries by itself; --once leaves it to the next run */
    private readonly retries: boolean,
  ) {
    const st = store.status();
    this.downSince = typeof st.downSince === "number" ? st.downSince : null;
    this.pendingSince = new Map((st.pendingFiles ?? []).map((p) => [p.path, p.since]));
  }

  get down(): boolean {
    return this.downSince !== null;
  }

  /** When failed files may be tried again. */
  get nextRetry(): number {
    return this.retryAt;
  }

  /**
   * A batch (or a delete, a move) failed as a whole. `stopping`: it was cut short by our own stop, which says
   * nothing about the standby (no outage, no alarm for status-based monitoring).
   */
  failed(description: string, error: string, pendingFiles: number, now: number, stopping: boolean): void {
    if (stopping) {
      this.log.info(`${description}: stopped; ${plural(pendingFiles, "file")} stay pending`);
      return;
    }
    const line = `${description}: ${error}; ${plural(pendingFiles, "file")} stay pending`;
    if (this.reported !== error) {
      // Each run (a cron mail) and each new error carries the cause; retries of the same outage do not repeat it.
      this.log.error(line);
      if (this.retries && this.reported === null) this.log.warn(`${this.name} is unreachable: ${error}; retrying with backoff, changes are kept`);
    } else {
      this.log.debug(line);
    }
    this.reported = error;
    this.retryAt = now + backoffDelay(this.failures++, this.backoff);
    if (this.downSince === null) this.downSince = now;
    this.write({ lastError: { time: now, message: error }, downSince: this.downSince });
  }

  /** Files the destination confirmed: the target works (again). */
  succeeded(files: number, bytes: number, now: number): void {
    if (files === 0) return;
    if (this.reported !== null && this.retries) this.log.info(`${this.name} is reachable again`);
    this.reported = null;
    this.failures = 0;
    this.downSince = null;
    this.write({ lastBatch: { time: now, files, bytes }, downSince: null });
  }

  /** Some files failed (the target answered): they wait for the backoff like a failed batch's. */
  filesFailed(now: number): void {
    this.retryAt = now + backoffDelay(this.failures++, this.backoff);
  }

  /**
   * Files of a first sync whose run failed: not in the queue (a million records would not be bounded memory),
   * counted here until the first sync ends, so `status` names them with the queue's.
   */
  private unsent = { count: 0, sample: [] as Array<{ path: string; since: number }> };

  firstSyncUnsent(count: number, sample: string[], now = Date.now()): void {
    this.unsent = { count, sample: sample.map((path) => ({ path, since: now })) };
  }

  /** The pending files as `status` shows them: how many, and the first with their age. */
  pending(count: number, sample: Array<{ path: string; since: number }>): void {
    const u = this.unsent;
    const all = [...sample, ...u.sample].slice(0, Math.max(20, sample.length));
    const files = all.map((p) => ({ path: p.path, since: Math.min(p.since, this.pendingSince.get(p.path) ?? p.since) }));
    this.pendingSince = new Map(files.map((p) => [p.path, p.since]));
    this.write({ pending: count + u.count, pendingSample: files.map((p) => p.path), pendingFiles: files });
  }

  /** The source directory is gone (since), or back (null). */
  sourceMissing(since: number | null): void {
    this.write({ sourceMissing: since });
  }

  lastPass(p: NonNullable<StatusRecord["lastPass"]>): void {
    this.write({ lastPass: p });
  }

  private write(u: StatusUpdate): void {
    try {
      this.store.setStatus(u);
    } catch (e) {
      this.log.debug(`status not recorded: ${(e as Error).message}`);
    }
  }
}
