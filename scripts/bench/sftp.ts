// The SFTP transport against the rsync transport and plain rsync, side by side in the same run, loopback sshd.
//   W1   initial sync of an N-file OpenNMS-like tree: rrdsync via SFTP vs rrdsync via rsync (target ≤ 1.5×)
//   BIG  one new 500 MB file: rrdsync via SFTP vs plain `rsync -a` (target ≤ 1.2×), also vs rsync -a given
//        rrdsync's ssh cipher preference and vs rrdsync's rsync transport
// Usage: bun scripts/bench/sftp.ts [--files 20000] [--big-mb 500] [--runs 5] [--bin dist/rrdsync]
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { DEFAULT_SSH_CIPHERS } from "../../src/config/defaults.ts";
import { startSshd } from "../../test/helpers/sshd.ts";
import { cachedBenchTree } from "./generate-tree.ts";
import { benchUser, destRootFor, giveTo, opt, rrdsyncBin, benchSshCommand, timedRun, writeBenchConfig } from "./user.ts";

const FILES = Number(opt("--files", "20000"));
const BIG_MB = Number(opt("--big-mb", "500"));
const RUNS = Number(opt("--runs", "5"));
const root = resolve(import.meta.dir, "../../.bench");
const bin = rrdsyncBin();
const destRoot = destRootFor("rrdsync-bench-sftp", root);

const src = await cachedBenchTree(root, FILES);
// The big file sits alone in its tree; its bytes are random (incompressible, no delta to find: a first copy).
const bigSrc = join(root, `big-${BIG_MB}`);
if (!existsSync(join(bigSrc, "big.dat"))) {
  mkdirSync(bigSrc, { recursive: true });
  const dd = Bun.spawnSync(["dd", "if=/dev/urandom", `of=${join(bigSrc, "big.dat")}`, "bs=1M", `count=${BIG_MB}`], { stderr: "ignore" });
  if (dd.exitCode !== 0) throw new Error("dd failed");
}

const user = benchUser();
const sshd = await startSshd(user ? { user: user.name } : {});
const ssh = benchSshCommand(sshd);

const timed = (argv: string[]) => timedRun(argv, sshd);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const times: Record<string, number[]> = {};
const logins: Record<string, number> = {};

/** One timed run of `who` into a fresh destination (and fresh rrdsync state), then both removed. */
async function once(label: string, tree: string, who: string): Promise<void> {
  const dir = join(destRoot, label, who);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, "state"), { recursive: true });
  mkdirSync(join(dir, "dest"), { recursive: true });
  giveTo(user, join(dir, "dest"));
  const dest = join(dir, "dest");
  const argv = who.startsWith("rsync -a")
    ? ["rsync", "-a", "--exclude=.complete", "-e", `${ssh}${who.includes("cipher") ? ` -c ${DEFAULT_SSH_CIPHERS}` : ""}`, `${tree}/`, `${sshd.user}@127.0.0.1:${dest}/`]
    : [...bin, "--once", "--quiet", "--config", writeBenchConfig(join(dir, "state"), {
        src: tree, dest, sshd, transport: who === "rrdsync sftp" ? "sftp" : "rsync", extra: { monitored_extensions: tree === bigSrc ? [] : undefined },
      })];
  const x = await timed(argv);
  (times[`${label} ${who}`] ??= []).push(x.s);
  logins[`${label} ${who}`] = x.logins;
  console.log(`${label} ${who.padEnd(24)} ${x.s.toFixed(2)} s  (${x.logins} ssh logins)`);
  rmSync(dir, { recursive: true, force: true });
}

try {
  for (let r = 0; r < RUNS; r++) {
    // Alternate who goes first, so page-cache warmth does not favour one side.
    const w1 = ["rrdsync rsync", "rrdsync sftp"];
    for (const who of r % 2 === 0 ? w1 : w1.toReversed()) await once("W1", src, who);
    const big = ["rsync -a", "rsync -a (same cipher)", "rrdsync rsync", "rrdsync sftp"];
    for (const who of r % 2 === 0 ? big : big.toReversed()) await once("BIG", bigSrc, who);
  }
} finally {
  await sshd.cleanup();
  rmSync(destRoot, { recursive: true, force: true });
}

const m = (k: string) => median(times[k] as number[]);
console.log(`\nmedians of ${RUNS} runs, binary: ${bin.join(" ")}`);
console.log(`W1 ${FILES} files: rrdsync via SFTP ${m("W1 rrdsync sftp").toFixed(2)} s, via rsync ${m("W1 rrdsync rsync").toFixed(2)} s: ${(m("W1 rrdsync sftp") / m("W1 rrdsync rsync")).toFixed(2)}× (target ≤ 1.5×) · ssh logins: sftp ${logins["W1 rrdsync sftp"]}, rsync ${logins["W1 rrdsync rsync"]}`);
console.log(`BIG ${BIG_MB} MB: rrdsync via SFTP ${m("BIG rrdsync sftp").toFixed(2)} s, plain rsync -a ${m("BIG rsync -a").toFixed(2)} s: ${(m("BIG rrdsync sftp") / m("BIG rsync -a")).toFixed(2)}× (target ≤ 1.2×)`);
console.log(`    against rsync -a with rrdsync's cipher preference (${m("BIG rsync -a (same cipher)").toFixed(2)} s): ${(m("BIG rrdsync sftp") / m("BIG rsync -a (same cipher)")).toFixed(2)}×; rrdsync via rsync ${m("BIG rrdsync rsync").toFixed(2)} s`);
