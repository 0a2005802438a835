// What the replica check (issue 23) costs: two rrdsync binaries side by side in one run, the one before the check
// and the one with it, over the loopback sshd. W3: K RRDs of an N-file tree updated by `rrdtool update`, then each
// binary's `--once` to its own replica (alternating who goes first). The --watch burst: 1,000 RRDs updated by one
// `rrdtool -`, time from the burst's end until the daemon's batches confirmed all of them (each binary's daemon in
// turn, alternating). Prints each time, the medians and the ratio after/before (target ≤ 1.05×), and the logins.
// Usage: flock /tmp/rrdsync-heavy.lock bun scripts/bench/fence-cost.ts --before BIN --after BIN
//          [--files 20000] [--updated 2000] [--runs 5] [--bursts 6] [--transport rsync|sftp]
import { mkdirSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { startDaemon } from "../../test/helpers/daemon.ts";
import { startSshd } from "../../test/helpers/sshd.ts";
import { generateTree, rrdtoolUpdates, seededRandom } from "./generate-tree.ts";
import { benchUser, destRootFor, giveTo, opt, timedRun, writeBenchConfig } from "./user.ts";

const FILES = Number(opt("--files", "20000"));
const UPDATED = Number(opt("--updated", "2000"));
const RUNS = Number(opt("--runs", "5"));
const BURSTS = Number(opt("--bursts", "6"));
const BURST = 1000;
const TRANSPORT = opt("--transport", "rsync");
const bins = { before: resolve(opt("--before", "")), after: resolve(opt("--after", join(import.meta.dir, "../../dist/rrdsync"))) };
type Side = keyof typeof bins;
const sides: Side[] = ["before", "after"];

const root = resolve(import.meta.dir, "../../.bench");
const work = join(root, "fence-cost");
const destRoot = destRootFor("rrdsync-bench-fence", work);
rmSync(work, { recursive: true, force: true });
rmSync(destRoot, { recursive: true, force: true });
// A tree of its own: the updates below would change the cached one other benches read.
const src = join(work, "tree");
const g = await generateTree(src, { files: FILES, seed: 1 });
const rrds = g.rrds;
console.log(`tree: ${FILES} files, ${rrds.length} RRDs (${src}); transport ${TRANSPORT}; before: ${bins.before}; after: ${bins.after}`);

const user = benchUser();
const sshd = await startSshd(user ? { user: user.name } : {});
mkdirSync(destRoot, { recursive: true });
giveTo(user, destRoot);
const cfg = {} as Record<Side, string>;
for (const s of sides) {
  const dir = join(work, s);
  mkdirSync(dir, { recursive: true });
  cfg[s] = writeBenchConfig(dir, { src, dest: join(destRoot, s), sshd, transport: TRANSPORT, extra: { debounce_time: 1 } });
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const w3 = { before: [] as number[], after: [] as number[] };
const burst = { before: [] as number[], after: [] as number[] };
const logins = { before: 0, after: 0 };
const rand = seededRandom(5);
const pick = (n: number) => {
  const picked = new Set<string>();
  while (picked.size < Math.min(n, rrds.length)) picked.add(rrds[Math.floor(rand() * rrds.length)] as string);
  return [...picked].map((r) => join(src, r));
};
let clock = 1_800_000_000;

try {
  for (const s of sides) await timedRun([bins[s], "--once", "--quiet", "--config", cfg[s]], sshd); // first syncs
  for (let r = 0; r < RUNS; r++) {
    await rrdtoolUpdates(pick(UPDATED), rand, (clock += 300));
    for (const s of r % 2 === 0 ? sides : [...sides].reverse()) {
      const x = await timedRun([bins[s], "--once", "--quiet", "--config", cfg[s]], sshd);
      w3[s].push(x.s);
      logins[s] += x.logins;
      console.log(`W3 run ${r + 1} ${s.padEnd(6)} ${x.s.toFixed(2)} s (${x.logins} logins)`);
    }
  }
  for (let b = 0; b < BURSTS; b++) {
    // in turns, and the turn's first side alternating (before, after, after, before, …) unless --strict: before, after, before, …
    const s = (process.argv.includes("--strict") ? sides[b % 2] : sides[(b + Math.floor(b / 2)) % 2]) as Side;
    process.env.RRDSYNC_BIN = bins[s]; // the daemon helper runs this binary
    const d = startDaemon(["--config", cfg[s]]);
    try {
      await d.waitFor((e) => e.event === "pass", 300_000, "the initial pass");
      await Bun.sleep(3000); // the connection warmed, the spares started
      const before = d.events.length;
      await rrdtoolUpdates(pick(BURST), rand, (clock += 300));
      const end = Date.now();
      const batches = () => d.events.slice(before).filter((e) => e.event === "batch");
      await d.waitFor(() => batches().reduce((n, e) => n + Number(e.files), 0) >= BURST, 60_000, "the burst confirmed");
      const lat = (Date.parse(String(batches().at(-1)?.time)) - end) / 1000;
      burst[s].push(lat);
      console.log(`burst ${b + 1} ${s.padEnd(6)} ${lat.toFixed(2)} s after the burst ended (${batches().length} batches)`);
    } finally {
      await d.stop("SIGTERM");
    }
  }
} finally {
  await sshd.cleanup();
  rmSync(destRoot, { recursive: true, force: true });
}
const row = (name: string, m: Record<Side, number[]>) =>
  `${name}: before ${median(m.before).toFixed(3)} s, after ${median(m.after).toFixed(3)} s, ratio ${(median(m.after) / median(m.before)).toFixed(3)}× (medians of ${m.before.length} and ${m.after.length}; target ≤ 1.05×)`;
// Paired: each W3 round's two runs saw the same updates, next to each other in time; the bursts pair up in the
// order they ran (before/after next to each other). The median of the pairs' ratios is the steadier figure on a
// machine others load too.
const pairs = (a: number[], b: number[]) => a.map((x, i) => (b[i] as number) / x).filter((r) => Number.isFinite(r));
console.log(`\n${row(`W3 ${UPDATED} of ${rrds.length} RRDs updated, --once`, w3)}; logins: before ${logins.before}, after ${logins.after}`);
console.log(`   paired (same round): median after/before ${median(pairs(w3.before, w3.after)).toFixed(3)}×`);
if (BURSTS > 1) {
  console.log(row(`--watch burst of ${BURST} rrdtool updates, burst end → confirmed`, burst));
  console.log(`   paired (neighbouring bursts): median after/before ${median(pairs(burst.before, burst.after)).toFixed(3)}×`);
}
