// The daemon's /metrics endpoint: a small HTTP/1.1 server of its own over Bun.listen, because the one thing it must
// never do is take the descriptors replication needs. Bun.serve has no cap on connections: 2 × 10,000 idle ones
// put the daemon at 19,650 open files (its limit is 20,000 here) and the next batch failed with EMFILE spawning
// ssh. Here at most MAX_CONNECTIONS sockets are open at once (a scrape needs one; Prometheus keeps it a few seconds
// at most), a connection still open after IDLE_SECONDS is closed, a new one beyond the cap evicts the oldest that
// has not sent its request, and every answer closes its connection. One request per connection, GET or HEAD of /metrics only.
import type { Socket } from "bun";

/** Far below any descriptor limit (1,024 is the smallest in use), far above what scrapers need. */
export const MAX_CONNECTIONS = 32;
/** A scrape sends its request at once; a slot held longer than this by a silent client is taken back. */
export const IDLE_SECONDS = 5;
/** A request line and headers beyond this are not a scrape. */
const MAX_REQUEST_BYTES = 8192;

interface Conn {
  /** the request as received so far (latin1: one char per byte) */
  req: string;
  /** the answer, once there is one, and how much of it is written */
  out: Buffer | null;
  off: number;
  since: number;
}

export interface MetricsServer {
  port: number;
  /** connections open now (for tests and the curious) */
  open(): number;
  stop(): void;
}

export function listenForMetrics(listen: { host: string; port: number }, contentType: string, render: () => string): MetricsServer {
  const open = new Set<Socket<Conn>>();
  const answer = (s: Socket<Conn>, status: number, reason: string, body: string, headers: Record<string, string> = {}, head = false) => {
    const b = Buffer.from(body);
    const lines = [`HTTP/1.1 ${status} ${reason}`, `Content-Type: ${status === 200 ? contentType : "text/plain; charset=utf-8"}`, `Content-Length: ${b.length}`, "Connection: close",
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
    s.data.out = Buffer.concat([Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1"), head ? Buffer.alloc(0) : b]);
    s.data.off = 0;
    flush(s);
  };
  const flush = (s: Socket<Conn>) => {
    const c = s.data;
    if (c.out === null) return;
    while (c.off < c.out.length) {
      const n = s.write(c.out, c.off);
      if (n <= 0) return; // the rest when the socket drains
      c.off += n;
    }
    s.end();
  };
  const respond = (s: Socket<Conn>) => {
    const [method = "", target = ""] = (s.data.req.split(/\r?\n/, 1)[0] ?? "").split(" ");
    const path = target.split("?")[0];
    if (path !== "/metrics") return answer(s, 404, "Not Found", "not found: metrics are at /metrics\n");
    if (method !== "GET" && method !== "HEAD") return answer(s, 405, "Method Not Allowed", "method not allowed\n", { Allow: "GET, HEAD" });
    let text: string;
    try {
      text = render();
    } catch (e) {
      return answer(s, 500, "Internal Server Error", `metrics failed: ${(e as Error).message}\n`);
    }
    answer(s, 200, "OK", text, {}, method === "HEAD");
  };
  const server = Bun.listen<Conn>({
    hostname: listen.host,
    port: listen.port,
    socket: {
      open(s) {
        s.data = { req: "", out: null, off: 0, since: Date.now() };
        if (open.size >= MAX_CONNECTIONS) {
          // Room for this one: the oldest connection still silent goes (a flood of idle clients never locks a
          // scraper out for long); if every one is being answered, this one waits for none of them.
          let oldest: Socket<Conn> | null = null;
          for (const o of open) if (o.data.out === null && (oldest === null || o.data.since < oldest.data.since)) oldest = o;
          if (oldest === null) {
            s.terminate();
            return;
          }
          open.delete(oldest);
          oldest.terminate();
        }
        open.add(s);
      },
      data(s, chunk) {
        const c = s.data;
        if (c.out !== null || !open.has(s)) return;
        c.req += chunk.toString("latin1");
        if (/\r?\n\r?\n/.test(c.req)) respond(s);
        else if (c.req.length > MAX_REQUEST_BYTES) answer(s, 431, "Request Header Fields Too Large", "request too large\n");
      },
      drain(s) {
        flush(s);
      },
      close(s) {
        open.delete(s);
      },
      error(s) {
        open.delete(s);
      },
    },
  });
  // A scrape is answered in milliseconds: a connection still open after IDLE_SECONDS (silent, or not reading its
  // answer) is closed. One timer for all of them (a socket's own timeout did not fire before any data came).
  const sweep = setInterval(() => {
    const before = Date.now() - IDLE_SECONDS * 1000;
    for (const s of open) {
      if (s.data.since > before) continue;
      open.delete(s);
      s.terminate();
    }
  }, 1000);
  sweep.unref();
  return {
    port: server.port,
    open: () => open.size,
    stop() {
      clearInterval(sweep);
      for (const s of open) s.terminate();
      open.clear();
      server.stop(true);
    },
  };
}
