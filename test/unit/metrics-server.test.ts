// The /metrics server's bounds (issue 24, item 6): a cap on open connections (a new one evicts the oldest silent
// one), idle connections closed, one request per connection, only GET/HEAD /metrics.
import { afterEach, expect, setDefaultTimeout, test } from "bun:test";
import { connect, type Socket } from "node:net";
import { IDLE_SECONDS, listenForMetrics, MAX_CONNECTIONS, type MetricsServer } from "../../src/metrics/server.ts";

setDefaultTimeout(20_000);
let server: MetricsServer | null = null;
const clients: Socket[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.destroy();
  server?.stop();
  server = null;
});

const start = () => (server = listenForMetrics({ host: "127.0.0.1", port: 0 }, "text/plain; version=0.0.4", () => "up 1\n"));

function idle(port: number, n: number): Promise<void> {
  const opened: Array<Promise<void>> = [];
  for (let i = 0; i < n; i++) {
    const c = connect({ host: "127.0.0.1", port });
    c.on("error", () => {});
    clients.push(c);
    opened.push(new Promise((r) => c.once("connect", () => r())));
  }
  return Promise.all(opened).then(() => Bun.sleep(100));
}

/** A raw request, the whole answer back (the server closes after it). */
function raw(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    const c = connect({ host: "127.0.0.1", port }, () => c.write(text));
    let out = "";
    c.on("data", (d) => (out += d.toString("latin1")));
    c.on("close", () => resolve(out));
    c.on("error", () => resolve(out));
  });
}

test("at most MAX_CONNECTIONS open; a scrape still gets in (the oldest silent connection gives way)", async () => {
  const s = start();
  await idle(s.port, MAX_CONNECTIONS * 3);
  expect(s.open()).toBeLessThanOrEqual(MAX_CONNECTIONS);
  const res = await fetch(`http://127.0.0.1:${s.port}/metrics`);
  expect([res.status, await res.text(), res.headers.get("content-type")]).toEqual([200, "up 1\n", "text/plain; version=0.0.4"]);
});

test("one request per connection, closed after the answer; HEAD has no body; other paths and methods, an oversized request", async () => {
  const s = start();
  expect(await raw(s.port, "GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n")).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*Connection: close\r\n\r\nup 1\n$/);
  expect(await raw(s.port, "HEAD /metrics HTTP/1.1\r\n\r\n")).toMatch(/Content-Length: 5\r\n[\s\S]*\r\n\r\n$/);
  expect(await raw(s.port, "GET / HTTP/1.1\r\n\r\n")).toStartWith("HTTP/1.1 404 ");
  expect(await raw(s.port, "POST /metrics HTTP/1.1\r\n\r\n")).toContain("405 Method Not Allowed\r\n");
  expect(await raw(s.port, `GET /metrics HTTP/1.1\r\nX: ${"a".repeat(10_000)}`)).toStartWith("HTTP/1.1 431 ");
  expect(s.open()).toBe(0);
});

test(`a silent connection is closed after ${IDLE_SECONDS} s`, async () => {
  const s = start();
  await idle(s.port, 3);
  expect(s.open()).toBe(3);
  await Bun.sleep((IDLE_SECONDS + 1.5) * 1000);
  expect(s.open()).toBe(0);
});
