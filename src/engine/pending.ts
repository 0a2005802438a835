// One record per pending file of a target (lsyncd's Delay): why it must go, when it may, how often it failed and
// why. The watcher's events, the debounce, retries, RRD holds and renames all act on this record; nothing else
// remembers a pending file. Time is passed in, so the whole policy is testable without timers.

export type Why =
  /** written or created: send its content */
  | "changed"
  /** gone from the source: delete it on the replica (when `delete` is on) */
  | "gone"
  /** renamed within the tree (the watcher paired the events): move it on the replica */
  | "moved"
  /** the destination did not confirm it: wait for the target's backoff */
  | "retry"
  /** an RRD that looked torn: look again after the hold delay */
  | "held";

export interface PendingFile {
  path: string;
  why: Why;
  /** the first event of the current round: max_delay counts from it */
  first: number;
  /** the last event: the debounce counts from it */
  last: number;
  /** when it may go */
  due: number;
  /** deliveries that failed so far */
  attempts: number;
  lastError: string | null;
  /** looks at a torn-looking RRD so far */
  holds: number;
  /** why "moved": the path it had before */
  from?: string;
  /** taken into a batch: the outcome settles it */
  sending: boolean;
  /** an event came while it was being sent: it goes again after the outcome */
  again: boolean;
}

/** What became of a file that was sent (or looked at) — the confirm step's verdict, as the queue needs it. */
export type Settlement =
  | { kind: "delivered" }
  | { kind: "failed"; error: string }
  /** the file changed while it was sent: not recorded, it goes again (nothing failed: no backoff) */
  | { kind: "changed" }
  | { kind: "held"; delayMs: number }
  /** gone, or nothing to do: forget it */
  | { kind: "dropped" }
  /** could not be vouched for (a whole-tree run): again at once */
  | { kind: "resend" };

export interface QueuePolicy {
  debounceMs: number;
  /** a file rewritten more often than debounceMs still ships at least every maxDelayMs */
  maxDelayMs: number;
  /**
   * The steady-state rule (issue 25): while events keep coming (one within the last quietMs), a batch that is
   * due waits until its oldest record has been due for collectMs, or until batchMaxFiles are due, so a river of
   * updates makes one rsync about every collectMs instead of one per quarter debounce. When the events stop
   * (a burst ended) what is due goes at once. 0 = off.
   */
  collectMs?: number;
  batchMaxFiles?: number;
}


export class PendingQueue {
  private readonly records = new Map<string, PendingFile>();
  readonly policy: QueuePolicy;

  /** the newest event (note): whether events keep coming */
  private lastEvent = Number.NEGATIVE_INFINITY;

  constructor(policy: QueuePolicy) {
    this.policy = {
      debounceMs: policy.debounceMs, maxDelayMs: Math.max(policy.maxDelayMs, policy.debounceMs),
      collectMs: policy.collectMs ?? 0, batchMaxFiles: policy.batchMaxFiles ?? Number.POSITIVE_INFINITY,
    };
  }

  /** Events keep coming: one came within the last `quietMs` (a quarter debounce, the gathering window). */
  streaming(now: number, quietMs: number): boolean {
    return now - this.lastEvent < Math.max(quietMs, 1);
  }

  get size(): number {
    return this.records.size;
  }

  /** Every path with a record (the daemon's replica lag looks only at these: every other file was delivered). */
  paths(): IterableIterator<string> {
    return this.records.keys();
  }

  get(path: string): PendingFile | undefined {
    return this.records.get(path);
  }

  private debounced(r: PendingFile): number {
    return Math.min(r.last + this.policy.debounceMs, r.first + this.policy.maxDelayMs);
  }

  /**
   * An event (the combining table): a new record waits for the debounce; a further event of a waiting record
   * extends its debounce (up to max_delay) and its kind is the newest one's (a move stays a move when its file is
   * written again: the content follows the move); a record being sent goes again after its outcome. `notBefore`:
   * the target is down and may be tried at that time, so new work waits with the retries (no doomed connection
   * per burst).
   */
  note(path: string, why: "changed" | "gone" | "moved", now: number, opts: { from?: string; notBefore?: number } = {}): void {
    if (now > this.lastEvent) this.lastEvent = now;
    let r = this.records.get(path);
    if (r === undefined) {
      r = { path, why, first: now, last: now, due: 0, attempts: 0, lastError: null, holds: 0, sending: false, again: false };
      if (why === "moved") r.from = opts.from;
      this.records.set(path, r);
    } else {
      r.last = now;
      if (r.sending) {
        r.again = true;
        return;
      }
      if (why === "gone" && r.from !== undefined) {
        // moved, then deleted before the move was done: the replica's copy is still under the old name
        const from = r.from;
        this.records.delete(path);
        this.note(from, "gone", now, opts);
        return;
      }
      if (why === "moved") r.from = opts.from;
      if (!(why === "changed" && r.why === "moved")) r.why = why;
    }
    r.due = Math.max(this.debounced(r), opts.notBefore ?? 0);
  }

