// The soak (issue 25): production is a river, not a burst. A paced writer of real `rrdtool update`s (several
// `rrdtool -` processes fed update lines; each RRD once per round, its timestamp one step further each round) runs
// against an OpenNMS-shaped tree while each replicator keeps the standby (the loopback sshd) in sync, one after the
// other in the same run: rrdsync --watch, `rsync -a` back to back in a loop, lsyncd 2.2.3 (default.rsync, delay 1).
// Per minute: replica lag p50/p95/max (a random sample of RRDs each second: the replica's header against what the
// writer's update had confirmed and when), CPU seconds per update on both sides (primary: the replicator and its
// children, rsync and ssh; standby: sshd and the rsync servers), the daemon's RSS; and the state DB's and change
// log's growth per hour of load.
//
//   bun run bench:soak [--rrds 20000] [--rate 1000] [--minutes 10] [--tools rrdsync,rsync,lsyncd] [--writers 2]
//                      [--sample 2000] [--debounce 1] [--set key=json ...] [--bin dist/rrdsync] [--json FILE]
// Take the heavy lock: flock /tmp/rrdsync-heavy.lock bun run bench:soak ...
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { startSshd } from "../../test/helpers/sshd.ts";
import { probeRrd } from "../../src/track/rrd.ts";
import { generateTree, seededRandom } from "./generate-tree.ts";
import { benchSshCommand, benchUser, destRootFor, giveTo, opt, rrdsyncBin, writeBenchConfig } from "./user.ts";

const RRDS = Number(opt("--rrds", "20000"));
const RATE = Number(opt("--rate", "1000"));
const MINUTES = Number(opt("--minutes", "10"));
const TOOLS = opt("--tools", "rrdsync,rsync,lsyncd").split(",").filter(Boolean);
const WRITERS = Number(opt("--writers", "2"));
const SAMPLE = Number(opt("--sample", "2000"));
const DEBOUNCE = Number(opt("--debounce", "1"));
const JSON_OUT = opt("--json", "");
const STEP = 300;
const T0 = 1_700_000_000; // the generated RRDs' last update

/** --set change_tracking.rrd_updates="every" (repeatable): config keys for rrdsync's phase, e.g. the old behaviour */
function sets(): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== "--set") continue;
    const [k, v] = (a[i + 1] ?? "").split(/=(.*)/s) as [string, string];
    const path = k.split(".");
    let o = out as Record<string, unknown>;
    for (const p of path.slice(0, -1)) o = (o[p] ??= {}) as Record<string, unknown>;
    o[path.at(-1) as string] = JSON.parse(v);
  }
  return out;
}

// ---- the tree ----------------------------------------------------------------------------------------------------
const root = resolve(opt("--work", "/var/tmp/rrdsync-soak"));
const pristine = join(root, `tree-${RRDS}`);
if (!existsSync(join(pristine, ".complete"))) {
  rmSync(pristine, { recursive: true, force: true });
  const t = performance.now();
  const g = await generateTree(pristine, { files: Math.ceil(RRDS * 1.25), seed: 1 });
  writeFileSync(join(pristine, "rrds.txt"), g.rrds.slice(0, RRDS).join("\n"));
  writeFileSync(join(pristine, ".complete"), "");
  console.log(`generated ${g.files} files (${(g.bytes / 1048576).toFixed(0)} MiB) in ${((performance.now() - t) / 1000).toFixed(0)} s`);
}
const rrdList = readFileSync(join(pristine, "rrds.txt"), "utf8").split("\n").filter(Boolean);
const N = rrdList.length;

