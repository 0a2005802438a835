// The large-install tree for the scale bench (issue #16): OpenNMS's shape without storeByGroup, one RRD per data
// source, snmp/<node>/<interface>/<ds>.rrd plus one strings.properties per resource directory. Every RRD is made by
// the real `rrdtool create` (two `rrdtool -` pipe-mode processes, one per core), each with its own start time, so
// the headers differ as in the field; a sample is checked against `rrdtool info` afterwards.
// Usage: bun scripts/bench/scale-tree.ts DIR [--rrds 1000000]
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { rrdtoolPipe } from "./generate-tree.ts";

/** RRDs per resource directory and resource directories per node: 1,000,000 RRDs → 200,000 dirs under 2,000 nodes. */
export const PER_DIR = 5;
export const DIRS_PER_NODE = 100;
export const STEP = 300;
/** The last update every generated RRD has (minus up to one step, per file): updates must come after it. */
export const T0 = 1_700_000_000;
/** OpenNMS's five default RRAs (5 min, hourly, daily avg/max/min), shortened: ~2.9 KB a file instead of ~38 KB. */
const RRAS = ["RRA:AVERAGE:0.5:1:96", "RRA:AVERAGE:0.5:12:48", "RRA:AVERAGE:0.5:288:14", "RRA:MAX:0.5:288:14", "RRA:MIN:0.5:288:14"];
/** An interface resource's data sources (name, type): two layouts of one install, as OpenNMS's interface collection has. */
const IF_DS: Array<[string, string]> = [["ifHCInOctets", "COUNTER"], ["ifHCOutOctets", "COUNTER"], ["ifInErrors", "COUNTER"], ["ifOutErrors", "COUNTER"], ["ifHighSpeed", "GAUGE"]];

export interface ScaleTree {
  root: string;
  rrds: number;
  files: number;
  dirs: number;
}

/** The i-th resource directory (relative) and its RRDs' relative paths. */
export function resourceDir(i: number): string {
  const node = Math.floor(i / DIRS_PER_NODE) + 1;
  const ifc = i % DIRS_PER_NODE;
  const mac = ((node * 1000 + ifc) * 2654435761 % 2 ** 48).toString(16).padStart(12, "0");
  return `snmp/${node}/eth${ifc}-${mac}`;
}

export function rrdPath(n: number): string {
  return `${resourceDir(Math.floor(n / PER_DIR))}/${(IF_DS[n % PER_DIR] as [string, string])[0]}.rrd`;
}

/** The last update RRD n was created with (T0 minus up to one step). */
export function startOf(n: number): number {
  return T0 - ((n * 7919) % STEP);
}

function createCommand(n: number): string {
  const [ds, type] = IF_DS[n % PER_DIR] as [string, string];
  return `create ${rrdPath(n)} --start ${startOf(n)} --step ${STEP} DS:${ds}:${type}:600:0:U ${RRAS.join(" ")}\n`;
}

function properties(i: number): string {
  const node = Math.floor(i / DIRS_PER_NODE) + 1;
  const ifc = i % DIRS_PER_NODE;
  return `#${new Date(T0 * 1000).toUTCString()}\nifAlias=uplink ${node}/${ifc}\nifDescr=eth${ifc}\nifName=eth${ifc}\nifSpeed=10000000000\n`;
}

function* range(from: number, to: number, step: number): Generator<number> {
  for (let n = from; n < to; n += step) yield n;
}

/** Generates the tree under root: `rrds` RRDs (rounded up to whole resource directories) and their text files. */
export async function generateScaleTree(root: string, rrds: number): Promise<ScaleTree> {
  const dirCount = Math.ceil(rrds / PER_DIR);
  const total = dirCount * PER_DIR;
  const nodes = new Set<number>();
  for (let i = 0; i < dirCount; i++) {
    const dir = join(root, resourceDir(i));
    mkdirSync(dir, { recursive: true });
    nodes.add(Math.floor(i / DIRS_PER_NODE));
    writeFileSync(join(dir, "strings.properties"), properties(i));
  }
  // Two rrdtool processes (2 cores), each taking every other file.
  const made = await Promise.all([0, 1].map((k) => rrdtoolPipe((function* () {
    for (const n of range(k, total, 2)) yield createCommand(n);
  })(), root)));
  const sum = made.reduce((a, b) => a + b, 0);
  if (sum !== total) throw new Error(`rrdtool created ${sum} of ${total} RRDs`);
  checkSample(root, total);
  return { root, rrds: total, files: total + dirCount, dirs: dirCount + nodes.size + 2 };
}

/** A sample of the generated RRDs read back with `rrdtool info`: data source, type, step, start and archives as asked. */
export function checkSample(root: string, rrds: number, samples = 25): void {
  for (let s = 0; s < samples; s++) {
    const n = Math.floor((s * rrds) / samples) + (s % PER_DIR);
    if (n >= rrds) continue;
    const r = Bun.spawnSync(["rrdtool", "info", rrdPath(n)], { cwd: root });
    const info = r.stdout.toString();
    const [ds, type] = IF_DS[n % PER_DIR] as [string, string];
    const want = [`step = ${STEP}`, `last_update = ${startOf(n)}`, `ds[${ds}].type = "${type}"`, "rra[4].cf = \"MIN\"", "rra[0].rows = 96"];
    const missing = want.filter((w) => !info.includes(w));
    if (r.exitCode !== 0 || missing.length > 0) throw new Error(`${rrdPath(n)}: rrdtool info does not show ${missing.join(", ")}`);
  }
}

/** The scale tree of `rrds` RRDs under dir, generated once and reused (a .complete file marks a whole one). */
export async function cachedScaleTree(dir: string, rrds: number): Promise<ScaleTree> {
  const root = join(dir, `tree-${rrds}`);
  const dirCount = Math.ceil(rrds / PER_DIR);
  const info = { root, rrds: dirCount * PER_DIR, files: dirCount * (PER_DIR + 1), dirs: dirCount + Math.ceil(dirCount / DIRS_PER_NODE) + 2 };
  if (existsSync(join(root, ".complete"))) return info;
  rmSync(root, { recursive: true, force: true });
  const t = performance.now();
  const g = await generateScaleTree(root, rrds);
  Bun.spawnSync(["sync"]); // written back now, not during the measurements
  writeFileSync(join(root, ".complete"), "");
  console.log(`generated ${g.rrds.toLocaleString("en-US")} RRDs (rrdtool create) + ${(g.files - g.rrds).toLocaleString("en-US")} strings.properties in ${g.dirs.toLocaleString("en-US")} directories in ${((performance.now() - t) / 1000).toFixed(0)} s`);
  return info;
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const dir = args.find((a) => !a.startsWith("--"));
  const i = args.indexOf("--rrds");
  if (!dir) {
    console.error("usage: bun scripts/bench/scale-tree.ts DIR [--rrds 1000000]");
    process.exit(2);
  }
  const g = await cachedScaleTree(dir, i >= 0 ? Number(args[i + 1]) : 1_000_000);
  console.log(`${g.root}: ${g.files} files, ${g.dirs} directories`);
}
