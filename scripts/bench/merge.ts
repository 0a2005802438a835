// merge: `rrdsync merge` of N pairs of OpenNMS-sized RRDs (step 300; AVERAGE 1×2016, AVERAGE/MAX/MIN 12×1488; one
// data source, 53 KB) beside the dump-to-XML route on a sample (`rrdtool dump` both, merge the rows, `rrdtool
// restore`), in the same run. Target: ≥ 50× faster than dump/restore (issue 26).
//
// The pairs are made by the real rrdtool: K base files with a week and a bit of 5-minute history (every ring
// wrapped), then per pair a primary and a standby copied from one base, the primary 30 steps further (the replica
// lag), the standby a gap and 60 steps of its own (promoted); every fifth standby is made apart by `rrdtool create`
// (its own ring position) with only its own 60 steps: overlapping and disjoint history. Cached in .bench/merge-N.
//
// rrdsync is timed in process (mergeRrdFiles: the code `rrdsync merge` runs, read locks, temp file and rename
// included) over all N pairs, and as the binary (one process per pair, start-up included) on the sample. The XML
// route runs dump and restore through one `rrdtool -` process each (no process per file) and merges the rows in
// process; its merged files are checked against rrdsync's with `rrdtool fetch`.
// Usage: bun scripts/bench/merge.ts [--pairs 10000] [--sample 200] [--rounds 3] [--bin dist/rrdsync]. Run it under
// the heavy lock.
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { MergeBuffers, mergeInto, mergeRrdFiles } from "../../src/track/rrd-merge-file.ts";
import { mergeRrd } from "../../src/track/rrd-merge.ts";
import { rrdtoolPipe } from "./generate-tree.ts";
import { destRootFor, opt, rrdsyncBin } from "./user.ts";

const PAIRS = Number(opt("--pairs", "10000"));
const SAMPLE = Math.min(PAIRS, Number(opt("--sample", "200")));
const ROUNDS = Number(opt("--rounds", "3"));
const BASES = 50;
const HISTORY = 2100; // steps of history in each base: the 2016-row archive wrapped
const T0 = 1_700_000_100;
const t = (i: number) => T0 + 300 * i;
const LAYOUT = "--step 300 DS:ifInOctets:COUNTER:600:0:U RRA:AVERAGE:0.5:1:2016 RRA:AVERAGE:0.5:12:1488 RRA:MAX:0.5:12:1488 RRA:MIN:0.5:12:1488";
const root = resolve(import.meta.dir, "../../.bench", `merge-${PAIRS}`);
const pairDir = join(root, "pairs");
const primary = (i: number) => join(pairDir, `${i}-p.rrd`);
const standby = (i: number) => join(pairDir, `${i}-s.rrd`);

/** One `update` line with many samples (one open of the file for all of them). */
const updateLine = (f: string, from: number, to: number, seed: number) => {
  let s = `update ${f}`;
  for (let i = from; i <= to; i++) s += ` ${t(i)}:${i * 1000 + ((i * seed) % 997)}`;
  return `${s}\n`;
};

async function generate(): Promise<void> {
  if (existsSync(join(root, ".complete"))) return;
  rmSync(root, { recursive: true, force: true });
  mkdirSync(pairDir, { recursive: true });
  const started = performance.now();
  const bases = Array.from({ length: BASES }, (_, k) => join(root, `base-${k}.rrd`));
  await rrdtoolPipe(bases.flatMap((b, k) => [`create ${b} --start ${T0} ${LAYOUT}\n`, updateLine(b, 1, HISTORY, k + 1)]));
  for (let i = 0; i < PAIRS; i++) {
    copyFileSync(bases[i % BASES] as string, primary(i));
    if (i % 5 !== 4) copyFileSync(bases[i % BASES] as string, standby(i));
  }
  function* commands() {
    for (let i = 0; i < PAIRS; i++) {
      yield updateLine(primary(i), HISTORY + 1, HISTORY + 30, i); // written, never replicated
      if (i % 5 === 4) yield `create ${standby(i)} --start ${t(HISTORY + 35)} ${LAYOUT}\n`;
      yield updateLine(standby(i), HISTORY + 40, HISTORY + 100, i + 7); // the promoted standby's own rows
    }
  }
  await rrdtoolPipe(commands());
  writeFileSync(join(root, ".complete"), "");
  console.log(`made ${PAIRS} pairs with rrdtool in ${((performance.now() - started) / 1000).toFixed(1)} s (${root})`);
}

