// W4: the daemon under a burst. With N files watched and debounce_time 1, 1,000 RRDs updated by the real
// `rrdtool update` (one `rrdtool -` process, as OpenNMS's collectors write) and time until the daemon has confirmed
// all of them on the replica.
// Also reports the daemon's RSS and ssh logins. Usage:
//   bun scripts/bench/watch.ts [--files 20000] [--bursts 3]                  (OpenNMS-like tree)
//   bun scripts/bench/watch.ts --files 100000 --per-dir 5 [--bursts 1]       (100,000 files in 20,000 dirs)
// Logs in as a plain-shell user when run as root (see user.ts).
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { startDaemon } from "../../test/helpers/daemon.ts";
import { startSshd } from "../../test/helpers/sshd.ts";
import { generateSpreadTree, generateTree, rrdtoolUpdates, seededRandom } from "./generate-tree.ts";
import { benchUser, giveTo, opt } from "./user.ts";

const FILES = Number(opt("--files", "20000"));
const PER_DIR = Number(opt("--per-dir", "0"));
const BURSTS = Number(opt("--bursts", "3"));
const BURST = 1000;
const root = resolve(import.meta.dir, "../../.bench");
const work = join(root, `w4-${FILES}${PER_DIR ? `-spread${PER_DIR}` : ""}`);
const destRoot = existsSync("/dev/shm") ? "/dev/shm/rrdsync-w4" : join(work, "dest");

rmSync(work, { recursive: true, force: true });
rmSync(destRoot, { recursive: true, force: true });
mkdirSync(destRoot, { recursive: true });
const src = join(work, "src");
const t0 = performance.now();
const g = PER_DIR > 0 ? await generateSpreadTree(src, { files: FILES, perDir: PER_DIR }) : await generateTree(src, { files: FILES });
Bun.spawnSync(["sync"]); // write the fresh tree back now, not during the measurements
console.log(`generated ${g.files} files (${(g.bytes / 1048576).toFixed(0)} MiB) in ${g.dirs} directories in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

const user = benchUser();
giveTo(user, destRoot);
const sshd = await startSshd(user ? { user: user.name } : {});
const dest = join(destRoot, "replica");
const cfg = join(work, "config.json");
writeFileSync(cfg, JSON.stringify({
  source_dir: src,
  state_file: join(work, "state", "state.db"),
  remote_sync: { remote_user: sshd.user, remote_host: "127.0.0.1", port: sshd.port, remote_dest_dir: dest, ssh_key_path: sshd.clientKey, known_hosts_file: sshd.knownHosts },
  logging: { log_file: join(work, "rrdsync.log"), log_level: process.env.RRDSYNC_BENCH_LOG ?? "INFO" },
  debounce_time: 1,
}));
const bin = existsSync(join(import.meta.dir, "../../dist/rrdsync")) ? "dist/rrdsync" : "src/main.ts";
process.env.RRDSYNC_BIN ??= bin === "dist/rrdsync" ? resolve(import.meta.dir, "../../dist/rrdsync") : "";
if (process.env.RRDSYNC_BIN === "") delete process.env.RRDSYNC_BIN;

const rss = (pid: number) => {
  const s = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? 0);
  return { rss: kb("VmRSS") / 1024, peak: kb("VmHWM") / 1024 };
};

const d = startDaemon(["--config", cfg]);
const results: number[] = [];
const baseline: number[] = [];
let rand = seededRandom(42);
try {
  const ts = performance.now();
  await d.waitFor((e) => e.event === "pass", 900_000, "the initial pass");
  console.log(`initial pass: ${((performance.now() - ts) / 1000).toFixed(1)} s; daemon RSS ${rss(d.proc.pid).rss.toFixed(0)} MiB`);
  rand = seededRandom(42);
  for (let b = 0; b < BURSTS; b++) {
    await Bun.sleep(3000);
    const before = d.events.length;
    const logins0 = sshd.logins();
    const picked = new Set<string>();
    while (picked.size < BURST) picked.add(g.rrds[Math.floor(rand() * g.rrds.length)] as string);
    const start = Date.now();
    await rrdtoolUpdates([...picked].map((rel) => join(src, rel)), rand);
    const end = Date.now();
    const batches = () => d.events.slice(before).filter((e) => e.event === "batch");
    const confirmed = () => batches().reduce((n, e) => n + Number(e.files), 0);
    await d.waitFor(() => confirmed() >= BURST, 60_000, "the burst confirmed");
    const doneAt = Date.parse(String(batches().at(-1)?.time));
    // The replica must really hold the new bytes.
    let same = 0;
    for (const rel of picked) if (readFileSync(join(src, rel)).equals(readFileSync(join(dest, rel)))) same++;
    const lat = (doneAt - end) / 1000;
    results.push(lat);
    const m = rss(d.proc.pid);
    console.log(`burst ${b + 1}: ${BURST} RRDs updated (rrdtool -) in ${end - start} ms; on the replica ${lat.toFixed(2)} s after the burst ended ` +
      `(${batches().length} batches, ${sshd.logins() - logins0} ssh logins, ${same}/${BURST} verified); RSS ${m.rss.toFixed(0)} MiB, peak ${m.peak.toFixed(0)} MiB`);
  }
  // The same burst for plain rsync, as a tool with delay=1 would run it (lsyncd): 1 s after the burst began,
  // one `rsync -a --files-from` of exactly those files. The updated files' pages are as cold as in the daemon's
  // case (an in-place update writes a few pages; the transfer reads the whole file), so this is the floor.
  await d.stop("SIGTERM");
  for (let b = 0; b < BURSTS; b++) {
    const picked = new Set<string>();
    while (picked.size < BURST) picked.add(g.rrds[Math.floor(rand() * g.rrds.length)] as string);
    const start = Date.now();
    await rrdtoolUpdates([...picked].map((rel) => join(src, rel)), rand);
    const end = Date.now();
    await Bun.sleep(Math.max(0, start + 1000 - Date.now()));
    const ssh = `ssh -p ${sshd.port} -i ${sshd.clientKey} -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile=${sshd.knownHosts}`;
    const p = Bun.spawn(["rsync", "-a", "--files-from=-", "--from0", "-e", ssh, `${src}/`, `${sshd.user}@127.0.0.1:${dest}/`], {
      stdin: new TextEncoder().encode(`${[...picked].join("\0")}\0`), stdout: "ignore", stderr: "inherit",
    });
    await p.exited;
    const lat = (Date.now() - end) / 1000;
    baseline.push(lat);
    console.log(`plain rsync, same kind of burst, started 1 s after it began: on the replica ${lat.toFixed(2)} s after the burst ended`);
  }
} finally {
  if (d.proc.exitCode === null) await d.stop("SIGTERM");
  await sshd.cleanup();
}
const med = [...results].sort((a, b) => a - b)[Math.floor(results.length / 2)] as number;
const base = [...baseline].sort((a, b) => a - b)[Math.floor(baseline.length / 2)] as number;
console.log(`\nW4 ${FILES} files${PER_DIR ? ` in ${g.dirs} directories` : ""}: median ${med.toFixed(2)} s from burst end to all ${BURST} on the replica ` +
  `(target ≤ 1.5 s; lsyncd delay=1 measured 1.09 s); plain rsync of the same kind of burst 1 s after it began: ${base.toFixed(2)} s, ratio ${(med / base).toFixed(2)}×`);
rmSync(destRoot, { recursive: true, force: true });
