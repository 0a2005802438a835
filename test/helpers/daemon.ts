// A running `rrdsync --watch --json` for e2e tests: its JSON events as they come, and ways to wait and to stop it.
import { rrdsyncCommand } from "./world.ts";

export interface DaemonEvent {
  event: string;
  [key: string]: unknown;
}

export interface Daemon {
  proc: ReturnType<typeof Bun.spawn>;
  events: DaemonEvent[];
  stderr(): string;
  /** resolves with the first event (already seen or future) that matches; rejects after timeoutMs */
  waitFor(pred: (e: DaemonEvent) => boolean, timeoutMs?: number, what?: string): Promise<DaemonEvent>;
  /** sends a signal and waits for the exit code */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number>;
}

export function startDaemon(args: string[], env: Record<string, string> = {}): Daemon {
  const proc = Bun.spawn([...rrdsyncCommand(), "--watch", "--json", ...args], {
    stdout: "pipe",
    stderr: "pipe",
    stdin: "ignore",
    env: { ...process.env, NO_COLOR: "1", ...env },
  });
  const events: DaemonEvent[] = [];
  const waiters: Array<() => void> = [];
  let err = "";
  void (async () => {
    let buf = "";
    const dec = new TextDecoder();
    for await (const chunk of proc.stdout as ReadableStream<Uint8Array>) {
      buf += dec.decode(chunk, { stream: true });
      let i = buf.indexOf("\n");
      while (i >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.trim()) events.push(JSON.parse(line) as DaemonEvent);
        i = buf.indexOf("\n");
      }
      for (const w of waiters.splice(0)) w();
    }
  })();
  void (async () => {
    const dec = new TextDecoder();
    for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) err += dec.decode(chunk, { stream: true });
  })();
  const d: Daemon = {
    proc,
    events,
    stderr: () => err,
    async waitFor(pred, timeoutMs = 20_000, what = "event") {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const hit = events.find(pred);
        if (hit) return hit;
        if (proc.exitCode !== null) throw new Error(`daemon exited ${proc.exitCode} while waiting for ${what}: ${err}`);
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`timed out waiting for ${what}; events: ${JSON.stringify(events.slice(-10))}; stderr: ${err}`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, Math.min(left, 200));
          waiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
    },
    async stop(signal = "SIGTERM", timeoutMs = 40_000) {
      if (proc.exitCode === null) proc.kill(signal);
      const t = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
      const code = await proc.exited;
      clearTimeout(t);
      return code;
    },
  };
  return d;
}

/** Polls until fn() is true (the replica caught up), or fails with what it last saw. */
export async function eventually(fn: () => boolean, timeoutMs: number, what: string): Promise<number> {
  const t0 = Date.now();
  while (!fn()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await Bun.sleep(50);
  }
  return Date.now() - t0;
}