/** The XML route's merge: the newer dump as the base, each NaN in it filled from the older dump's row of that time. */
function mergeXml(a: string, b: string): string {
  const last = (x: string) => Number(/<lastupdate>(\d+)<\/lastupdate>/.exec(x)?.[1]);
  const [newer, older] = last(a) >= last(b) ? [a, b] : [b, a];
  const rraBlocks = (x: string) => x.split("<rra>").slice(1);
  const row = /<!-- [^/]*\/ (\d+) --> <row>(.*?)<\/row>/g;
  const olderRows = rraBlocks(older).map((blk) => {
    const m = new Map<string, string[]>();
    for (const r of blk.matchAll(row)) m.set(r[1] as string, [...(r[2] as string).matchAll(/<v>(.*?)<\/v>/g)].map((v) => v[1] as string));
    return m;
  });
  const parts = newer.split("<rra>");
  return [
    parts[0],
    ...parts.slice(1).map((blk, j) =>
      blk.replace(row, (whole, time: string, vs: string) => {
        const old = olderRows[j]?.get(time);
        if (old === undefined) return whole;
        let k = 0;
        const merged = vs.replace(/<v>(.*?)<\/v>/g, (v, x: string) => {
          const o = old[k++] as string;
          return x === "NaN" && o !== "NaN" ? `<v>${o}</v>` : v;
        });
        return whole.replace(vs, merged);
      }),
    ),
  ].join("<rra>");
}

const ms = (s: number) => `${s.toFixed(3)} ms`;
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] as number;
const pct = (xs: number[], p: number) => [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor(xs.length * p))] as number;

await generate();
// Outputs on tmpfs, as the other benches' destinations: a disk's write-back of 530 MB per round is noise.
const work = destRootFor("rrdsync-bench-merge", root);
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
const out = (i: number, tag: string) => join(work, `${i}-${tag}.rrd`);
const xml = (i: number, tag: string) => join(work, `${i}-${tag}.xml`);
const buffers = new MergeBuffers(); // as a loop over many files would (failback): no garbage per pair

/** rrdsync merge's code, in process, over all pairs (locks, temp file, rename): ms per pair. */
async function rrdsyncRound(): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < PAIRS; i++) await mergeRrdFiles(primary(i), standby(i), out(i, "rrdsync"), { force: true, buffers });
  return (performance.now() - start) / PAIRS;
}

/** The XML route on the sample: dump both (one rrdtool - process), merge the rows, restore (one more): ms per pair. */
async function xmlRound(): Promise<{ per: number; dump: number; merge: number; restore: number }> {
  for (let i = 0; i < SAMPLE; i++) rmSync(out(i, "xml"), { force: true });
  let start = performance.now();
  await rrdtoolPipe(Array.from({ length: SAMPLE }, (_, i) => `dump ${primary(i)} ${xml(i, "p")}\ndump ${standby(i)} ${xml(i, "s")}\n`));
  const dump = (performance.now() - start) / SAMPLE;
  start = performance.now();
  for (let i = 0; i < SAMPLE; i++) writeFileSync(xml(i, "m"), mergeXml(readFileSync(xml(i, "p"), "latin1"), readFileSync(xml(i, "s"), "latin1")));
  const merge = (performance.now() - start) / SAMPLE;
  start = performance.now();
  await rrdtoolPipe(Array.from({ length: SAMPLE }, (_, i) => `restore ${xml(i, "m")} ${out(i, "xml")}\n`));
  const restore = (performance.now() - start) / SAMPLE;
  return { per: dump + merge + restore, dump, merge, restore };
}

// Side by side, alternating which goes first, ROUNDS times.
const rounds: Array<{ rrdsync: number; xml: Awaited<ReturnType<typeof xmlRound>> }> = [];
for (let r = 0; r < ROUNDS; r++) {
  const first = r % 2 === 0;
  const a = first ? await rrdsyncRound() : 0;
  const x = await xmlRound();
  const b = first ? a : await rrdsyncRound();
  rounds.push({ rrdsync: b, xml: x });
  console.log(`round ${r + 1}: rrdsync merge ${ms(b)} per pair (${PAIRS} pairs), dump/XML/restore ${ms(x.per)} per pair (${SAMPLE}): ${(x.per / b).toFixed(0)}×`);
}

// The merge alone: 100 pairs already in memory (in the CPU's caches, as the loop's reused buffers are), 20 times.
const bufs = Array.from({ length: Math.min(PAIRS, 100) }, (_, i) => [readFileSync(primary(i)), readFileSync(standby(i))] as const);
const into = buffers.get(2, bufs[0]?.[0].length ?? 0);
const cores: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  const start = performance.now();
  for (let k = 0; k < 20; k++) for (const [a, b] of bufs) if (mergeRrd(a, b, { into }).kind !== "merged") throw new Error("refused");
  cores.push((performance.now() - start) / (20 * bufs.length));
}

