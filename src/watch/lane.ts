// One target of the daemon, run by its own loop: the initial pass, then whatever its queue says is due, and the
// rescans the daemon asks for. Each target has its own lane, so a standby that is down (or slow to time out)
// never holds back another. All policy (debounce, retries, holds) is the engine's queue; this only waits and runs.
import type { TargetEngine } from "../engine/target.ts";
import type { EngineLog, PassStats } from "../engine/types.ts";

/** A single lane never waits longer than this without looking at its queue again. */
const MAX_SLEEP_MS = 60_000;

export class Lane {
  private passWanted = true; // the initial pass
  private passes = 0;
  private stopping = false;
  /** the source directory is gone: no pass, no send, no delete until it is back */
  private paused = false;
  private wake: (() => void) | null = null;
  /** when the sleeping loop wakes by itself: an earlier due record must wake it sooner */
  private sleepingUntil = 0;

  constructor(
    readonly engine: TargetEngine,
    private readonly log: EngineLog,
    /** a full pass finished (the first one is the initial pass) */
    private readonly onPass: (s: PassStats, first: boolean) => void,
  ) {}

  get name(): string {
    return this.engine.ctx.name;
  }

  /** An event for this target's queue (while it is down, new work waits with its retries). */
  note(path: string, why: "changed" | "gone" | "moved", now: number, from?: string): void {
    const { queue, health } = this.engine.ctx;
    queue.note(path, why, now, { from, notBefore: health.down ? health.nextRetry : undefined });
    const due = queue.get(path)?.due ?? now;
    if (due < this.sleepingUntil) this.kick();
  }

  /** While the source is missing nothing runs (a pass would see every file as deleted); events still queue. */
  setPaused(paused: boolean): void {
    this.paused = paused;
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
    this.sleepingUntil = 0;
    w?.();
  }

  /** Runs until stop(): the initial pass, then due records (a burst gathered into one batch), and rescans. */
  async run(signal: AbortSignal): Promise<void> {
    const { queue } = this.engine.ctx;
    // Records due within a quarter debounce of the first go along: one rsync for one burst.
    const gatherMs = queue.policy.debounceMs / 4;
    while (!this.stopping) {
      if (this.paused) {
        await this.sleep(MAX_SLEEP_MS);
        continue;
      }
      if (this.passWanted) {
        this.passWanted = false;
        const s = await this.engine.runPass(signal);
        this.onPass(s, this.passes++ === 0);
        continue;
      }
      if ((await this.engine.sendDue(Date.now(), gatherMs, signal)) !== null) continue;
      const next = queue.nextSend(Date.now(), gatherMs);
      await this.sleep(Math.min(MAX_SLEEP_MS, next === null ? MAX_SLEEP_MS : Math.max(0, next - Date.now())));
    }
    this.log.debug(`${this.name}: lane stopped`);
  }

  private async sleep(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      this.sleepingUntil = Date.now() + ms;
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
    this.wake = null;
  }
}
