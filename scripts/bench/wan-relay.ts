// A simulated WAN link in user space (this kernel has no netem): a TCP relay in front of a port that delays each
// direction by a one-way latency and caps its bandwidth, and counts the bytes that cross it.
// Usage: bun scripts/bench/wan-relay.ts --to PORT [--delay-ms 25] [--mbit 20]
//   prints "listening PORT" once ready; each line "stats" on stdin is answered "stats UP DOWN CONNECTIONS".
// Benches start it as a child process (spawnRelay) so that their own work never delays its timers.
import { connect, createServer, type Socket } from "node:net";

export interface LinkProfile {
  /** one-way delay, each direction (RTT = 2×) */
  delayMs: number;
  /** bandwidth cap, each direction */
  mbit: number;
}

/** Piece size on the simulated wire: a big read is not delivered as one lump after its whole serialization. */
const PIECE = 16 * 1024;

/**
 * One direction of the link. Each piece leaves when the link is free (a token bucket of one piece: the rate
 * is the wire's) and arrives one delay later. Arrival times are stamped as pieces come in, so the delay
 * overlaps: throughput is the rate, not one chunk per delay. Pieces arrive in order (FIFO, monotonic stamps).
 * The queue is bounded (a router's buffer): above it the sender is paused, so its TCP backs off.
 */
class Link {
  private queue: Array<{ data: Buffer; at: number }> = [];
  private queued = 0;
  private free = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private ended = false;
  bytes = 0;

  constructor(private readonly from: Socket, private readonly to: Socket, private readonly p: LinkProfile) {
    from.on("data", (chunk: Buffer) => this.push(chunk));
    from.on("end", () => {
      this.ended = true;
      this.pump();
    });
  }

  /** the link's buffer: two bandwidth-delay products, at least 256 KiB */
  private get limit(): number {
    return Math.max(256 * 1024, (2 * this.p.mbit * 1e6 * (2 * this.p.delayMs)) / 8 / 1000);
  }

  private push(chunk: Buffer): void {
    const now = performance.now();
    for (let o = 0; o < chunk.length; o += PIECE) {
      const data = chunk.subarray(o, o + PIECE);
      this.free = Math.max(now, this.free) + (data.length * 8) / (this.p.mbit * 1000);
      this.queue.push({ data, at: this.free + this.p.delayMs });
      this.queued += data.length;
    }
    this.bytes += chunk.length;
    if (this.queued > this.limit) this.from.pause();
    this.pump();
  }

  private pump(): void {
    if (this.timer) return;
    const now = performance.now();
    while (this.queue.length > 0 && (this.queue[0] as { at: number }).at <= now) {
      const { data } = this.queue.shift() as { data: Buffer };
      this.queued -= data.length;
      this.to.write(data);
    }
    if (this.queued < this.limit / 2 && this.from.isPaused()) this.from.resume();
    const head = this.queue[0];
    if (head) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.pump();
      }, Math.max(0, head.at - now));
    } else if (this.ended) {
      this.to.end();
    }
  }
}

export interface RelayStats {
  /** bytes client → server (the primary's uploads) */
  up: number;
  /** bytes server → client */
  down: number;
  connections: number;
}

export function startRelay(toPort: number, p: LinkProfile): Promise<{ port: number; stats(): RelayStats; close(): void }> {
  const links: Array<{ up: Link; down: Link }> = [];
  let closed = { up: 0, down: 0 };
  let connections = 0;
  const server = createServer((client) => {
    connections++;
    client.pause();
    const upstream = connect({ host: "127.0.0.1", port: toPort }, () => client.resume());
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const pair = { up: new Link(client, upstream, p), down: new Link(upstream, client, p) };
    links.push(pair);
    const done = () => {
      const i = links.indexOf(pair);
      if (i < 0) return;
      links.splice(i, 1);
      closed = { up: closed.up + pair.up.bytes, down: closed.down + pair.down.bytes };
    };
    for (const s of [client, upstream]) {
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
      s.on("close", done);
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const addr = server.address();
      resolve({
        port: typeof addr === "object" && addr ? addr.port : 0,
        stats: () => ({
          up: closed.up + links.reduce((n, l) => n + l.up.bytes, 0),
          down: closed.down + links.reduce((n, l) => n + l.down.bytes, 0),
          connections,
        }),
        close: () => server.close(),
      });
    });
  });
}

/** The relay as a child process: its port, and its byte counters on request. */
export interface RelayProcess {
  port: number;
  stats(): Promise<RelayStats>;
  stop(): Promise<void>;
}

export async function spawnRelay(toPort: number, p: LinkProfile): Promise<RelayProcess> {
  const proc = Bun.spawn([process.execPath, import.meta.path, "--to", String(toPort), "--delay-ms", String(p.delayMs), "--mbit", String(p.mbit)], {
    stdin: "pipe", stdout: "pipe", stderr: "inherit",
  });
  const lines: string[] = [];
  const waiters: Array<() => void> = [];
  void (async () => {
    let buf = "";
    for await (const chunk of proc.stdout as ReadableStream<Uint8Array>) {
      buf += new TextDecoder().decode(chunk);
      let i = buf.indexOf("\n");
      while (i >= 0) {
        lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
        i = buf.indexOf("\n");
      }
      for (const w of waiters.splice(0)) w();
    }
  })();
  const nextLine = async (): Promise<string> => {
    const deadline = Date.now() + 10_000;
    while (lines.length === 0) {
      if (proc.exitCode !== null || Date.now() > deadline) throw new Error("the WAN relay did not answer");
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 100);
      });
    }
    return lines.shift() as string;
  };
  const port = Number(/^listening (\d+)$/.exec(await nextLine())?.[1]);
  if (!port) throw new Error("the WAN relay did not start");
  return {
    port,
    async stats() {
      proc.stdin.write("stats\n");
      await proc.stdin.flush();
      const m = /^stats (\d+) (\d+) (\d+)$/.exec(await nextLine());
      if (!m) throw new Error("the WAN relay answered nonsense");
      return { up: Number(m[1]), down: Number(m[2]), connections: Number(m[3]) };
    },
    async stop() {
      proc.kill("SIGTERM");
      await proc.exited;
    },
  };
}

if (import.meta.main) {
  const arg = (flag: string, dflt: string) => {
    const i = process.argv.indexOf(flag);
    return i >= 0 ? (process.argv[i + 1] ?? dflt) : dflt;
  };
  const to = Number(arg("--to", "0"));
  if (!to) {
    console.error("usage: bun scripts/bench/wan-relay.ts --to PORT [--delay-ms 25] [--mbit 20]");
    process.exit(2);
  }
  const relay = await startRelay(to, { delayMs: Number(arg("--delay-ms", "25")), mbit: Number(arg("--mbit", "20")) });
  console.log(`listening ${relay.port}`);
  let buf = "";
  for await (const chunk of Bun.stdin.stream()) {
    buf += new TextDecoder().decode(chunk);
    let i = buf.indexOf("\n");
    while (i >= 0) {
      if (buf.slice(0, i).trim() === "stats") {
        const s = relay.stats();
        console.log(`stats ${s.up} ${s.down} ${s.connections}`);
      }
      buf = buf.slice(i + 1);
      i = buf.indexOf("\n");
    }
  }
  relay.close();
  process.exit(0);
}