// mergeInto, in place into copies of the primaries: how long rrdtool's lock is held per file (at most this).
const intoTimes: number[] = [];
for (let i = 0; i < SAMPLE; i++) copyFileSync(primary(i), out(i, "into"));
for (let i = 0; i < SAMPLE; i++) {
  const other = readFileSync(standby(i));
  const s = performance.now();
  await mergeInto(out(i, "into"), other, { buffers });
  intoTimes.push(performance.now() - s);
}

// The binary, one process per pair (start-up included), on the sample.
const bin = rrdsyncBin();
let start = performance.now();
for (let i = 0; i < SAMPLE; i++) {
  const p = Bun.spawnSync([...bin, "merge", primary(i), standby(i), "--to", out(i, "bin"), "--quiet"], { stdout: "ignore", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`rrdsync merge exited ${p.exitCode}: ${p.stderr.toString()}`);
}
const binPer = (performance.now() - start) / SAMPLE;
start = performance.now();
for (let i = 0; i < SAMPLE; i++) Bun.spawnSync([...bin, "--version"], { stdout: "ignore" });
const versionPer = (performance.now() - start) / SAMPLE;

// The routes agree, row for row, as rrdtool fetch shows them (the XML route's values pass through 10 digits).
const fetch = (f: string, cf: string, r: number) => Bun.spawnSync(["rrdtool", "fetch", f, cf, "-r", String(r), "-s", String(t(HISTORY + 100) - 1400 * r), "-e", String(t(HISTORY + 100) - 1)]).stdout.toString();
let checked = 0;
for (let i = 0; i < Math.min(SAMPLE, 20); i++) {
  for (const [cf, r] of [["AVERAGE", 300], ["AVERAGE", 3600], ["MAX", 3600], ["MIN", 3600]] as const) {
    if (fetch(out(i, "rrdsync"), cf, r) !== fetch(out(i, "xml"), cf, r)) throw new Error(`pair ${i}: ${cf} ${r} differs between rrdsync merge and the XML route`);
    if (fetch(out(i, "rrdsync"), cf, r) !== fetch(out(i, "bin"), cf, r)) throw new Error(`pair ${i}: the binary's merge differs`);
    checked++;
  }
}

const med = median(rounds.map((r) => r.rrdsync));
const xmed = median(rounds.map((r) => r.xml.per));
const x0 = rounds.find((r) => r.xml.per === xmed)?.xml ?? rounds[0]?.xml;
console.log(`\n${PAIRS} pairs of ${readFileSync(primary(0)).length} B RRDs (1 in 5 made apart); sample ${SAMPLE}; ${checked} fetches agree between the routes; medians of ${ROUNDS} rounds`);
console.log(`rrdsync merge, in process, all ${PAIRS} pairs   ${ms(med)} per pair = ${((med * PAIRS) / 1000).toFixed(2)} s (rounds ${rounds.map((r) => r.rrdsync.toFixed(3)).join(", ")} ms)`);
console.log(`  the merge alone (buffers in memory)          ${ms(median(cores))} per pair (${cores.map((c) => c.toFixed(3)).join(", ")})`);
console.log(`  mergeInto in place (lock held at most this)  median ${ms(median(intoTimes))}, p99 ${ms(pct(intoTimes, 0.99))}, max ${ms(Math.max(...intoTimes))}`);
console.log(`rrdsync merge, the binary, a process per pair  ${ms(binPer)} per pair; --version alone ${ms(versionPer)} (${bin.join(" ")})`);
console.log(`rrdtool dump ×2 + XML row merge + restore      ${ms(xmed)} per pair (dump ${ms(x0?.dump ?? 0)}, merge ${ms(x0?.merge ?? 0)}, restore ${ms(x0?.restore ?? 0)}); rounds ${rounds.map((r) => r.xml.per.toFixed(1)).join(", ")} ms`);
console.log(`ratio: dump/restore ÷ rrdsync in process = ${(xmed / med).toFixed(0)}× (rounds ${rounds.map((r) => (r.xml.per / r.rrdsync).toFixed(0)).join(", ")}); ÷ the binary per process = ${(xmed / binPer).toFixed(2)}× (target ≥ 50×)`);
rmSync(work, { recursive: true, force: true });
