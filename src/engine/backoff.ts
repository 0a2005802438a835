// Pure retry policy: exponential backoff with jitter, capped, so a down standby gets neither a storm nor a long gap.

export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 1000, maxMs: 5 * 60 * 1000 };

/** Delay before retry number `attempt` (0-based); `random` in [0,1) spreads retries by ±20%. */
export function backoffDelay(attempt: number, policy: BackoffPolicy = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  const base = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(Math.min(policy.maxMs, base * (0.8 + 0.4 * random())));
}
