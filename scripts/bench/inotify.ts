// The inotify watcher's initial recursive add: time, RSS and the longest event-loop stall for N empty directories
// (snmp/<node>/<resource>, 100 resources a node), each size in a fresh process; then one `rrdtool update` deep in
// the tree must be reported. Raises fs.inotify.max_user_watches when it is too low (as root) and restores it.
// Usage: flock /tmp/rrdsync-heavy.lock bun scripts/bench/inotify.ts [--dirs 20000,200000]
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { InotifyTreeWatcher } from "../../src/watch/inotify.ts";
import { loopGapMeter } from "../../test/helpers/loop-gap.ts";
import { opt } from "./user.ts";

const LIMIT = "/proc/sys/fs/inotify/max_user_watches";
const T0 = 1_700_000_000;

const rssMiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? 0) / 1024;

async function child(root: string): Promise<void> {
  Bun.gc(true);
  const before = rssMiB();
  const meter = loopGapMeter();
  let seen = false;
  const probe = "snmp/0/r0/probe.rrd";
  const w = new InotifyTreeWatcher(root, (e) => {
    if (e.type === "path" && e.rel === probe) seen = true;
    else if (e.type === "error") console.error(e.message);
  });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  w.start();
  await w.ready;
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const gap = meter.stop();
  Bun.gc(true);
  const after = rssMiB();
  const heap = (await import("bun:jsc")).heapStats();
  const watches = w.watchCount();
  Bun.spawnSync(["rrdtool", "update", join(root, probe), `${T0 + 300}:1`]);
  for (let i = 0; i < 100 && !seen; i++) await Bun.sleep(20);
  await w.close();
  console.log(JSON.stringify({ watches, heapMiB: heap.heapSize / 1048576, ms, cpuS: (cpu.user + cpu.system) / 1e6, rssBefore: before, rssAfter: after, gapMs: gap, seen }));
}

async function main(): Promise<void> {
  const sizes = opt("--dirs", "20000,200000").split(",").map(Number);
  const base = existsSync("/dev/shm") ? "/dev/shm/rrdsync-bench-inotify" : "/tmp/rrdsync-bench-inotify";
  const oldLimit = readFileSync(LIMIT, "utf8").trim();
  try {
    for (const dirs of sizes) {
      rmSync(base, { recursive: true, force: true });
      const nodes = Math.ceil(dirs / 100);
      for (let n = 0; n < nodes; n++) for (let r = 0; r < 100 && n * 100 + r < dirs; r++) mkdirSync(join(base, "snmp", String(n), `r${r}`), { recursive: true });
      const total = dirs + nodes + 2; // + snmp/<node> + snmp + the root
      Bun.spawnSync(["rrdtool", "create", join(base, "snmp/0/r0/probe.rrd"), "--start", String(T0), "--step", "300", "DS:v:GAUGE:600:U:U", "RRA:AVERAGE:0.5:1:10"]);
      if (Number(oldLimit) < total + 1000) writeFileSync(LIMIT, String(2 * total));
      const p = Bun.spawnSync([process.execPath, import.meta.path, "--child", base], { stdout: "pipe", stderr: "inherit" });
      const r = JSON.parse(p.stdout.toString()) as { watches: number; heapMiB: number; ms: number; cpuS: number; rssBefore: number; rssAfter: number; gapMs: number; seen: boolean };
      console.log(
        `${total.toLocaleString("en")} directories: ${r.watches.toLocaleString("en")} watches in ${(r.ms / 1000).toFixed(2)} s ` +
          `(CPU ${r.cpuS.toFixed(2)} s), RSS ${r.rssBefore.toFixed(0)} → ${r.rssAfter.toFixed(0)} MiB (+${(r.rssAfter - r.rssBefore).toFixed(0)}; JS heap ${r.heapMiB.toFixed(0)} MiB), ` +
          `longest event-loop stall ${r.gapMs.toFixed(0)} ms, rrdtool update seen: ${r.seen}`,
      );
      if (!r.seen || r.watches !== total) process.exitCode = 1;
    }
  } finally {
    writeFileSync(LIMIT, oldLimit);
    rmSync(base, { recursive: true, force: true });
  }
}

const i = process.argv.indexOf("--child");
if (i >= 0) await child(process.argv[i + 1] as string);
else await main();
