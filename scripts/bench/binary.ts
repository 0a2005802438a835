// Binary size and start time per compile variant: what --minify and --bytecode give, what the autoload flags cost,
// what the SFTP client (ssh2, loaded only when used) weighs. Each variant is built from this checkout; then, taking
// turns so drift hits all alike, `--version` is timed (median of --runs) and a no-change `--once` on a generated
// tree (--files, default 20,000; a local destination: a no-change pass connects to nothing anyway).
// Usage: flock /tmp/rrdsync-heavy.lock bun scripts/bench/binary.ts [--files 20000] [--runs 30]
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { compile, FLAGS } from "../compile.ts";
import { generateTree } from "./generate-tree.ts";
import { opt } from "./user.ts";

const files = Number(opt("--files", "20000"));
const runs = Number(opt("--runs", "30"));
const work = resolve(import.meta.dir, "../../.bench/binary");
const without = (...drop: string[]) => FLAGS.filter((f) => !drop.includes(f));

/** The release flags (scripts/compile.ts) and the variants they are measured against. */
const VARIANTS: Array<{ name: string; flags: string[]; runs?: false }> = [
  { name: "neither --minify nor --bytecode", flags: without("--minify", "--bytecode") },
  { name: "--minify only", flags: without("--bytecode") },
  { name: "--bytecode only", flags: without("--minify") },
  { name: "--minify --bytecode (the release)", flags: FLAGS },
  { name: "the release, reading .env and bunfig.toml at start (0.1.0)", flags: without("--no-compile-autoload-dotenv", "--no-compile-autoload-bunfig") },
  // Not a build to ship (no SFTP transport): what the ssh2 client weighs in the binary.
  { name: "the release without the SFTP client (ssh2 left out)", flags: [...FLAGS, "--external", "ssh2"], runs: false },
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

function timeOnce(argv: string[]): number {
  const t0 = Bun.nanoseconds();
  const r = Bun.spawnSync(argv, { stdout: "ignore", stderr: "pipe" });
  const ms = (Bun.nanoseconds() - t0) / 1e6;
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")} exited ${r.exitCode}: ${r.stderr.toString()}`);
  return ms;
}

mkdirSync(work, { recursive: true });
const src = join(work, "tree");
const dest = join(work, "replica");
const state = join(work, "state.db");
const marker = join(src, ".complete"); // a tree of this size is already there from an earlier run
if (!existsSync(marker) || readFileSync(marker, "utf8") !== String(files)) {
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const g = await generateTree(src, { files, seed: 3 });
  await Bun.write(marker, String(files));
  console.log(`generated ${g.files} files (${(g.bytes / 1048576).toFixed(0)} MiB) in ${g.dirs} directories`);
}

const built = VARIANTS.map((v, i) => {
  const outfile = join(work, `rrdsync-${i}`);
  compile({ target: null, outfile, flags: v.flags });
  return { ...v, outfile, size: statSync(outfile).size, version: [] as number[], once: [] as number[] };
});
const runtime = statSync(process.execPath).size;

const once = (bin: string) => [bin, "--once", "--quiet", "--source", src, "--dest", dest, "--state", state];
timeOnce(once(built[3]?.outfile as string)); // the first sync: afterwards every --once below finds nothing to send
for (const b of built) timeOnce([b.outfile, "--version"]); // page cache warm for all
const timed = built.filter((b) => b.runs !== false);
const onceRuns = Math.max(5, Math.floor(runs / 3));
for (let r = 0; r < runs; r++) for (const b of timed) b.version.push(timeOnce([b.outfile, "--version"]));
for (let r = 0; r < onceRuns; r++) for (const b of timed) b.once.push(timeOnce(once(b.outfile)));

const mib = (n: number) => (n / 1048576).toFixed(1);
console.log(`\nBun ${Bun.version} runtime alone: ${mib(runtime)} MiB; a tree of ${files} files; median of ${runs} (--version) and ${onceRuns} (--once) runs\n`);
console.log("| build | size | beyond Bun's runtime | `--version` | no-change `--once` |");
console.log("|---|---|---|---|---|");
for (const b of built) {
  const t = (xs: number[]) => (xs.length ? `${median(xs).toFixed(0)} ms` : "—");
  console.log(`| ${b.name} | ${mib(b.size)} MiB | ${mib(b.size - runtime)} MiB | ${t(b.version)} | ${t(b.once)} |`);
}
