// The longest event-loop stall while something runs: a 5 ms timer, and the widest gap seen between its ticks.
export function loopGapMeter(): { stop(): number } {
  let last = performance.now();
  let gap = 0;
  const tick = setInterval(() => {
    const now = performance.now();
    gap = Math.max(gap, now - last);
    last = now;
  }, 5);
  return {
    stop() {
      clearInterval(tick);
      return Math.max(gap, performance.now() - last);
    },
  };
}
