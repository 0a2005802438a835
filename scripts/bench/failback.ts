// failback: `rrdsync failback` of an N-file OpenNMS-shaped tree whose promoted standby changed 10 % of its RRDs (real
// `rrdtool update`s there), beside a plain `rsync -a --files-from` of exactly those files from the standby over the
// same loopback sshd, in one run. Target (issue 26): failback within 2× the rsync.
//
// failback does more than the rsync: it lists the whole standby tree, pulls the changed files, merges each into
// ours in place under rrdtool's lock, sends the merged files back through the ordinary send (with its replica
// check) and walks the source once (the full pass). The rsync only pulls. The rsync runs twice before the failback
// (caches warm for both) and once after; its median is the baseline.
// Usage: flock /tmp/rrdsync-heavy.lock bun scripts/bench/failback.ts [--files 100000] [--share 10] [--bin dist/rrdsync]
//          [--transport rsync|sftp]
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { startSshd } from "../../test/helpers/sshd.ts";
import { generateTree, rrdtoolUpdates, seededRandom } from "./generate-tree.ts";
import { benchSshCommand, benchUser, giveTo, opt, rrdsyncBin, timedRun, writeBenchConfig } from "./user.ts";

const FILES = Number(opt("--files", "100000"));
const SHARE = Number(opt("--share", "10")) / 100;
const TRANSPORT = opt("--transport", "rsync");
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
  // The failover: the standby promoted, OpenNMS there writes a newer row into SHARE of the RRDs.
  const rand = seededRandom(9);
  const changed = new Set<string>();
  while (changed.size < Math.floor(g.rrds.length * SHARE)) changed.add(g.rrds[Math.floor(rand() * g.rrds.length)] as string);
  const list = [...changed].sort();
  const p = Bun.spawnSync([...bin, "promote", dest]);
  if (p.exitCode !== 0) throw new Error(`promote: ${p.stderr.toString()}`);
  t = performance.now();
  await rrdtoolUpdates(list.map((r) => join(dest, r)), rand, 1_700_000_600);
  if (user) Bun.spawnSync(["chown", "-R", `${user.uid}:${user.gid}`, dest]);
  console.log(`standby: ${list.length} RRDs updated by rrdtool in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  const listFile = join(work, "changed.txt");
  writeFileSync(listFile, `${list.join("\n")}\n`);

  const rsyncPull = async () => {
    rmSync(pulled, { recursive: true, force: true });
    mkdirSync(pulled, { recursive: true });
    const argv = ["rsync", "-a", `--files-from=${listFile}`, "-e", benchSshCommand(sshd), `${sshd.user}@127.0.0.1:${dest}/`, `${pulled}/`];
    return (await timedRun(argv, sshd)).s;
  };
  const base: number[] = [];
  base.push(await rsyncPull(), await rsyncPull());
  const dry = await timedRun([...bin, "failback", "--dry-run", "--quiet", "--config", cfg], sshd);
  const fb = await timedRun([...bin, "failback", "--quiet", "--config", cfg], sshd);
  if (process.env.BENCH_SHOW) console.log(Bun.spawnSync(["sh", "-c", `grep -v "rolled up\\|merged from\\|recorded" ${join(work, "rrdsync.log")} | tail -n 40`]).stdout.toString());
  base.push(await rsyncPull());
  const n = readdirSync(join(work)).filter((x) => x.startsWith(".rrdsync-failback-")).length;
  if (n !== 0) throw new Error("a temporary directory was left");
  const median = [...base].sort((a, b) => a - b)[1] as number;
  console.log(`rsync -a --files-from (${list.length} files) from the standby: ${base.map((s) => s.toFixed(2)).join(", ")} s, median ${median.toFixed(2)} s`);
  console.log(`rrdsync failback --dry-run: ${dry.s.toFixed(2)} s (${dry.logins} logins)`);
  console.log(`rrdsync failback: ${fb.s.toFixed(2)} s (${fb.logins} logins): ${(fb.s / median).toFixed(2)}× the rsync (target ≤ 2×)`);
  // the proof it did the work: the standby's rows are here and both sides equal
  const check = Bun.spawnSync(["rsync", "-a", "--dry-run", "--checksum", "-i", "-e", benchSshCommand(sshd), `${src}/`, `${sshd.user}@127.0.0.1:${dest}/`]);
  const differ = check.stdout.toString().split("\n").filter((l) => /^[<>c]f/.test(l));
  if (process.env.BENCH_SHOW) console.log(differ.slice(0, 5).join("\n"));
  console.log(`after failback: ${differ.length} files differ between the two sides (rsync --checksum)`);
} finally {
  await sshd.cleanup();
  rmSync(destRoot, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
}
