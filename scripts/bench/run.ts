// Benchmarks rrdsync against plain `rsync -a` side by side in the same run, over the loopback sshd fixture.
//   W1  initial sync of an N-file OpenNMS-like tree into an empty destination
//   W2  a pass when nothing changed (rsync must walk both sides; rrdsync compares with its state and sends nothing)
// Usage: bun scripts/bench/run.ts [--files 20000] [--runs 3] [--bin dist/rrdsync]
// As root it logs in as a plain-shell bench user (see user.ts), as a real standby's rsync user would.
// Prints each timing, the medians, the ratios, and how many ssh logins each tool made.
import { mkdirSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { startSshd } from "../../test/helpers/sshd.ts";
import { DEFAULT_SSH_CIPHERS } from "../../src/config/defaults.ts";
import { cachedBenchTree } from "./generate-tree.ts";
import { benchUser, destRootFor, giveTo, opt, rrdsyncBin, benchSshCommand, timedRun, writeBenchConfig } from "./user.ts";

const FILES = Number(opt("--files", "20000"));
const RUNS = Number(opt("--runs", "3"));
const root = resolve(import.meta.dir, "../../.bench");
const bin = rrdsyncBin();

const destRoot = destRootFor("rrdsync-bench", root);
const src = await cachedBenchTree(root, FILES);
// .complete is not in monitored_extensions, but plain rsync would copy it: exclude it there too.

const user = benchUser(); // a plain-shell login, as on a real standby (see user.ts)
const sshd = await startSshd(user ? { user: user.name } : {});

const timed = (argv: string[]) => timedRun(argv, sshd);

function rsyncArgv(dest: string, ciphers = ""): string[] {
  return ["rsync", "-a", "--exclude=.complete", "-e", benchSshCommand(sshd) + (ciphers ? ` -c ${ciphers}` : ""), `${src}/`, `${sshd.user}@127.0.0.1:${dest}/`];
}

function rrdsyncArgv(run: string, dest: string): string[] {
  return [...bin, "--once", "--quiet", "--config", writeBenchConfig(run, { src, dest, sshd })];
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const w1 = { rsync: [] as number[], rrdsync: [] as number[] };
/** plain rsync -a with rrdsync's ssh cipher preference: what rrdsync's own work costs, apart from the cipher */
const w1SameCipher: number[] = [];
const w2 = { rsync: [] as number[], rrdsync: [] as number[] };
const logins = { w1rsync: 0, w1rrdsync: 0, w2rsync: 0, w2rrdsync: 0 };

try {
  for (let r = 0; r < RUNS; r++) {
    // rrdsync's state, backups and change log on tmpfs too, like both destinations: on this VM's disk (ext4 with
    // online discard) creating 4,000 backups varies 2× between identical runs, noise that is not rrdsync's work.
    const run = join(destRoot, `state-${r}`);
    rmSync(run, { recursive: true, force: true });
    mkdirSync(run, { recursive: true });
    const dRsync = join(destRoot, `run-${r}`, "dest-rsync");
    const dOurs = join(destRoot, `run-${r}`, "dest-rrdsync");
    rmSync(join(destRoot, `run-${r}`), { recursive: true, force: true });
    mkdirSync(join(destRoot, `run-${r}`), { recursive: true });
    giveTo(user, join(destRoot, `run-${r}`));
    // Alternate who goes first, so page-cache warmth does not favour one side.
    const order = r % 2 === 0 ? ["rsync", "rrdsync"] : ["rrdsync", "rsync"];
    for (const who of order) {
      const x = who === "rsync" ? await timed(rsyncArgv(dRsync)) : await timed(rrdsyncArgv(run, dOurs));
      (w1 as any)[who].push(x.s);
      (logins as any)[`w1${who}`] = x.logins;
      console.log(`run ${r + 1} W1 ${who.padEnd(7)} ${x.s.toFixed(2)} s  (${x.logins} ssh logins)`);
    }
    for (const who of order) {
      const x = who === "rsync" ? await timed(rsyncArgv(dRsync)) : await timed(rrdsyncArgv(run, dOurs));
      (w2 as any)[who].push(x.s);
      (logins as any)[`w2${who}`] = x.logins;
      console.log(`run ${r + 1} W2 ${who.padEnd(7)} ${x.s.toFixed(2)} s  (${x.logins} ssh logins)`);
    }
    rmSync(run, { recursive: true, force: true });
    rmSync(join(destRoot, `run-${r}`), { recursive: true, force: true });
    // rsync -a with rrdsync's ssh cipher preference, on its own (a third copy on tmpfs slows whoever writes it):
    // what rrdsync's own work costs apart from its cipher choice.
    mkdirSync(join(destRoot, `run-${r}`), { recursive: true });
    giveTo(user, join(destRoot, `run-${r}`));
    const same = await timed(rsyncArgv(join(destRoot, `run-${r}`, "dest-cipher"), DEFAULT_SSH_CIPHERS));
    w1SameCipher.push(same.s);
    console.log(`run ${r + 1} W1 rsync -a with rrdsync's ssh cipher preference ${same.s.toFixed(2)} s`);
    rmSync(join(destRoot, `run-${r}`), { recursive: true, force: true });
  }
} finally {
  await sshd.cleanup();
}

const row = (name: string, w: { rsync: number[]; rrdsync: number[] }, target: string) => {
  const a = median(w.rrdsync);
  const b = median(w.rsync);
  return `${name}: rrdsync ${a.toFixed(2)} s, rsync -a ${b.toFixed(2)} s, ratio ${(a / b).toFixed(2)}× (target ${target})`;
};
console.log(`\n${FILES} files, median of ${RUNS} runs, destinations under ${destRoot}, binary: ${bin.join(" ")}`);
console.log(row("W1 initial sync", w1, "≤ 1.10×"), `· ssh logins: rrdsync ${logins.w1rrdsync}, rsync ${logins.w1rsync}`);
console.log(`   W1 against rsync -a with the same ssh cipher preference (${median(w1SameCipher).toFixed(2)} s): ${(median(w1.rrdsync) / median(w1SameCipher)).toFixed(2)}×`);
console.log(row("W2 no change   ", w2, "≤ 0.50×"), `· ssh logins: rrdsync ${logins.w2rrdsync}, rsync ${logins.w2rsync}`);
