// failback: `rrdsync failback` of an N-file OpenNMS-shaped tree whose promoted standby changed 10 % of its RRDs (real
// `rrdtool update`s there), beside a plain `rsync -a --files-from` of exactly those files from the standby over the
// same loopback sshd, in one run: --rounds failovers in a row (each promotes the standby again and changes another
// share there), rsync and failback alternating who goes first. Target (issue 26): failback within 2× the rsync.
//
// failback does more than the rsync: it lists the whole standby tree, pulls the changed files, merges each into
// ours in place under rrdtool's lock, sends the merged files back through the ordinary send (with its replica
// check), in groups that overlap (one pulled while the one before is sent). The rsync only pulls.
// Usage: flock /tmp/rrdsync-heavy.lock bun scripts/bench/failback.ts [--files 100000] [--share 10] [--bin dist/rrdsync]
//          [--rounds 3] [--transport rsync|sftp]
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { startSshd } from "../../test/helpers/sshd.ts";
import { generateTree, rrdtoolUpdates, seededRandom } from "./generate-tree.ts";
import { benchSshCommand, benchUser, giveTo, opt, rrdsyncBin, timedRun, writeBenchConfig } from "./user.ts";

const FILES = Number(opt("--files", "100000"));
const SHARE = Number(opt("--share", "10")) / 100;
const TRANSPORT = opt("--transport", "rsync");
const ROUNDS = Number(opt("--rounds", "3"));
const bin = rrdsyncBin();

const root = resolve(import.meta.dir, "../../.bench");
const work = join(root, "failback");
// On disk, not tmpfs: librrd writes through mmap, and on tmpfs such writes never update the file's mtime (shmem has
// no page_mkwrite), so neither the replica check nor failback could see the standby's rrdtool updates there.
const destRoot = resolve(opt("--dest-root", join(root, "failback-dest")));
rmSync(work, { recursive: true, force: true });
rmSync(destRoot, { recursive: true, force: true });
const src = join(work, "tree");
let t = performance.now();
const g = await generateTree(src, { files: FILES, seed: 3 });
console.log(`tree: ${g.files} files, ${g.rrds.length} RRDs, ${(g.bytes / 1048576).toFixed(0)} MiB in ${((performance.now() - t) / 1000).toFixed(1)} s; transport ${TRANSPORT}; rrdsync: ${bin.join(" ")}`);

const user = benchUser();
const sshd = await startSshd(user ? { user: user.name } : {});
mkdirSync(destRoot, { recursive: true });
giveTo(user, destRoot);
const dest = join(destRoot, "standby");
const cfg = writeBenchConfig(work, { src, dest, sshd, transport: TRANSPORT });
const pulled = join(work, "rsync-pull");
try {
  t = performance.now();
  await timedRun([...bin, "--once", "--quiet", "--config", cfg], sshd); // the first sync
  console.log(`first sync in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  const listFile = join(work, "changed.txt");
  const rsyncPull = async () => {
    rmSync(pulled, { recursive: true, force: true });
    mkdirSync(pulled, { recursive: true });
    const argv = ["rsync", "-a", `--files-from=${listFile}`, "-e", benchSshCommand(sshd), `${sshd.user}@127.0.0.1:${dest}/`, `${pulled}/`];
    return (await timedRun(argv, sshd)).s;
  };
  const rand = seededRandom(9);
  const times = { rsync: [] as number[], failback: [] as number[], ratio: [] as number[] };
  for (let round = 0; round < ROUNDS; round++) {
    // A failover: the standby promoted, OpenNMS there writes a newer row into SHARE of the RRDs (another share each
    // round, a later row each round).
    const changed = new Set<string>();
    while (changed.size < Math.floor(g.rrds.length * SHARE)) changed.add(g.rrds[Math.floor(rand() * g.rrds.length)] as string);
    const list = [...changed].sort();
    writeFileSync(listFile, `${list.join("\n")}\n`);
    const p = Bun.spawnSync([...bin, "promote", dest]);
    if (p.exitCode !== 0) throw new Error(`promote: ${p.stderr.toString()}`);
    await rrdtoolUpdates(list.map((r) => join(dest, r)), rand, 1_700_000_600 + round * 300);
    if (user) Bun.spawnSync(["chown", "-R", `${user.uid}:${user.gid}`, dest]);
    if (round === 0) {
      const dry = await timedRun([...bin, "failback", "--dry-run", "--quiet", "--config", cfg], sshd);
      console.log(`rrdsync failback --dry-run: ${dry.s.toFixed(2)} s (${dry.logins} logins)`);
    }
    // side by side, alternating who goes first (the rsync only reads the standby: it changes nothing failback sees)
    const r1 = round % 2 === 0 ? await rsyncPull() : null;
    const fb = await timedRun([...bin, "failback", "--quiet", "--config", cfg], sshd);
    if (process.env.BENCH_SHOW) console.log(Bun.spawnSync(["sh", "-c", `grep "failback" ${join(work, "rrdsync.log")} | tail -n 12`]).stdout.toString());
    const r2 = r1 === null ? await rsyncPull() : null;
    const rs = (r1 ?? r2) as number;
    times.rsync.push(rs);
    times.failback.push(fb.s);
    times.ratio.push(fb.s / rs);
    console.log(`round ${round + 1}: ${list.length} RRDs changed on the standby; rsync -a --files-from ${rs.toFixed(2)} s, rrdsync failback ${fb.s.toFixed(2)} s (${fb.logins} login): ${(fb.s / rs).toFixed(2)}×`);
    if (readdirSync(work).some((x) => x.startsWith(".rrdsync-failback-"))) throw new Error("a temporary directory was left");
    // the proof it did the work: both sides equal
    const check = Bun.spawnSync(["rsync", "-a", "--dry-run", "--checksum", "-i", "-e", benchSshCommand(sshd), `${src}/`, `${sshd.user}@127.0.0.1:${dest}/`]);
    const differ = check.stdout.toString().split("\n").filter((l) => /^[<>c]f/.test(l));
    if (differ.length > 0) throw new Error(`after failback ${differ.length} files differ between the two sides: ${differ.slice(0, 3).join("; ")}`);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  console.log(`median of ${ROUNDS}: rsync ${median(times.rsync).toFixed(2)} s, failback ${median(times.failback).toFixed(2)} s, ratio ${median(times.ratio).toFixed(2)}× (target ≤ 2×); both sides equal after each round (rsync --checksum)`);
} finally {
  await sshd.cleanup();
  rmSync(destRoot, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
}
