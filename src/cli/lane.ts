// One target of the daemon: its own replicator, state, queue, retries and backoff, run by its own loop, so a
// standby that is down (or slow to time out) never holds back another. The daemon feeds every lane the same due
// files; each lane sends them when it can.
import type { Config } from "../config/types.ts";
import { backoffDelay } from "../engine/backoff.ts";
import type { Logger } from "../log.ts";
import { type PassStats, Replicator, type ReplicatorDeps } from "../replicate.ts";

export interface LaneHooks {
  /** a full pass finished (the first one is the initial pass) */
  onPass(s: PassStats, first: boolean): void;
}

export class Lane {
  readonly replicator: Replicator;
  private readonly queue = new Set<string>();
  private readonly retry = new Set<string>();
  private retryAt = 0;
  private failures = 0;
  private down = false;
  private passWanted = true; // the initial pass
  private passes = 0;
  private stopping = false;
  private wake: (() => void) | null = null;

  constructor(
    readonly name: string,
    private readonly config: Config,
    deps: Omit<ReplicatorDeps, "onBatch">,
    private readonly log: Logger,
    private readonly hooks: LaneHooks & { onBatch: NonNullable<ReplicatorDeps["onBatch"]> },
  ) {
    this.replicator = new Replicator({
      ...deps,
      onBatch: (b) => {
        hooks.onBatch(b);
        if (b.error) {
          if (!this.down) log.warn(`${name} is unreachable: ${b.error}; retrying with backoff, changes are kept`);
          this.down = true;
        } else if (b.files > 0 && this.down) {
          this.down = false;
          log.info(`${name} is reachable again`);
        }
        for (const p of b.pending) this.retry.add(p);
        if (b.pending.length > 0) {
          this.retryAt = Date.now() + backoffDelay(this.failures++, { initialMs: config.retry.initialSeconds * 1000, maxMs: config.retry.maxSeconds * 1000 });
        } else if (!b.error) {
          this.failures = 0;
        }
      },
    });
  }

  push(paths: Iterable<string>): void {
    for (const p of paths) {
      // While the target is down, new work waits with the retries (no doomed connection per burst).
      if (this.down && Date.now() < this.retryAt) this.retry.add(p);
      else this.queue.add(p);
    }
    this.kick();
  }

  requestPass(): void {
    this.passWanted = true;
    this.kick();
  }

  stop(): void {
    this.stopping = true;
    this.kick();
  }

  private kick(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /** Runs until stop(): the initial pass, then queued files, retries when their backoff is over, and rescans. */
  async run(signal: AbortSignal): Promise<void> {
    while (!this.stopping) {
      if (this.passWanted) {
        this.passWanted = false;
        const s = await this.replicator.runPass(signal);
        this.hooks.onPass(s, this.passes++ === 0);
        continue;
      }
      const now = Date.now();
      if (this.retry.size > 0 && now >= this.retryAt) {
        for (const p of this.retry) this.queue.add(p);
        this.retry.clear();
      }
      if (this.queue.size > 0) {
        const batch = [...this.queue];
        this.queue.clear();
        await this.replicator.syncPaths(batch, signal);
        continue;
      }
      const waitMs = this.retry.size > 0 ? Math.max(0, this.retryAt - now) : 60_000;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(waitMs, 60_000));
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    this.log.debug(`${this.name}: lane stopped`);
  }
}
