// The WAN bench (issue #18): rrdsync (rsync and SFTP transports) beside plain `rsync -a`, through a relay that
// simulates a link (wan-relay.ts) in front of the loopback sshd, at 50 ms RTT / 20 Mbit/s and 150 ms / 5 Mbit/s.
//   login    one ssh login + `true`
//   first    first sync of 240 files (200 RRDs made by rrdtool, 53 KB each, + 40 text files)
//   update   100 RRDs updated by `rrdtool update` + 10 text files appended (bytes up counted at the relay)
//   none     nothing changed
//   watch    the daemon, debounce_time 1: a burst of 20 `rrdtool update`s; burst end → all on the replica (bytes
//            equal), per transport, with the ssh logins it made (sshd's log)
//   compress (--compress) plain rsync's first sync and update workload without compression, -z (negotiated),
//            --compress-choice=zstd, zlib and lz4, over the slow link (--compress-on fast,slow: both)
// Usage: bun scripts/bench/wan.ts [--profile fast|slow|both] [--runs 3] [--bursts 3] [--compress] [--nudge] [--bin dist/rrdsync]
//        [--who "rsync -a,rrdsync rsync,rrdsync sftp"] [--no-watch]   (a part of the table, while tuning)
//   --nudge: after the burst's updates, set each file's times to what they are (an IN_ATTRIB event), for a
//            watcher that does not see rrdtool's mmap writes (Bun's fs.watch: no IN_CLOSE_WRITE); the bytes stay rrdtool's
import { readFileSync, rmSync, mkdirSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { startDaemon } from "../../test/helpers/daemon.ts";
import { type SshdFixture, startSshd } from "../../test/helpers/sshd.ts";
import { seededRandom } from "./generate-tree.ts";
import { benchSshCommand, benchUser, destRootFor, giveTo, opt, rrdsyncBin, timedRun, writeBenchConfig } from "./user.ts";
import { type LinkProfile, type RelayProcess, spawnRelay } from "./wan-relay.ts";
import { appendTexts, makeWanTree, pick, RrdPipe, updateCommands } from "./wan-tree.ts";

const PROFILES: Record<string, LinkProfile & { name: string }> = {
  fast: { name: "50 ms RTT, 20 Mbit/s", delayMs: 25, mbit: 20 },
  slow: { name: "150 ms RTT, 5 Mbit/s", delayMs: 75, mbit: 5 },
};
const which = opt("--profile", "both");
const RUNS = Number(opt("--runs", "3"));
const BURSTS = Number(opt("--bursts", "3"));
/** --compress: the compression figures over the slow link; --compress-on fast,slow for both */
const COMPRESS_ON = process.argv.includes("--compress") ? opt("--compress-on", "slow").split(",") : [];
const NUDGE = process.argv.includes("--nudge");
const root = resolve(import.meta.dir, "../../.bench/wan");
const destRoot = destRootFor("rrdsync-bench-wan", root);
const bin = rrdsyncBin();
if (bin.length === 1) process.env.RRDSYNC_BIN = bin[0];
else delete process.env.RRDSYNC_BIN;

rmSync(root, { recursive: true, force: true });
rmSync(destRoot, { recursive: true, force: true });
const src = join(root, "tree");
const tree = await makeWanTree(src);
console.log(`tree: ${tree.rrds.length} RRDs (rrdtool, 53,480 bytes each) + ${tree.texts.length} text files, ${(tree.bytes / 1e6).toFixed(1)} MB; binary: ${bin.join(" ")}`);
const user = benchUser();
const sshd = await startSshd(user ? { user: user.name } : {});
const rand = seededRandom(5);
const rrd = new RrdPipe();

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
type Row = { s: number[]; up: number[]; logins: number[] };
const results = new Map<string, Row>();
const record = (key: string, s: number, up: number, logins: number) => {
  const r = results.get(key) ?? { s: [], up: [], logins: [] };
  r.s.push(s);
  r.up.push(up);
  r.logins.push(logins);
  results.set(key, r);
};

/** The fixture as seen through the relay: its port, and a known_hosts pinning the same host key for that port. */
function throughRelay(relay: RelayProcess): SshdFixture {
  const knownHosts = join(root, `known_hosts_${relay.port}`);
  writeFileSync(knownHosts, `[127.0.0.1]:${relay.port} ${sshd.hostKeys.ed25519}\n`);
  return { ...sshd, port: relay.port, knownHosts };
}

function freshDir(...parts: string[]): string {
  const d = join(...parts);
  rmSync(d, { recursive: true, force: true });
  mkdirSync(d, { recursive: true });
  return d;
}

type Who = "rsync -a" | "rrdsync rsync" | "rrdsync sftp";
const WHO = (opt("--who", "rsync -a,rrdsync rsync,rrdsync sftp").split(",") as Who[]);
const WATCH = !process.argv.includes("--no-watch");

async function runProfile(key: string, p: LinkProfile & { name: string }): Promise<void> {
  const relay = await spawnRelay(sshd.port, p);
  const fx = throughRelay(relay);
  const ssh = benchSshCommand(fx);
  const timed = async (label: string, argv: string[]) => {
    const before = await relay.stats();
    const x = await timedRun(argv, sshd);
    const up = (await relay.stats()).up - before.up;
    record(`${key} ${label}`, x.s, up, x.logins);
    console.log(`${p.name}  ${label.padEnd(40)} ${x.s.toFixed(2)} s  ${(up / 1e6).toFixed(3)} MB up  ${x.logins} logins`);
  };
  try {
    for (let i = 0; i < 3; i++) await timed("login", [...ssh.split(" "), `${sshd.user}@127.0.0.1`, "true"]);
    const dests: Record<Who, string> = { "rsync -a": "", "rrdsync rsync": "", "rrdsync sftp": "" };
    const states: Record<Who, string> = { ...dests };
    const argv = (who: Who, extra: Record<string, unknown> = {}) =>
      who === "rsync -a"
        ? ["rsync", "-a", "-e", ssh, `${src}/`, `${sshd.user}@127.0.0.1:${dests[who]}/`]
        : [...bin, "--once", "--quiet", "--config", writeBenchConfig(states[who], { src, dest: dests[who], sshd: fx, transport: who.split(" ")[1], extra })];
    for (let r = 0; r < RUNS; r++) {
      for (const who of WHO) {
        const slug = who.replace(/\W+/g, "-");
        dests[who] = freshDir(destRoot, key, slug, "dest");
        giveTo(user, dests[who]);
        states[who] = freshDir(root, key, slug, "state");
      }
      // Alternate who goes first, so page-cache warmth does not favour one side.
      const order = r % 2 === 0 ? WHO : WHO.toReversed();
      for (const who of order) await timed(`first ${who}`, argv(who));
      await rrd.run(updateCommands(src, tree, pick(tree.rrds, 100, rand), rand));
      appendTexts(src, pick(tree.texts, 10, rand), r);
      for (const who of order) await timed(`update ${who}`, argv(who));
      for (const who of order) await timed(`none ${who}`, argv(who));
    }
    for (const who of WATCH ? (["rrdsync rsync", "rrdsync sftp"] as const).filter((w) => WHO.includes(w)) : []) await watchBursts(key, p.name, states[who], dests[who], fx, who.split(" ")[1] as string, relay);
    if (COMPRESS_ON.includes(key)) await compression(key, p.name, ssh, timed);
  } finally {
    await relay.stop();
  }
}

/** The daemon over the link: bursts of 20 real `rrdtool update`s, burst end → every file's bytes equal on the replica. */
async function watchBursts(key: string, name: string, stateDir: string, dest: string, fx: SshdFixture, transport: string, relay: RelayProcess): Promise<void> {
  const cfg = writeBenchConfig(stateDir, { src, dest, sshd: fx, transport, extra: { debounce_time: 1 } });
  const d = startDaemon(["--config", cfg]);
  try {
    await d.waitFor((e) => e.event === "pass", 300_000, "the initial pass");
    for (let b = 0; b < BURSTS; b++) {
      await Bun.sleep(2500);
      const picked = pick(tree.rrds, 20, rand);
      const logins0 = sshd.logins();
      const up0 = (await relay.stats()).up;
      const events0 = d.events.length;
      await rrd.run(updateCommands(src, tree, picked, rand));
      if (NUDGE) {
        for (const rel of picked) {
          const st = statSync(join(src, rel));
          utimesSync(join(src, rel), st.atime, st.mtime);
        }
      }
      const end = performance.now();
      const want = new Map(picked.map((rel) => [rel, readFileSync(join(src, rel))]));
      for (;;) {
        for (const [rel, bytes] of want) {
          try {
            if (readFileSync(join(dest, rel)).equals(bytes)) want.delete(rel);
          } catch {
            // not there yet
          }
        }
        if (want.size === 0) break;
        if (performance.now() - end > 60_000) throw new Error(`${transport} daemon: ${want.size} files not on the replica 60 s after the burst${NUDGE ? "" : " (a watcher blind to rrdtool's mmap writes? try --nudge)"}`);
        await Bun.sleep(5);
      }
      const s = (performance.now() - end) / 1000;
      await Bun.sleep(300); // the batch event and sshd's log line
      const batches = d.events.slice(events0).filter((e) => e.event === "batch");
      const logins = sshd.logins() - logins0;
      const up = (await relay.stats()).up - up0;
      record(`${key} watch ${transport}`, s, up, logins);
      console.log(`${name}  watch ${transport.padEnd(6)} burst ${b + 1}: on the replica ${s.toFixed(2)} s after the burst ended; ` +
        `${batches.length} batch(es) (${batches.map((e) => `${e.files} files in ${e.seconds} s`).join(", ")}), ${logins} ssh logins, ${(up / 1e3).toFixed(1)} kB up`);
    }
  } finally {
    await d.stop("SIGTERM");
  }
}

/** Compression over the link: plain rsync's variants on the first sync and on the update workload, and rrdsync's option. */
async function compression(key: string, name: string, ssh: string, timed: (label: string, argv: string[]) => Promise<void>): Promise<void> {
  const variants: Record<string, string[]> = {
    "rsync -a": [],
    "rsync -az": ["-z"],
    "rsync -a zstd": ["-z", "--compress-choice=zstd"],
    "rsync -a zlib": ["-z", "--compress-choice=zlib"],
    "rsync -a lz4": ["-z", "--compress-choice=lz4"],
  };
  for (let r = 0; r < RUNS; r++) {
    const dests = Object.fromEntries(Object.keys(variants).map((v) => {
      const d = freshDir(destRoot, key, "compress", v.replace(/\W+/g, "-"));
      giveTo(user, d);
      return [v, d];
    }));
    const order = r % 2 === 0 ? Object.keys(variants) : Object.keys(variants).toReversed();
    const argv = (v: string) => ["rsync", "-a", ...(variants[v] as string[]), "-e", ssh, `${src}/`, `${sshd.user}@127.0.0.1:${dests[v]}/`];
    for (const v of order) await timed(`compress first ${v}`, argv(v));
    await rrd.run(updateCommands(src, tree, pick(tree.rrds, 100, rand), rand));
    appendTexts(src, pick(tree.texts, 10, rand), 100 + r);
    for (const v of order) await timed(`compress update ${v}`, argv(v));
  }
  console.log(`${name}: compression measured`);
}

try {
  for (const [key, p] of Object.entries(PROFILES)) if (which === "both" || which === key) await runProfile(key, p);
} finally {
  await rrd.close();
  await sshd.cleanup();
  rmSync(destRoot, { recursive: true, force: true });
}

const cell = (key: string, unit = "s") => {
  const r = results.get(key);
  if (!r) return "";
  const lo = Math.min(...r.s);
  const hi = Math.max(...r.s);
  const s = r.s.length > 1 ? `${median(r.s).toFixed(2)} s (${lo.toFixed(2)}–${hi.toFixed(2)})` : `${median(r.s).toFixed(2)} s`;
  return unit === "s" ? s : `${s}, ${(median(r.up) / 1e6).toFixed(2)} MB up, ${Math.max(...r.logins)} logins`;
};
const ratio = (a: string, b: string) => {
  const x = results.get(a);
  const y = results.get(b);
  return x && y ? ` (${(median(x.s) / median(y.s)).toFixed(2)}×)` : "";
};
for (const [key, p] of Object.entries(PROFILES)) {
  if (!results.has(`${key} login`)) continue;
  console.log(`\n${p.name}, median of ${RUNS} runs (min–max), bytes up counted at the relay; binary: ${bin.join(" ")}`);
  console.log(`| workload | plain \`rsync -a\` | rrdsync, rsync transport | rrdsync, SFTP transport |\n|---|---|---|---|`);
  console.log(`| one ssh login + command | ${cell(`${key} login`)} | | |`);
  for (const [w, label] of [["first", "first sync (240 files, 10.7 MB)"], ["update", "100 RRDs updated + 10 text files appended"], ["none", "nothing changed"]]) {
    console.log(`| ${label} | ${cell(`${key} ${w} rsync -a`, "up")} | ${cell(`${key} ${w} rrdsync rsync`, "up")}${ratio(`${key} ${w} rrdsync rsync`, `${key} ${w} rsync -a`)} | ${cell(`${key} ${w} rrdsync sftp`, "up")}${ratio(`${key} ${w} rrdsync sftp`, `${key} ${w} rsync -a`)} |`);
  }
  console.log(`| \`--watch\`, debounce_time 1, burst of 20 RRDs: on the replica after the burst ends | | ${cell(`${key} watch rsync`, "up")} | ${cell(`${key} watch sftp`, "up")} |`);
  if (results.has(`${key} compress first rsync -a`)) {
    console.log(`\ncompression, ${p.name}:\n| rsync | first sync | 100 RRDs + 10 texts |\n|---|---|---|`);
    for (const v of ["rsync -a", "rsync -az", "rsync -a zstd", "rsync -a zlib", "rsync -a lz4"]) {
      console.log(`| ${v} | ${cell(`${key} compress first ${v}`, "up")} | ${cell(`${key} compress update ${v}`, "up")} |`);
    }
  }
}
