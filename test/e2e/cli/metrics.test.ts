// End to end, what monitoring reads, with the transport under test: the daemon's /metrics scraped over HTTP and
// every line checked against Prometheus's text-format grammar (other paths 404); --once's metrics_file replaced
// atomically (a reader polling it never sees half a file; its inode changes each run); replica lag after an
// outage in which RRDs were updated by the real `rrdtool update` (status, the metrics file, the daemon's endpoint).
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { e2eSuite } from "../../helpers/suite.ts";
import { runRrdsync, TRANSPORT, type World, writeTree } from "../../helpers/world.ts";

setDefaultTimeout(120_000);

const suite = e2eSuite("metrics");

async function freePort(): Promise<number> {
  return await new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => resolve(typeof a === "object" && a ? a.port : 0));
    });
  });
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const VALUE = /^(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|NaN|[+-]Inf)$/;
const LABELS = /^\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"(?:,(?=[a-zA-Z_]))?)*\}$/;

type Sample = { name: string; labels: Record<string, string>; value: number };

/**
 * Parses Prometheus's text exposition format strictly, throwing on any line that breaks the grammar: HELP and
 * TYPE once per family and before its samples, a family's samples together, metric and label names, label
 * values with only \\ \" \n escapes, float values, a final newline.
 */