  /**
   * Takes the records that are due at `now` (marking them as being sent), oldest first. When at least one is,
   * those due within `gatherMs` more come along: one burst makes one batch instead of a trickle of small ones.
   * `only`: just the records of this kind (a --once pass takes its held RRDs, never the failed files: the next
   * run retries those).
   */
  takeDue(now: number, gatherMs = 0, only?: Why): PendingFile[] {
    const next = this.nextDue(only);
    if (next === null || next > now) return [];
    const out: PendingFile[] = [];
    for (const r of this.records.values()) if (!r.sending && r.due <= now + gatherMs && (only === undefined || r.why === only)) out.push(r);
    if (only === undefined && this.holdUntil(now, gatherMs, out) > now) return [];
    out.sort((a, b) => a.first - b.first);
    for (const r of out) r.sending = true;
    return out;
  }

  /**
   * The steady-state rule: while events keep coming and room is left, the due records `due` may wait until the
   * oldest has been due for collectMs, never past any one's max_delay (a file rewritten all the time still ships
   * that often). Returns until when (≤ now: they go now).
   */
  private holdUntil(now: number, quietMs: number, due: PendingFile[]): number {
    const { collectMs = 0, batchMaxFiles = Number.POSITIVE_INFINITY } = this.policy;
    if (collectMs <= 0 || due.length === 0 || due.length >= batchMaxFiles || !this.streaming(now, quietMs)) return now;
    let until = Number.POSITIVE_INFINITY;
    for (const r of due) until = Math.min(until, r.due + collectMs, r.first + this.policy.maxDelayMs);
    return until;
  }

  /**
   * When the lane should look again: when the next record becomes due, or while the steady-state rule holds a due
   * batch back, when it would stop holding it (collectMs after the oldest became due, or a quiet spell after the
   * last event, whichever comes first). null when nothing waits.
   */
  nextSend(now: number, quietMs: number): number | null {
    const next = this.nextDue();
    if (next === null || next > now || !this.policy.collectMs || !this.streaming(now, quietMs)) return next;
    const due: PendingFile[] = [];
    for (const r of this.records.values()) if (!r.sending && r.due <= now + quietMs) due.push(r);
    return Math.min(this.holdUntil(now, quietMs, due), this.lastEvent + Math.max(quietMs, 1));
  }

  /** When the next waiting record (of this kind) becomes due, or null when none waits. */
  nextDue(only?: Why): number | null {
    let min: number | null = null;
    for (const r of this.records.values()) if (!r.sending && (only === undefined || r.why === only) && (min === null || r.due < min)) min = r.due;
    return min;
  }

  /**
   * The outcome of a record that was taken (or of a file a pass sent without a record). `retryAt`: when the
   * target may be tried again (the target's backoff), for failures.
   */
  settle(path: string, s: Settlement, now: number, retryAt = now): void {
    let r = this.records.get(path);
    if (s.kind === "delivered" || s.kind === "dropped") {
      if (r === undefined) return;
      if (r.again) {
        // written again while it was sent: one more round, as a fresh change
        Object.assign(r, { why: r.why === "gone" ? "gone" : "changed", first: r.last, sending: false, again: false, attempts: 0, lastError: null, holds: s.kind === "delivered" ? 0 : r.holds });
        delete r.from;
        r.due = this.debounced(r);
      } else {
        this.records.delete(path);
      }
      return;
    }
    if (r === undefined) {
      r = { path, why: "changed", first: now, last: now, due: now, attempts: 0, lastError: null, holds: 0, sending: false, again: false };
      this.records.set(path, r);
    }
    const again = r.again;
    r.sending = false;
    r.again = false;
    switch (s.kind) {
      case "failed":
        r.why = "retry";
        r.attempts++;
        r.lastError = s.error;
        r.due = retryAt;
        break;
      case "changed":
        r.why = "changed";
        r.first = r.last = now;
        r.due = this.debounced(r);
        break;
      case "held":
        r.why = "held";
        r.holds++;
        r.due = now + s.delayMs;
        break;
      case "resend":
        r.why = "changed";
        r.due = now;
        break;
    }
    if (again && s.kind !== "failed") r.due = Math.max(r.due, this.debounced(r));
  }

  /** A torn-looking RRD was shipped anyway, or found whole: its hold count starts over. */
  clearHolds(path: string): void {
    const r = this.records.get(path);
    if (r) r.holds = 0;
  }

  holdsOf(path: string): number {
    return this.records.get(path)?.holds ?? 0;
  }

  /** Records the destination has refused at least once: what `status` calls pending. */
  failed(): PendingFile[] {
    const out: PendingFile[] = [];
    for (const r of this.records.values()) if (r.attempts > 0) out.push(r);
    return out;
  }
}
