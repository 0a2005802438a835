// W3: the cost of RRD-aware change tracking. In an N-file OpenNMS-like tree, K RRDs get an update (as `rrdtool
// update` writes it: live head, last values, one row per archive), then two rrdsync --once runs sync them to two
// replicas over the loopback sshd: one with change tracking on, one with it off. Checks that the tracked run
// recorded exactly one accurate entry per updated file, and prints both times and their ratio (target ≤ 1.15×).
// Usage: bun scripts/bench/w3.ts [--files 20000] [--updated 2000] [--runs 5] [--bin dist/rrdsync]
import { mkdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { startSshd } from "../../test/helpers/sshd.ts";
import { generateTree, rrdtoolUpdates, seededRandom } from "./generate-tree.ts";
import { benchUser, destRootFor, giveTo, opt, rrdsyncBin, writeBenchConfig } from "./user.ts";

const FILES = Number(opt("--files", "20000"));
const UPDATED = Number(opt("--updated", "2000"));
const RUNS = Number(opt("--runs", "5"));
const root = resolve(import.meta.dir, "../../.bench/w3");
const bin = rrdsyncBin();
const destRoot = destRootFor("rrdsync-bench-w3", root);

rmSync(root, { recursive: true, force: true });
rmSync(destRoot, { recursive: true, force: true });
const src = join(root, "tree");
const g = await generateTree(src, { files: FILES, seed: 3 });
console.log(`generated ${g.files} files (${g.rrds.length} RRDs, ${(g.bytes / 1048576).toFixed(0)} MiB)`);

const user = benchUser();
const sshd = await startSshd(user ? { user: user.name } : {});
mkdirSync(destRoot, { recursive: true });
giveTo(user, destRoot);

type Side = "on" | "off";
function config(side: Side): string {
  const dir = join(root, side);
  mkdirSync(dir, { recursive: true });
  const extra = { change_tracking: { enabled: side === "on", backup_dir: join(dir, "backup"), change_log_file: join(dir, "change_log.txt") } };
  return writeBenchConfig(dir, { src, dest: join(destRoot, side), sshd, extra });
}
const cfgs: Record<Side, string> = { on: config("on"), off: config("off") };

async function once(side: Side): Promise<number> {
  const t = performance.now();
  const p = Bun.spawn([...bin, "--once", "--quiet", "--config", cfgs[side]], { stdout: "ignore", stderr: "pipe" });
  const err = await new Response(p.stderr).text();
  if ((await p.exited) !== 0) throw new Error(`rrdsync (tracking ${side}) failed: ${err.slice(-2000)}`);
  return (performance.now() - t) / 1000;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const times: Record<Side, number[]> = { on: [], off: [] };
try {
  await once("on");
  await once("off"); // both replicas complete: what follows are update passes
  const rand = seededRandom(7);
  const iso = (t: number) => new Date(t * 1000).toISOString().replace(".000Z", "Z");
  const lastUpdate = new Map<string, number>(); // what each RRD's header says now (the tree starts at 1_700_000_000)
  for (let r = 0; r < RUNS; r++) {
    const now = 1_700_000_000 + 300 * (r + 1);
    const picked = new Set<string>();
    while (picked.size < Math.min(UPDATED, g.rrds.length)) picked.add(g.rrds[Math.floor(rand() * g.rrds.length)] as string);
    const expected = new Map<string, string>();
    for (const rel of picked) {
      const before = lastUpdate.get(rel) ?? 1_700_000_000;
      const steps = (now - before) / 300;
      expected.set(rel, `${iso(before)} → ${iso(now)} (+${steps} step${steps === 1 ? "" : "s"})`);
      lastUpdate.set(rel, now);
    }
    await rrdtoolUpdates([...picked].map((rel) => join(src, rel)), rand, now);
    const logBefore = statSync(join(root, "on", "change_log.txt")).size;
    const order: Side[] = r % 2 === 0 ? ["on", "off"] : ["off", "on"];
    for (const side of order) {
      const s = await once(side);
      times[side].push(s);
      console.log(`run ${r + 1} tracking ${side.padEnd(3)} ${s.toFixed(2)} s`);
    }
    // one accurate entry per updated file: the right path, from the time it had to the time written, in steps
    const added = readFileSync(join(root, "on", "change_log.txt")).subarray(logBefore).toString("utf8");
    const entries = [...added.matchAll(/^File: (.*)\nChanges:\nRRD file updated: last update (.*)$/gm)];
    const paths = new Set(entries.filter((m) => expected.get(m[1] as string) === m[2]).map((m) => m[1]));
    const total = added.match(/^File: /gm)?.length ?? 0;
    if (total !== picked.size || paths.size !== picked.size || [...picked].some((p) => !paths.has(p))) {
      throw new Error(`run ${r + 1}: expected ${picked.size} accurate RRD entries, got ${paths.size} accurate of ${total}`);
    }
  }
} finally {
  await sshd.cleanup();
}
const on = median(times.on);
const off = median(times.off);
console.log(`\nW3: ${UPDATED} of ${g.rrds.length} RRDs updated in a ${FILES}-file tree, median of ${RUNS} runs, binary: ${bin.join(" ")}`);
console.log(`tracking on ${on.toFixed(2)} s, tracking off ${off.toFixed(2)} s, ratio ${(on / off).toFixed(2)}× (target ≤ 1.15×); ${UPDATED} accurate entries per run`);