function parseExposition(text: string): { samples: Sample[]; types: Map<string, string> } {
  if (!text.endsWith("\n")) throw new Error("the text does not end with a newline");
  const types = new Map<string, string>();
  const helped = new Set<string>();
  const done = new Set<string>();
  let current: string | null = null;
  const samples: Sample[] = [];
  for (const line of text.slice(0, -1).split("\n")) {
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta as unknown as [string, string, string, string];
      if (!NAME.test(name)) throw new Error(`bad metric name in ${JSON.stringify(line)}`);
      if (done.has(name) || (current !== null && current !== name)) done.add(current ?? name);
      if (done.has(name)) throw new Error(`${name}: HELP/TYPE after its samples, or its family split: ${line}`);
      if (kind === "HELP") {
        if (helped.has(name)) throw new Error(`${name}: HELP twice`);
        if (/\\(?![\\n])/.test(rest)) throw new Error(`${name}: bad escape in HELP`);
        helped.add(name);
      } else {
        if (types.has(name)) throw new Error(`${name}: TYPE twice`);
        if (!["counter", "gauge", "histogram", "summary", "untyped"].includes(rest)) throw new Error(`${name}: bad type ${rest}`);
        types.set(name, rest);
      }
      current = name;
      continue;
    }
    if (line.startsWith("#")) continue; // a comment
    if (line.trim() === "") throw new Error("an empty line");
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)(?: (-?\d+))?$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${JSON.stringify(line)}`);
    const [, name, labelText, value] = m as unknown as [string, string, string | undefined, string];
    if (labelText !== undefined && !LABELS.test(labelText)) throw new Error(`bad labels: ${JSON.stringify(line)}`);
    if (!VALUE.test(value)) throw new Error(`bad value: ${JSON.stringify(line)}`);
    if (!types.has(name)) throw new Error(`${name}: a sample before its TYPE`);
    if (name !== current) {
      if (current !== null) done.add(current);
      if (done.has(name)) throw new Error(`${name}: its samples are not together`);
      current = name;
    }
    const labels: Record<string, string> = {};
    for (const l of (labelText ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1] as string] = (l[2] as string).replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    }
    samples.push({ name, labels, value: Number(value) });
  }
  return { samples, types };
}

/** The rrdsync_ naming rules on top of the grammar: the prefix, _total exactly for counters, base units. */
function checkNaming(types: Map<string, string>): void {
  for (const [name, type] of types) {
    expect(name.startsWith("rrdsync_")).toBe(true);
    expect(name.endsWith("_total")).toBe(type === "counter");
    expect(/_(ms|milliseconds|kb|mb|minutes|hours)(_|$)/.test(name)).toBe(false);
  }
}

const value = (samples: Sample[], name: string, target?: string) =>
  samples.find((s) => s.name === name && (target === undefined || s.labels.target === target))?.value;

function rrdtool(cwd: string, ...args: string[]): void {
  const r = Bun.spawnSync(["rrdtool", ...args], { cwd });
  if (r.exitCode !== 0) throw new Error(`rrdtool ${args.join(" ")}: ${r.stderr.toString()}`);
}

describe(`metrics (${TRANSPORT})`, () => {
  test("--watch serves /metrics: every line in the text format, the counters move with the work; every other path is 404", async () => {
    const w = suite.world();
    const port = await freePort();
    const local = join(w.dir, 'lo"c\\al dest'); // a target whose label value needs escaping
    writeTree(w.src, { "a.txt": "a\n", "n/b.txt": "b\n" });
    const textfile = join(w.dir, "daemon.prom");
    const cfg = w.writeConfig({ metrics_listen: `127.0.0.1:${port}`, metrics_file: textfile, debounce_time: 0.2, targets: [{ name: "local", remote_dest_dir: local, state_file: join(w.dir, "state", "local.db") }] });
    const d = suite.daemon(["--config", cfg]);
    await d.waitFor(() => d.events.filter((e) => e.event === "pass").length === 2, 30_000, "both targets' initial passes");
    const url = `http://127.0.0.1:${port}`;
    const res = await fetch(`${url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    const first = parseExposition(await res.text());
    checkNaming(first.types);
    const targets = [...new Set(first.samples.filter((s) => s.labels.target !== undefined).map((s) => s.labels.target))];
    expect(targets).toHaveLength(2);
    expect(targets).toContain(local);
    const main = targets.find((t) => t !== local) as string;
    for (const name of [
      "rrdsync_files_transferred_total", "rrdsync_synced_file_bytes_total", "rrdsync_sent_bytes_total", "rrdsync_files_deleted_total", "rrdsync_files_renamed_total",
      "rrdsync_files_repaired_total", "rrdsync_errors_total", "rrdsync_pending_files", "rrdsync_last_success_timestamp_seconds",
      "rrdsync_target_up", "rrdsync_replica_lag_max_seconds", "rrdsync_replica_lag_median_seconds", "rrdsync_pass_duration_seconds", "rrdsync_tracked_files",
    ]) {
      expect([name, value(first.samples, name, main) !== undefined, value(first.samples, name, local) !== undefined]).toEqual([name, true, true]);
    }
    expect(value(first.samples, "rrdsync_queue_overflows_total")).toBe(0);
    expect(value(first.samples, "rrdsync_inotify_watches")).toBe(2); // the source and n/
    expect(value(first.samples, "rrdsync_files_transferred_total", main)).toBe(2);
    expect(value(first.samples, "rrdsync_synced_file_bytes_total", main)).toBe(4);
    // bytes on the wire apart from file bytes: rsync's own count (file list and protocol too), or SFTP's writes
    const wire0 = value(first.samples, "rrdsync_sent_bytes_total", main) as number;
    expect(wire0).toBeGreaterThan(0);
    expect(value(first.samples, "rrdsync_target_up", main)).toBe(1);
    expect(Math.abs((value(first.samples, "rrdsync_last_success_timestamp_seconds", main) as number) - Date.now() / 1000)).toBeLessThan(60);

    writeTree(w.src, { "c.txt": "c, three\n" });
    await d.waitFor((e) => e.event === "change" && e.path === "c.txt", 20_000, "c.txt sent");
    let second = parseExposition(await (await fetch(`${url}/metrics`)).text());
    for (let i = 0; i < 50 && value(second.samples, "rrdsync_files_transferred_total", main) !== 3; i++) {
      await Bun.sleep(100);
      second = parseExposition(await (await fetch(`${url}/metrics`)).text());
    }
    expect(value(second.samples, "rrdsync_files_transferred_total", main)).toBe(3);
    expect(value(second.samples, "rrdsync_synced_file_bytes_total", main)).toBe(13);
    expect(value(second.samples, "rrdsync_sent_bytes_total", main) as number).toBeGreaterThan(wire0);

    for (const path of ["/", "/metrics/", "/metricsx", "/status", "/metrics/../x"]) expect((await fetch(`${url}${path}`)).status).toBe(404);
    expect((await fetch(`${url}/metrics`, { method: "POST" })).status).toBe(405);
    expect(await d.stop()).toBe(0);
    // The daemon keeps metrics_file too (every 15 s, and at stop): the same text as the endpoint.
    const file = parseExposition(await Bun.file(textfile).text());
    expect(value(file.samples, "rrdsync_files_transferred_total", main)).toBe(3);
    // written at stop, after the watcher closed: still the count the daemon watched (it once said 0 here)
    expect(value(file.samples, "rrdsync_inotify_watches")).toBe(2);
    expect(file.types.has("rrdsync_queue_overflows_total")).toBe(true);
  });

  test("a metrics_listen that cannot be used stops the daemon with a message naming the key (exit 2)", async () => {
    const w = suite.world();
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
    const port = (blocker.address() as { port: number }).port;
    try {
      const r = await runRrdsync(["--watch", "--config", w.writeConfig({ metrics_listen: `127.0.0.1:${port}` })], { timeoutMs: 30_000 });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`metrics_listen 127.0.0.1:${port}: cannot listen: the address is in use`);
    } finally {
      blocker.close();
    }
    const bad = await runRrdsync(["--once", "--config", w.writeConfig({ metrics_listen: "9717" })]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('metrics_listen: expected "HOST:PORT" like "127.0.0.1:9717", got "9717"');
  });

  test("--once writes metrics_file by rename: a reader polling it never sees half a file, and the counters only grow", async () => {
    const w = suite.world();
    const dir = join(w.dir, "textfile");
    mkdirSync(dir);
    const file = join(dir, "rrdsync.prom");
    const cfg = w.writeConfig({ metrics_file: file });
    const stop = join(w.dir, "stop-reader");
    // A separate process reading as fast as it can, as node_exporter would (only worse).
    const reader = Bun.spawn([process.execPath, "-e", `
      const fs = require("node:fs");
      let reads = 0, bad = [], seen = false;
      while (!fs.existsSync(${JSON.stringify(stop)})) {
        let t;
        try { t = fs.readFileSync(${JSON.stringify(file)}, "utf8"); } catch (e) { if (seen) bad.push("gone: " + e.code); continue; }
        seen = true; reads++;
        if (!t.endsWith("\\n") || !t.includes("rrdsync_verify_drift_files") && !t.includes("rrdsync_last_pass_timestamp_seconds")) bad.push(JSON.stringify(t.slice(-80)));
      }
      console.log(JSON.stringify({ reads, bad: bad.slice(0, 5), nbad: bad.length }));
    `], { stdout: "pipe", stderr: "inherit" });
    let replaced = 0;
    let lastIno: bigint | null = null;
    let sent = 0;
    try {
      for (let i = 0; i < 12; i++) {
        writeTree(w.src, { [`f${i}.txt`]: `${i}\n` });
        sent++;
        const r = await runRrdsync(["--once", "--config", cfg]);
        expect(r.code).toBe(0);
        // The new file is made while the old one exists, so a replaced file always has another inode than the one
        // before it (older numbers may come back: the file system reuses freed inodes).
        const ino = statSync(file, { bigint: true }).ino;
        if (lastIno !== null && ino !== lastIno) replaced++;
        lastIno = ino;
        const { samples, types } = parseExposition(await Bun.file(file).text());
        checkNaming(types);
        expect(value(samples, "rrdsync_files_transferred_total")).toBe(sent); // across runs: a counter never resets
        expect(types.has("rrdsync_queue_overflows_total")).toBe(false); // daemon-only families are not in --once's file
      }
    } catch (e) {
      reader.kill(); // a busy loop must never outlive a failed test
      throw e;
    }
    writeFileSync(stop, "");
    const result = JSON.parse(await new Response(reader.stdout).text());
    expect(result.nbad).toBe(0);
    expect(result.reads).toBeGreaterThan(12);
    expect(replaced).toBe(11); // replaced each run, never rewritten in place
    expect(existsSync(`${file}.tmp`)).toBe(false);
  });

  test("replica lag: an outage while rrdtool updates RRDs makes it grow (status, metrics_file); after recovery it is 0", async () => {
    const w = suite.world();
    for (const n of ["a", "b", "c"]) rrdtool(w.src, "create", `${n}.rrd`, "--start", "1700000000", "--step", "300", "DS:x:GAUGE:600:U:U", "RRA:AVERAGE:0.5:1:10");
    const file = join(w.dir, "rrdsync.prom");
    const cfg = w.writeConfig({ metrics_file: file });
    const lagOf = async () => JSON.parse((await runRrdsync(["status", "--json", "--config", cfg])).stdout).lag;
    const prom = async () => parseExposition(await Bun.file(file).text()).samples;
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    expect(await lagOf()).toEqual({ rrds: 3, behind: 0, maxSeconds: 0, medianSeconds: 0, estimated: 0 });

    await suite.sshd().stop();
    rrdtool(w.src, "update", "a.rrd", "1700000300:1", "1700000600:2");
    rrdtool(w.src, "update", "b.rrd", "1700000300:5", "1700000600:6");
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(1);
    expect(await lagOf()).toEqual({ rrds: 3, behind: 2, maxSeconds: 600, medianSeconds: 600, estimated: 0 });
    let m = await prom();
    expect([value(m, "rrdsync_replica_lag_max_seconds"), value(m, "rrdsync_replica_lag_median_seconds"), value(m, "rrdsync_replica_behind_rrds"), value(m, "rrdsync_target_up")]).toEqual([600, 600, 2, 0]);
    expect(value(m, "rrdsync_pending_files")).toBe(2);

    rrdtool(w.src, "update", "a.rrd", "1700000900:3", "1700001200:4");
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(1);
    expect(await lagOf()).toEqual({ rrds: 3, behind: 2, maxSeconds: 1200, medianSeconds: 600, estimated: 0 });
    const status = await runRrdsync(["status", "--config", cfg]);
    expect(status.stdout).toMatch(/replica lag +max 20 min, median 10 min \(2 of 3 RRDs behind\)\n/);
    expect(status.stdout).toMatch(/pending +2: "a\.rrd" \(\d+ s\), "b\.rrd" \(\d+ s\)\n/);

    await suite.sshd().start();
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    expect(await lagOf()).toEqual({ rrds: 3, behind: 0, maxSeconds: 0, medianSeconds: 0, estimated: 0 });
    m = await prom();
    expect([value(m, "rrdsync_replica_lag_max_seconds"), value(m, "rrdsync_target_up"), value(m, "rrdsync_pending_files")]).toEqual([0, 1, 0]);
  });

  test("replica lag in the daemon: /metrics shows it grow while the standby is down, and fall to 0 when it is back", async () => {
    const w = suite.world();
    for (const n of ["a", "b", "c"]) rrdtool(w.src, "create", `${n}.rrd`, "--start", "1700000000", "--step", "300", "DS:x:GAUGE:600:U:U", "RRA:AVERAGE:0.5:1:10");
    const port = await freePort();
    // rescan_interval 1: the full passes find rrdtool's writes whatever the watcher sees of them
    const cfg = w.writeConfig({ metrics_listen: `127.0.0.1:${port}`, debounce_time: 0.2, rescan_interval: 1, retry: { initial: 0.2, max: 1 } });
    const d = suite.daemon(["--config", cfg]);
    await d.waitFor((e) => e.event === "pass", 30_000, "the initial pass");
    const scrape = async () => parseExposition(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).samples;
    const until = async (what: string, ok: (s: Sample[]) => boolean) => {
      const deadline = Date.now() + 30_000;
      let last: Sample[] = [];
      while (Date.now() < deadline) {
        last = await scrape();
        if (ok(last)) return last;
        await Bun.sleep(200);
      }
      throw new Error(`not within 30 s: ${what}; last: ${JSON.stringify(last.filter((s) => /lag|up|pending/.test(s.name)))}`);
    };
    await until("lag 0 after the first sync", (s) => value(s, "rrdsync_replica_lag_max_seconds") === 0 && value(s, "rrdsync_tracked_files") === 3);
    await suite.sshd().stop();
    rrdtool(w.src, "update", "a.rrd", "1700000300:1", "1700000600:2", "1700000900:3");
    const down = await until("lag 900 while the standby is down", (s) => value(s, "rrdsync_replica_lag_max_seconds") === 900 && value(s, "rrdsync_target_up") === 0);
    expect(value(down, "rrdsync_replica_behind_rrds")).toBe(1);
    expect(value(down, "rrdsync_replica_lag_median_seconds")).toBe(0);
    await suite.sshd().start();
    const back = await until("lag 0 once it is back", (s) => value(s, "rrdsync_replica_lag_max_seconds") === 0 && value(s, "rrdsync_target_up") === 1);
    expect(value(back, "rrdsync_pending_files")).toBe(0);
    expect(await d.stop()).toBe(0);
  });
});

export type { World };
