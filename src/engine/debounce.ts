// Pure debounce for the watcher: a file is ready once quiet for `debounceMs`, or `maxDelayMs` after its first event.
// Time is passed in, so tests need no timers.

export interface DebounceEntry {
  first: number;
  last: number;
}

export interface DebounceState {
  entries: Map<string, DebounceEntry>;
  debounceMs: number;
  /** a file rewritten more often than debounceMs still ships at least every maxDelayMs */
  maxDelayMs: number;
}

export function newDebounce(debounceMs: number, maxDelayMs: number): DebounceState {
  return { entries: new Map(), debounceMs, maxDelayMs: Math.max(maxDelayMs, debounceMs) };
}

export function touch(s: DebounceState, path: string, now: number): void {
  const e = s.entries.get(path);
  if (e) e.last = now;
  else s.entries.set(path, { first: now, last: now });
}

function readyAt(s: DebounceState, e: DebounceEntry): number {
  return Math.min(e.last + s.debounceMs, e.first + s.maxDelayMs);
}

/**
 * Removes and returns the paths that are ready at `now`, oldest first. When at least one is, those ready within
 * `gatherMs` more come along, so one burst makes one batch instead of a trickle of small ones.
 */
export function takeDue(s: DebounceState, now: number, gatherMs = 0): string[] {
  const next = nextDeadline(s);
  if (next === null || next > now) return [];
  const due: Array<[string, number]> = [];
  for (const [p, e] of s.entries) if (readyAt(s, e) <= now + gatherMs) due.push([p, e.first]);
  due.sort((a, b) => a[1] - b[1]);
  for (const [p] of due) s.entries.delete(p);
  return due.map(([p]) => p);
}

/** When the next path becomes ready, or null when nothing waits. */
export function nextDeadline(s: DebounceState): number | null {
  let min: number | null = null;
  for (const e of s.entries.values()) {
    const t = readyAt(s, e);
    if (min === null || t < min) min = t;
  }
  return min;
}
