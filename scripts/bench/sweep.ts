// The stat sweep's cost: CPU seconds (user + sys) of one sweepChanged pass over N tracked files, against the plain
// lstat(bigint) + versionKey loop it replaces. The files are empty: a stat's cost does not depend on the content, only
// on the path walk and the inode (cached here, as it is on a server that sweeps every minute). 20 files a directory,
// as snmp/<node>/<interface>/<ds>.rrd. The entries come from the generated list, in path order, as the state DB gives
// them. Usage: flock /tmp/rrdsync-heavy.lock bun scripts/bench/sweep.ts [--files 100000,1000000] [--dir /dev/shm] [--runs 3]
import { closeSync, existsSync, lstatSync, mkdirSync, openSync, rmSync } from "node:fs";
import { join } from "node:path";
import { statFacts, versionKey } from "../../src/engine/plan.ts";
import { sweepChanged, type TrackedEntry } from "../../src/source/sweep.ts";
import { opt } from "./user.ts";

const PER_DIR = 20;
const sizes = opt("--files", "100000,1000000").split(",").map(Number);
const base = join(opt("--dir", existsSync("/dev/shm") ? "/dev/shm" : "/tmp"), "rrdsync-bench-sweep");
const RUNS = Number(opt("--runs", "3"));

function cpuOf(fn: () => Promise<number>): Promise<{ cpu: number; wall: number; n: number }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  return fn().then((n) => {
    const c = process.cpuUsage(c0);
    return { cpu: (c.user + c.system) / 1e6, wall: (performance.now() - t0) / 1000, n };
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

try {
  for (const files of sizes) {
    rmSync(base, { recursive: true, force: true });
    const entries: TrackedEntry[] = [];
    const t0 = performance.now();
    for (let i = 0; i < files; i++) {
      const node = Math.floor(i / (PER_DIR * 10));
      const dir = `snmp/${node}/if${Math.floor(i / PER_DIR) % 10}`;
      if (i % PER_DIR === 0) mkdirSync(join(base, dir), { recursive: true });
      const rel = `${dir}/ds${i % PER_DIR}.rrd`;
      closeSync(openSync(join(base, rel), "w"));
      entries.push({ rel, key: "" });
    }
    entries.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
    for (const e of entries) e.key = versionKey(statFacts(lstatSync(join(base, e.rel), { bigint: true })));
    console.log(`${files.toLocaleString("en")} files in ${base}: made in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    const sweep = async () => {
      let n = 0;
      for await (const _ of sweepChanged(base, entries)) n++;
      return n;
    };
    const naive = async () => {
      let n = 0;
      for (const e of entries) {
        const st = lstatSync(join(base, e.rel), { bigint: true, throwIfNoEntry: false });
        if (!st || versionKey(statFacts(st)) !== e.key) n++;
      }
      return n;
    };
    for (const [name, fn] of [["sweepChanged", sweep], ["lstat + versionKey", naive]] as const) {
      await fn(); // warm: the JIT, and the dentry cache as a server sweeping every minute has it
      const runs: Array<{ cpu: number; wall: number; n: number }> = [];
      for (let r = 0; r < RUNS; r++) runs.push(await cpuOf(fn));
      if (runs.some((r) => r.n !== 0)) throw new Error(`${name}: files reported changed in an untouched tree`);
      const cpu = median(runs.map((r) => r.cpu));
      console.log(
        `  ${name.padEnd(20)} CPU ${cpu.toFixed(3)} s a sweep (median of ${RUNS}; ${((cpu / files) * 1e6).toFixed(2)} µs a file), wall ${median(runs.map((r) => r.wall)).toFixed(3)} s` +
          ` → ${["30", "60", "300"].map((s) => `${((cpu / Number(s)) * 100).toFixed(2)} % of a core at ${s} s`).join(", ")}`,
      );
    }
    const changed = entries[Math.floor(files / 2)] as TrackedEntry;
    closeSync(openSync(join(base, changed.rel), "a"));
    Bun.spawnSync(["touch", join(base, changed.rel)]);
    const found: string[] = [];
    for await (const rel of sweepChanged(base, entries)) found.push(rel);
    if (found.length !== 1 || found[0] !== changed.rel) throw new Error(`a touched file was not found: ${JSON.stringify(found)}`);
  }
} finally {
  rmSync(base, { recursive: true, force: true });
}
