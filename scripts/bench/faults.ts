// Issue #4's two figures, over the loopback sshd:
//   outage   the daemon watches N files; sshd goes away, 1,000 files change, it stays away 60 s, comes back:
//            seconds from its restart until all 1,000 are on the replica (and verified)
//   rename   a directory of 1,000 RRDs (~38 MB) is renamed; one `--once`: bytes that crossed the loopback during
//            the run (from /proc/net/dev), beside the directory's size
// Usage: bun scripts/bench/faults.ts [--outage 60] [--files 1000]
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { startSshd } from "../../test/helpers/sshd.ts";
import { makeRrd, rrdtoolUpdates, seededRandom } from "./generate-tree.ts";
import { benchUser, destRootFor, giveTo, opt, rrdsyncBin, writeBenchConfig } from "./user.ts";

const OUTAGE_S = Number(opt("--outage", "60"));
const FILES = Number(opt("--files", "1000"));
const root = resolve(import.meta.dir, "../../.bench/faults");
const destRoot = destRootFor("rrdsync-bench-faults", root);
const bin = rrdsyncBin();
rmSync(root, { recursive: true, force: true });
rmSync(destRoot, { recursive: true, force: true });
const src = join(root, "tree");
const rand = seededRandom(11);
const rels: string[] = [];
for (let i = 0; i < FILES; i++) {
  const rel = `snmp/node-a/if${i}.rrd`;
  mkdirSync(join(src, rel, ".."), { recursive: true });
  writeFileSync(join(src, rel), makeRrd([`ds${i % 8}`], "COUNTER", 1_700_000_000, rand));
  rels.push(rel);
}
const user = benchUser();
const sshd = await startSshd(user ? { user: user.name } : {});
mkdirSync(destRoot, { recursive: true });
giveTo(user, destRoot);
const dest = join(destRoot, "dest");
mkdirSync(join(root, "state"), { recursive: true });
const cfg = writeBenchConfig(join(root, "state"), { src, dest, sshd, extra: { debounce_time: 1, rescan_interval: 0 } });

const loBytes = () => {
  const line = readFileSync("/proc/net/dev", "utf8").split("\n").find((l) => l.trim().startsWith("lo:")) ?? "";
  const f = line.split(":")[1]?.trim().split(/\s+/).map(Number) ?? [];
  return (f[0] ?? 0) + (f[8] ?? 0); // received + transmitted: each byte on loopback counts once each way
};

try {
  // outage
  const d = Bun.spawn([...bin, "--watch", "--json", "--config", cfg], { stdout: "pipe", stderr: "ignore" });
  const dec = new TextDecoder();
  let out = "";
  void (async () => {
    for await (const c of d.stdout as ReadableStream<Uint8Array>) out += dec.decode(c, { stream: true });
  })();
  while (!out.includes('"event":"pass"')) await Bun.sleep(50);
  await sshd.stop();
  const now = 1_700_000_300;
  await rrdtoolUpdates(rels.map((rel) => join(src, rel)), rand, now);
  const want = new Map(rels.map((r) => [r, readFileSync(join(src, r))]));
  console.log(`outage: sshd stopped, ${FILES} RRDs updated; waiting ${OUTAGE_S} s`);
  await Bun.sleep(OUTAGE_S * 1000);
  await sshd.start();
  const t0 = performance.now();
  for (;;) {
    let all = true;
    for (const [r, data] of want) {
      try {
        if (!readFileSync(join(dest, r)).equals(data)) all = false;
      } catch {
        all = false;
      }
      if (!all) break;
    }
    if (all) break;
    await Bun.sleep(100);
  }
  console.log(`outage: all ${FILES} files on the replica ${((performance.now() - t0) / 1000).toFixed(2)} s after sshd came back (after ${OUTAGE_S} s down)`);
  d.kill("SIGTERM");
  await d.exited;

  // rename
  const size = rels.reduce((n, r) => n + (want.get(r)?.length ?? 0), 0);
  renameSync(join(src, "snmp/node-a"), join(src, "snmp/node-b"));
  const b0 = loBytes();
  const t1 = performance.now();
  const p = Bun.spawn([...bin, "--once", "--config", cfg], { stdout: "pipe", stderr: "pipe" });
  const [o, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
  const moved = Number(/(\d+) renamed on the replica/.exec(o)?.[1] ?? 0);
  console.log(`rename: a directory of ${FILES} files renamed (${(size / 1048576).toFixed(1)} MiB): exit ${code}, ${moved} moved on the replica in ${((performance.now() - t1) / 1000).toFixed(2)} s; ${(loBytes() - b0).toLocaleString("en-US")} bytes crossed the loopback (both directions, all of it: ssh handshake, the move script, rsync's no-change checks)`);
} finally {
  await sshd.cleanup();
}