// ---- process CPU from /proc ----------------------------------------------------------------------------------
const TICK = 100; // USER_HZ
function procs(): Map<number, { ppid: number; cpu: number; self: number; comm: string }> {
  const out = new Map<number, { ppid: number; cpu: number; self: number; comm: string }>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = readFileSync(`/proc/${d}/stat`, "latin1");
      const close = s.lastIndexOf(")");
      const f = s.slice(close + 2).split(" ");
      // utime stime cutime cstime: fields 14–17 (index 11–14 after the comm)
      out.set(Number(d), { ppid: Number(f[1]), cpu: (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / TICK, self: (Number(f[11]) + Number(f[12])) / TICK, comm: s.slice(s.indexOf("(") + 1, close) });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
/** CPU seconds of a process and its live descendants (exited ones are in their parents' c-times once reaped). */
function treeCpu(rootPid: number, all = procs()): number {
  let sum = 0;
  const todo = [rootPid];
  while (todo.length > 0) {
    const p = todo.pop() as number;
    const me = all.get(p);
    if (!me) continue;
    sum += me.cpu;
    for (const [pid, x] of all) if (x.ppid === p) todo.push(pid);
  }
  return sum;
}
const sshdPid = () => {
  for (const [pid, x] of procs()) if (x.comm === "sshd" && readFileSync(`/proc/${pid}/cmdline`, "latin1").includes(sshdCfg)) return pid;
  return null;
};
const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024;

// ---- the standby ----------------------------------------------------------------------------------------------
const user = benchUser();
const sshd = await startSshd(user ? { user: user.name } : {});
const sshdCfg = join(sshd.dir, "sshd_config");
const destRoot = destRootFor("rrdsync-soak", root);

// ---- the writer: `rrdtool -` processes, paced, each OK answer timed ---------------------------------------------
interface Writer {
  proc: ReturnType<typeof Bun.spawn>;
  inflight: number[]; // RRD indexes written, awaiting their OK, in order
  done: Promise<void>;
}
class PacedWriter {
  private writers: Writer[] = [];
  /** per RRD: the newest round rrdtool confirmed (-1: none) */
  readonly acked = new Int32Array(N).fill(-1);
  /** per round: when each RRD's update of that round was confirmed (ms) */
  readonly ackAt: Float64Array[] = [];
  acks = 0;
  errors: string[] = [];
  private next = 0;
  private stopped = false;

  constructor(private readonly src: string, private readonly order: number[]) {}

  start(): void {
    for (let k = 0; k < WRITERS; k++) {
      const proc = Bun.spawn(["rrdtool", "-"], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
      const w: Writer = { proc, inflight: [], done: Promise.resolve() };
      w.done = (async () => {
        let rest = "";
        for await (const chunk of proc.stdout as ReadableStream<Uint8Array>) {
          rest += Buffer.from(chunk).toString("latin1");
          const lines = rest.split("\n");
          rest = lines.pop() ?? "";
          const now = Date.now();
          for (const l of lines) {
            if (!l.startsWith("OK") && !l.startsWith("ERROR")) continue;
            const i = w.inflight.shift() as number;
            if (l.startsWith("ERROR")) {
              if (this.errors.length < 5) this.errors.push(l);
              continue;
            }
            const round = (this.acked[i] as number) + 1;
            this.acked[i] = round;
            (this.ackAt[round] ??= new Float64Array(N))[i] = now;
            this.acks++;
          }
        }
      })();
      void new Response(proc.stderr).text();
      this.writers.push(w);
    }
  }

  /** Writes what the rate allows by now (no more than 400 unanswered lines per rrdtool: the achieved rate says so). */
  pace(elapsedMs: number): void {
    const target = Math.floor((RATE * elapsedMs) / 1000);
    while (this.next < target && !this.stopped) {
      const w = this.writers[this.next % this.writers.length] as Writer;
      if (w.inflight.length >= 400) break;
      const k = this.next % N;
      const round = Math.floor(this.next / N);
      const i = this.order[k] as number;
      w.inflight.push(i);
      (w.proc.stdin as import("bun").FileSink).write(`update ${join(this.src, rrdList[i] as string)} ${T0 + STEP * (round + 1)}:${(round + 1) * 1000 + (i % 997)}\n`);
      this.next++;
    }
    for (const w of this.writers) (w.proc.stdin as import("bun").FileSink).flush();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const w of this.writers) await (w.proc.stdin as import("bun").FileSink).end();
    await Promise.all(this.writers.map((w) => w.done));
  }
}

/** The replica's last update of one RRD (seconds), or null (absent, or caught mid-rename). */
const headBuf = Buffer.alloc(4096);
function replicaLast(path: string): number | null {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    return null;
  }
  try {
    const n = readSync(fd, headBuf, 0, headBuf.length, 0);
    const p = probeRrd(headBuf.subarray(0, n));
    return p.kind === "rrd" ? Math.floor(p.header.lastUpdate) : null;
  } finally {
    closeSync(fd);
  }
}

const pct = (xs: number[], q: number) => {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
};

interface Minute {
  minute: number;
  p50: number;
  p95: number;
  max: number;
  updates: number;
  primaryCpu: number;
  standbyCpu: number;
  rss: number | null;
}
interface PhaseResult {
  tool: string;
  minutes: Minute[];
  achievedRate: number;
  updates: number;
  lag: { p50: number; p95: number; max: number };
  cpuPerUpdateMs: { primary: number; standby: number; self: number };
  rss: number[];
  growth?: { dbBytesPerUpdate: number; logBytesPerUpdate: number; perHourMiB: number; batches: number; filesPerBatch: number };
  extra: string;
}

/** One replicator under the paced load for MINUTES. */
async function phase(tool: string): Promise<PhaseResult> {
  // "rrdsync:/path/to/checkout": another rrdsync (an older commit's checkout), run from its source beside this one
  const checkout = tool.startsWith("rrdsync:") ? tool.slice(8) : null;
  const work = join(root, `run-${tool.replace(/[^\w.-]+/g, "_")}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const src = join(work, "src");
  // a fresh copy of the tree (its RRDs at T0) for every tool: the same load from the same start
  const cp = Bun.spawnSync(["cp", "-a", pristine, src]);
  if (cp.exitCode !== 0) throw new Error(`cp: ${cp.stderr.toString()}`);
  const dest = join(destRoot, tool.replace(/[^\w.-]+/g, "_"));
  rmSync(destRoot, { recursive: true, force: true });
  mkdirSync(destRoot, { recursive: true });
  giveTo(user, destRoot);
  const remote = `${sshd.user}@127.0.0.1:${dest}/`;
  let primaryPid: number;
  let stopTool: () => Promise<void>;
  let extra = () => "";
  let growth: () => PhaseResult["growth"] = () => undefined;
  const ssh = benchSshCommand(sshd);

  if (tool === "rrdsync" || checkout !== null) {
    const cfg = writeBenchConfig(work, {
      src, dest, sshd, extra: { debounce_time: DEBOUNCE, rescan_interval: 0, ...sets() },
    });
    const self = checkout !== null ? [process.execPath, join(resolve(checkout), "src/main.ts")] : rrdsyncBin();
    const first = Bun.spawnSync([...self, "--once", "--quiet", "--config", cfg]);
    if (first.exitCode !== 0) throw new Error(`first sync: ${first.stderr.toString()}`);
    // SOAK_PROFILE=1: the daemon from source under Bun's CPU profiler (a .cpuprofile in the run's directory at stop)
    const bin = process.env.SOAK_PROFILE ? [process.execPath, "--cpu-prof", "--cpu-prof-dir", work, resolve(import.meta.dir, "../../src/main.ts")] : self;
    const d = Bun.spawn([...bin, "--watch", "--json", "--config", cfg], { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
    primaryPid = d.pid;
    let ready = false;
    let batches = 0;
    let batchFiles = 0;
    void (async () => {
      let rest = "";
      for await (const chunk of d.stdout as ReadableStream<Uint8Array>) {
        rest += Buffer.from(chunk).toString("utf8");
        const lines = rest.split("\n");
        rest = lines.pop() ?? "";
        for (const l of lines) {
          if (l.includes('"event":"pass"')) ready = true;
          const m = /"event":"batch","files":(\d+)/.exec(l);
          if (m) {
            batches++;
            batchFiles += Number(m[1]);
          }
        }
      }
    })();
    void new Response(d.stderr).text();
    const t = Date.now();
    while (!ready) {
      if (Date.now() - t > 600_000) throw new Error("the daemon's initial pass did not finish");
      await Bun.sleep(100);
    }
    const files = () => {
      const size = (p: string) => (existsSync(p) ? statSync(p).size : 0);
      const log = readdirSync(work).filter((n) => n.startsWith("change_log")).reduce((s, n) => s + size(join(work, n)), 0);
      return { db: size(join(work, "state.db")) + size(join(work, "state.db-wal")), log };
    };
    let at0 = files();
    let acks0 = 0;
    let batches0 = 0;
    let files0 = 0;
    markGrowth = () => {
      at0 = files();
      acks0 = writer?.acks ?? 0;
      batches0 = batches;
      files0 = batchFiles;
    };
    growth = () => {
      const at1 = files();
      const n = Math.max(1, (writer?.acks ?? 0) - acks0);
      const db = (at1.db - at0.db) / n;
      const log = (at1.log - at0.log) / n;
      return { dbBytesPerUpdate: db, logBytesPerUpdate: log, perHourMiB: ((db + log) * RATE * 3600) / 1048576, batches: batches - batches0, filesPerBatch: (batchFiles - files0) / Math.max(1, batches - batches0) };
    };
    stopTool = async () => {
      d.kill("SIGTERM");
      await d.exited;
    };
    extra = () => `state DB ${(files().db / 1048576).toFixed(1)} MiB, change log ${(files().log / 1048576).toFixed(2)} MiB`;
  } else if (tool === "rsync") {
    const first = Bun.spawnSync(["rsync", "-a", "-e", ssh, `${src}/`, remote]);
    if (first.exitCode !== 0) throw new Error(`rsync: ${first.stderr.toString()}`);
    // the loop as a shell, so its rsync and ssh children are one tree to account
    const loop = Bun.spawn(["sh", "-c", `while :; do rsync -a -e '${ssh}' '${src}/' '${remote}' || sleep 1; done`], { stdout: "ignore", stderr: "ignore" });
    primaryPid = loop.pid;
    stopTool = async () => {
      loop.kill("SIGTERM");
      await loop.exited;
    };
  } else if (tool === "lsyncd") {
    const first = Bun.spawnSync(["rsync", "-a", "-e", ssh, `${src}/`, remote]);
    if (first.exitCode !== 0) throw new Error(`rsync: ${first.stderr.toString()}`);
    const conf = join(work, "lsyncd.conf.lua");
    const logf = join(work, "lsyncd.log");
    const q = (s: string) => JSON.stringify(s);
    writeFileSync(conf, `settings { nodaemon = true, logfile = ${q(logf)}, insist = true, maxProcesses = 1 }
sync { default.rsync, source = ${q(src)}, target = ${q(remote)}, delay = 1,
  rsync = { archive = true, rsh = ${q(ssh)} } }
`);
    const l = Bun.spawn(["lsyncd", conf], { stdout: "ignore", stderr: "ignore" });
    primaryPid = l.pid;
    const t = Date.now();
    while (!(existsSync(logf) && /Startup of .* finished/.test(readFileSync(logf, "utf8")))) {
      if (Date.now() - t > 600_000) throw new Error("lsyncd did not finish its startup");
      await Bun.sleep(200);
    }
    stopTool = async () => {
      l.kill("SIGTERM");
      await l.exited;
    };
  } else throw new Error(`unknown tool ${tool}`);

  // ---- the load, measured minute by minute -------------------------------------------------------------------
  const rand = seededRandom(7);
  const order = Array.from({ length: N }, (_, i) => i);
  for (let i = N - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j] as number, order[i] as number];
  }
  writer = new PacedWriter(src, order);
  const sPid = sshdPid();
  if (sPid === null) throw new Error("the sshd's process was not found");
  const cpuNow = () => {
    const all = procs();
    return { primary: treeCpu(primaryPid, all), standby: treeCpu(sPid, all), self: all.get(primaryPid)?.self ?? 0 };
  };
  const minutes: Minute[] = [];
  const allLags: number[] = [];
  let lags: number[] = [];
  const start = Date.now();
  let cpu0 = cpuNow();
  const cpuStart = cpu0;
  let acks0 = 0;
  let nextSample = start + 1000;
  let nextMinute = start + 60_000;
  writer.start();
  while (Date.now() - start < MINUTES * 60_000) {
    writer.pace(Date.now() - start);
    const now = Date.now();
    if (now >= nextSample) {
      nextSample += 1000;
      for (let s = 0; s < Math.min(SAMPLE, N); s++) {
        const i = Math.floor(rand() * N);
        const a = writer.acked[i] as number;
        if (a < 0) continue; // not updated yet
        const last = replicaLast(join(dest, rrdList[i] as string));
        if (last === null) continue;
        const have = Math.round((last - T0) / STEP) - 1; // the newest round the replica holds (-1: none)
        const lag = have >= a ? 0 : (now - ((writer.ackAt[have + 1] as Float64Array)[i] as number)) / 1000;
        lags.push(lag);
      }
    }
    if (now >= nextMinute) {
      nextMinute += 60_000;
      const c = cpuNow();
      const n = writer.acks - acks0;
      minutes.push({
        minute: minutes.length + 1, p50: pct(lags, 0.5), p95: pct(lags, 0.95), max: pct(lags, 1), updates: n,
        primaryCpu: c.primary - cpu0.primary, standbyCpu: c.standby - cpu0.standby, rss: tool.startsWith("rrdsync") ? rssMiB(primaryPid) : null,
      });
      const m = minutes.at(-1) as Minute;
      console.log(`  ${tool} minute ${m.minute}: ${n} updates (${(n / 60).toFixed(0)}/s), lag p50 ${m.p50.toFixed(2)} p95 ${m.p95.toFixed(2)} max ${m.max.toFixed(2)} s, CPU ${m.primaryCpu.toFixed(1)} / ${m.standbyCpu.toFixed(1)} s${m.rss !== null ? `, RSS ${m.rss.toFixed(0)} MiB` : ""}`);
      if (m.minute === 1) markGrowth(); // growth after the first minute (the WAL reaches its size)
      allLags.push(...lags);
      lags = [];
      cpu0 = c;
      acks0 = writer.acks;
    }
    await Bun.sleep(10);
  }
  const updates = writer.acks;
  const elapsed = (Date.now() - start) / 1000;
  const cpuEnd = cpuNow();
  const g = growth();
  const extraText = extra();
  await writer.stop();
  await stopTool();
  if (writer.errors.length > 0) console.log(`  rrdtool errors: ${writer.errors.join("; ")}`);
  allLags.push(...lags);
  return {
    tool, minutes, achievedRate: updates / elapsed, updates,
    lag: { p50: pct(allLags, 0.5), p95: pct(allLags, 0.95), max: pct(allLags, 1) },
    cpuPerUpdateMs: { primary: ((cpuEnd.primary - cpuStart.primary) * 1000) / updates, standby: ((cpuEnd.standby - cpuStart.standby) * 1000) / updates, self: ((cpuEnd.self - cpuStart.self) * 1000) / updates },
    rss: minutes.flatMap((m) => (m.rss === null ? [] : [m.rss])), growth: g, extra: extraText,
  };
}

let writer: PacedWriter | null = null;
let markGrowth = () => {};
const load = (f: string) => (existsSync(f) ? readFileSync(f, "utf8").trim().split(/\s+/).slice(0, 3).join(" ") : "?");
console.log(`soak: ${N} RRDs, ${RATE} updates/s target, ${MINUTES} min per tool, ${WRITERS} rrdtool writers, tools ${TOOLS.join(", ")}; load before ${load("/proc/loadavg")}`);
const results: PhaseResult[] = [];
try {
  for (const tool of TOOLS) {
    const r = await phase(tool);
    results.push(r);
    console.log(`${tool}: ${r.updates} updates, achieved ${r.achievedRate.toFixed(0)}/s; lag p50 ${r.lag.p50.toFixed(2)} p95 ${r.lag.p95.toFixed(2)} max ${r.lag.max.toFixed(2)} s; CPU per update ${r.cpuPerUpdateMs.primary.toFixed(3)} ms primary (${r.cpuPerUpdateMs.self.toFixed(3)} ms of it the ${r.tool === "rsync" ? "loop's shell" : "process itself"}), ${r.cpuPerUpdateMs.standby.toFixed(3)} ms standby`
      + (r.rss.length ? `; RSS ${r.rss.map((x) => x.toFixed(0)).join(" ")} MiB` : "")
      + (r.growth ? `; state DB ${r.growth.dbBytesPerUpdate.toFixed(1)} B + change log ${r.growth.logBytesPerUpdate.toFixed(1)} B per update (${r.growth.perHourMiB.toFixed(1)} MiB per hour at ${RATE}/s); ${r.growth.batches} batches of ${r.growth.filesPerBatch.toFixed(0)} files` : "")
      + (r.extra ? `; ${r.extra}` : ""));
  }
} finally {
  await sshd.cleanup();
  rmSync(destRoot, { recursive: true, force: true });
}
console.log(`load after ${load("/proc/loadavg")}`);
if (JSON_OUT) writeFileSync(JSON_OUT, JSON.stringify({ rrds: N, rate: RATE, minutes: MINUTES, results }, null, 2));
