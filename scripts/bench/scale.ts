// The scale bench (issue #16): a large OpenNMS install, rrdsync beside plain `rsync -a` in the same run.
//   W1  first sync into an empty replica (time, peak RSS of rrdsync's own process, ssh logins)
//   W2  no change (3 runs each, alternating who goes first)
//   W3  1 % of the RRDs updated by the real `rrdtool update` + 1,000 strings.properties changed
//   the read side on the history W1–W3 left: status, `log | head -5`, restore --list; the state DB's bytes per file
//   (dbstat), the backups, the change-log entries
//   --watch: the daemon on the synced state: ready time (initial pass done), RSS settled, a burst of 1,000 real
//   `rrdtool update`s → on the replica
// Usage: bun scripts/bench/scale.ts [RRDS=1000000] [--dir /var/tmp/rrdsync-scale] [--runs 3] [--w3-runs 2] [--watch]
//        [--bin dist/rrdsync] [--only-rrdsync]
// RRDS RRDs in RRDS/5 resource directories, plus one strings.properties each (1,000,000 → 1,200,000 files, 202,002
// directories, ~5.4 GB on disk). It takes minutes: the tree is generated once (~4 min) and cached under --dir; the
// two replicas go beside it on disk (~5.4 GB each), which W1 fills and the end of the bench removes.
import { Database } from "bun:sqlite";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type SshdFixture, startSshd } from "../../test/helpers/sshd.ts";
import { startDaemon } from "../../test/helpers/daemon.ts";
import { cachedScaleTree, PER_DIR, resourceDir, rrdPath } from "./scale-tree.ts";
import { rrdtoolPipe, seededRandom } from "./generate-tree.ts";
import { benchSshCommand, benchUser, giveTo, opt, rrdsyncBin, writeBenchConfig } from "./user.ts";

const args = process.argv.slice(2);
const RRDS = Number(args.find((a, i) => /^\d+$/.test(a) && !args[i - 1]?.startsWith("--")) ?? 1_000_000);
const DIR = opt("--dir", "/var/tmp/rrdsync-scale");
const RUNS = Number(opt("--runs", "3"));
const W3_RUNS = Number(opt("--w3-runs", "2"));
const WATCH = args.includes("--watch");
const ONLY_OURS = args.includes("--only-rrdsync");
const bin = rrdsyncBin();

const tree = await cachedScaleTree(DIR, RRDS);
const src = tree.root;
const work = join(DIR, "run");
rmTree(work);
mkdirSync(work, { recursive: true });
const user = benchUser();
giveTo(user, work);
const sshd = await startSshd(user ? { user: user.name } : {});
const dRsync = join(work, "dest-rsync");
const dOurs = join(work, "dest-rrdsync");
const state = join(work, "state");
mkdirSync(state, { recursive: true });
const cfg = writeBenchConfig(state, { src, dest: dOurs, sshd });
const stateDb = join(state, "state.db");

console.log(`scale bench: ${tree.files.toLocaleString("en-US")} files (${tree.rrds.toLocaleString("en-US")} RRDs), ${tree.dirs.toLocaleString("en-US")} directories; ` +
  `rrdsync: ${bin.join(" ")}; work dir ${work}. This takes minutes.`);

interface Measured {
  s: number;
  /** peak RSS of the process itself (VmHWM, sampled), MiB */
  rssMiB: number;
  /** wait4's maxrss (the process or its largest descendant), MiB */
  maxrssMiB: number;
  logins: number;
  cpu: { user: number; system: number };
  stdout: string;
}

/** Runs argv to completion, sampling the process's own VmHWM (rsync's and ssh's memory are their own processes). */
async function measured(argv: string[], sshdFx: SshdFixture, opts: { okCodes?: number[] } = {}): Promise<Measured> {
  const before = sshdFx.logins();
  const t = performance.now();
  const p = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe" });
  let hwm = 0;
  const sample = () => {
    try {
      const m = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${p.pid}/status`, "utf8"));
      if (m) hwm = Math.max(hwm, Number(m[1]));
    } catch {
      // exited
    }
  };
  const timer = setInterval(sample, 50);
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearInterval(timer);
  const s = (performance.now() - t) / 1000;
  if (!(opts.okCodes ?? [0]).includes(code)) throw new Error(`${argv.join(" ")} exited ${code}: ${err.slice(-3000)}`);
  await Bun.sleep(50);
  const ru = p.resourceUsage();
  const maxrssMiB = Number(ru?.maxRSS ?? 0) / 1048576; // bytes
  return {
    // a run shorter than the sampling interval: wait4's figure (the process or its largest descendant)
    s, rssMiB: hwm > 0 ? hwm / 1024 : maxrssMiB, maxrssMiB, logins: sshdFx.logins() - before, stdout: out,
    cpu: { user: Number(ru?.cpuTime.user ?? 0) / 1e6, system: Number(ru?.cpuTime.system ?? 0) / 1e6 },
  };
}

const rsyncArgv = () => ["rsync", "-a", "--exclude=.complete", "-e", benchSshCommand(sshd), `${src}/`, `${sshd.user}@127.0.0.1:${dRsync}/`];
const oursArgv = () => [...bin, "--once", "--quiet", "--config", cfg];
const fmt = (m: Measured) => `${m.s.toFixed(1)} s, RSS ${m.rssMiB.toFixed(0)} MiB (maxrss ${m.maxrssMiB.toFixed(0)}), cpu ${m.cpu.user.toFixed(1)} u + ${m.cpu.system.toFixed(1)} s, ${m.logins} logins`;

/** Both sides of a workload, in the given order; `sync` between so one's write-back does not slow the other. */
async function both(name: string, order: Array<"rsync" | "rrdsync">): Promise<Record<"rsync" | "rrdsync", Measured | null>> {
  const out: Record<string, Measured | null> = { rsync: null, rrdsync: null };
  for (const who of order) {
    if (who === "rsync" && ONLY_OURS) continue;
    Bun.spawnSync(["sync"]);
    const m = await measured(who === "rsync" ? rsyncArgv() : oursArgv(), sshd);
    out[who] = m;
    console.log(`${name} ${who.padEnd(7)} ${fmt(m)}`);
  }
  return out as Record<"rsync" | "rrdsync", Measured | null>;
}

function rmTree(dir: string): void {
  // rm(1) is several times faster than a JS recursive delete over a million files
  if (existsSync(dir)) Bun.spawnSync(["rm", "-rf", "--one-file-system", dir]);
}

function duKiB(path: string): number {
  const r = Bun.spawnSync(["du", "-sk", path]);
  return Number(r.stdout.toString().split("\t")[0] ?? 0);
}

function countFiles(dir: string): number {
  const r = Bun.spawnSync(["sh", "-c", 'find "$0" -type f | wc -l', dir]);
  return Number(r.stdout.toString().trim());
}

/** The change-log entries written so far: the file and its rotated .gz copies. */
function changeLogEntries(): { entries: number; files: number } {
  const dir = state;
  let entries = 0;
  let files = 0;
  for (const name of readdirSync(dir)) {
    if (!name.startsWith("change_log.txt")) continue;
    files++;
    const path = join(dir, name);
    const r = name.endsWith(".gz")
      ? Bun.spawnSync(["sh", "-c", 'zcat "$0" | grep -c "^Timestamp: "', path])
      : Bun.spawnSync(["grep", "-c", "^Timestamp: ", path]);
    entries += Number(r.stdout.toString().trim() || 0);
  }
  return { entries, files };
}

function dbFacts(): { files: number; changes: number; bytes: number; tables: Array<{ name: string; bytes: number }> } {
  const db = new Database(stateDb, { readonly: true });
  try {
    const files = (db.query("SELECT count(*) AS n FROM files").get() as { n: number }).n;
    const changes = (db.query("SELECT count(*) AS n FROM changes").get() as { n: number }).n;
    const tables = db.query("SELECT name, sum(pgsize) AS bytes FROM dbstat GROUP BY name ORDER BY bytes DESC").all() as Array<{ name: string; bytes: number }>;
    const bytes = statSync(stateDb).size + (existsSync(`${stateDb}-wal`) ? statSync(`${stateDb}-wal`).size : 0);
    return { files, changes, bytes, tables };
  } finally {
    db.close();
  }
}

const table: string[] = [];
const ratio = (a: Measured | null, b: Measured | null) => (a && b ? `${(a.s / b.s).toFixed(2)}×` : "");
const rsyncCell = (m: Measured | null) => (m ? `${m.s.toFixed(1)} s, client ${m.rssMiB.toFixed(0)} MiB` : "not run");

try {
  // W1: rsync first (its replica is needed by W2/W3 either way), then rrdsync.
  mkdirSync(dRsync, { recursive: true });
  mkdirSync(dOurs, { recursive: true });
  giveTo(user, dRsync);
  giveTo(user, dOurs);
  const w1 = await both("W1", ["rsync", "rrdsync"]);
  const logAfterW1 = changeLogEntries();
  const db1 = dbFacts();
  const backupKiB = duKiB(join(state, "backup"));
  const backupFiles = existsSync(join(state, "backup")) ? countFiles(join(state, "backup")) : 0;
  table.push(`| W1 first sync | ${w1.rrdsync?.s.toFixed(1)} s, **peak RSS ${w1.rrdsync?.rssMiB.toFixed(0)} MiB**, ${w1.rrdsync?.logins} logins | ${rsyncCell(w1.rsync)} | **${ratio(w1.rrdsync, w1.rsync)}** |`);

  // W2: nothing changed.
  const w2: Array<Record<"rsync" | "rrdsync", Measured | null>> = [];
  for (let r = 0; r < RUNS; r++) w2.push(await both(`W2 run ${r + 1}`, r % 2 === 0 ? ["rrdsync", "rsync"] : ["rsync", "rrdsync"]));
  const span = (xs: number[]) => (xs.length === 0 ? "" : `${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)} s`);
  const ours2 = w2.map((x) => x.rrdsync as Measured);
  const theirs2 = w2.flatMap((x) => (x.rsync ? [x.rsync] : []));
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  table.push(`| W2 no change (${RUNS} runs) | ${span(ours2.map((m) => m.s))}, ${Math.max(...ours2.map((m) => m.rssMiB)).toFixed(0)} MiB, ${ours2[0]?.logins} logins | ${span(theirs2.map((m) => m.s))} | ` +
    `${theirs2.length ? `**${(med(ours2.map((m) => m.s)) / med(theirs2.map((m) => m.s))).toFixed(2)}×** (medians)` : ""} |`);

  // W3: 1 % of the RRDs updated by rrdtool, 1,000 strings.properties changed.
  const rand = seededRandom(16);
  const updated = Math.max(1, Math.floor(tree.rrds / 100));
  const textChanged = Math.min(1000, tree.files - tree.rrds);
  for (let r = 0; r < W3_RUNS; r++) {
    const picked = new Set<number>();
    while (picked.size < updated) picked.add(Math.floor(rand() * tree.rrds));
    // now: later than any update an earlier bench made to the cached tree (rrdtool refuses to go back)
    const when = Math.floor(Date.now() / 1000);
    const t = performance.now();
    await rrdtoolPipe([...picked].map((n) => `update ${rrdPath(n)} ${when}:${Math.floor(rand() * 1e9)}\n`), src);
    const texts = new Set<number>();
    while (texts.size < textChanged) texts.add(Math.floor(rand() * (tree.rrds / PER_DIR)));
    for (const i of texts) writeFileSync(join(src, resourceDir(i), "strings.properties"), `#${new Date((when) * 1000).toUTCString()}\nifAlias=changed in W3 run ${r + 1}\nifDescr=eth${i % 100}\n`);
    console.log(`W3 run ${r + 1}: ${updated} RRDs updated (rrdtool update) and ${textChanged} strings.properties rewritten in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    const changesBefore = dbFacts().changes;
    const x = await both(`W3 run ${r + 1}`, r % 2 === 0 ? ["rsync", "rrdsync"] : ["rrdsync", "rsync"]);
    const recorded = dbFacts().changes - changesBefore;
    const sample = [...picked].slice(0, 200).map(rrdPath);
    const same = sample.filter((rel) => readFileSync(join(src, rel)).equals(readFileSync(join(dOurs, rel)))).length;
    if (same !== sample.length) throw new Error(`W3: ${sample.length - same} of ${sample.length} sampled RRDs differ on rrdsync's replica`);
    console.log(`   rrdsync recorded ${recorded} changes (expected ${updated + textChanged}); ${same}/${sample.length} sampled RRDs identical on the replica`);
    if (r === W3_RUNS - 1) {
      table.push(`| W3 ${updated.toLocaleString("en-US")} RRDs (\`rrdtool update\`) + ${textChanged.toLocaleString("en-US")} text files changed | ${x.rrdsync?.s.toFixed(1)} s, ${x.rrdsync?.rssMiB.toFixed(0)} MiB, ${recorded} changes recorded | ${rsyncCell(x.rsync)} | **${ratio(x.rrdsync, x.rsync)}** |`);
    }
  }

  // The read side, on the history W1–W3 left.
  const status = await measured([...bin, "status", "--config", cfg], sshd, { okCodes: [0, 1] });
  table.push(`| \`rrdsync status\` | ${status.s.toFixed(2)} s, ${status.rssMiB.toFixed(0)} MiB | | |`);
  // Through a real pipe into head(1), as an admin types it; /usr/bin/time reads rrdsync's own peak RSS.
  const timeOut = join(work, "log-time.txt");
  const logHead = await measured(["bash", "-c", 'cfg=$1 out=$2; shift 2; /usr/bin/time -f "%M" -o "$out" "$@" log --config "$cfg" | head -5 >/dev/null; echo "rrdsync-exit ${PIPESTATUS[0]}"', "bash", cfg, timeOut, ...bin], sshd);
  const logExit = /rrdsync-exit (\d+)/.exec(logHead.stdout)?.[1] ?? "?";
  const logKiB = Number(/(\d+)\s*$/.exec(readFileSync(timeOut, "utf8"))?.[1] ?? 0);
  const logDir = await measured([...bin, "log", "--config", cfg, "--stat", `${resourceDir(0)}/`], sshd);
  table.push(`| \`rrdsync log \\| head -5\` | ${logHead.s.toFixed(2)} s, ${(logKiB / 1024).toFixed(0)} MiB, exit ${logExit}; \`log --stat DIR/\` ${logDir.s.toFixed(2)} s | | |`);
  const text = `${resourceDir(0)}/strings.properties`;
  const restore = await measured([...bin, "restore", text, "--list", "--config", cfg], sshd, { okCodes: [0, 1] });
  table.push(`| \`rrdsync restore ${text} --list\` | ${restore.s.toFixed(2)} s, ${restore.rssMiB.toFixed(0)} MiB | | |`);

  const db = dbFacts();
  const log = changeLogEntries();
  table.push(`| state DB / backups | ${(db.bytes / 1048576).toFixed(0)} MB (${(db.bytes / db.files).toFixed(0)} B per file; ${db.tables.slice(0, 4).map((t) => `${t.name} ${(t.bytes / 1048576).toFixed(0)} MB`).join(", ")}); ` +
    `backups after W1 ${(backupKiB / 1024).toFixed(0)} MB on disk in ${backupFiles.toLocaleString("en-US")} files; the first sync wrote ${logAfterW1.entries.toLocaleString("en-US")} change-log entries (${logAfterW1.files} files), ${log.entries.toLocaleString("en-US")} after W3 | | |`);
  console.log(`state DB after W1: ${(db1.bytes / 1048576).toFixed(0)} MB for ${db1.files} files, ${db1.changes} change rows`);

  if (WATCH) {
    // inotify needs a watch per directory: raise the limit if this machine's is too low (root; said so)
    const limitPath = "/proc/sys/fs/inotify/max_user_watches";
    const limit = Number(readFileSync(limitPath, "utf8"));
    if (limit < 2 * tree.dirs) {
      writeFileSync(limitPath, String(2 * tree.dirs));
      console.log(`raised fs.inotify.max_user_watches from ${limit} to ${2 * tree.dirs} for the --watch phase`);
    }
    // As W4 (scripts/bench/watch.ts) and the issue's target: debounce_time 1 (the default 5 s would be most of it)
    writeFileSync(cfg, JSON.stringify({ ...JSON.parse(readFileSync(cfg, "utf8")), debounce_time: 1 }));
    const d = startDaemon(["--config", cfg]);
    try {
      const t = performance.now();
      await d.waitFor((e) => e.event === "pass", 1_800_000, "the initial pass");
      const ready = (performance.now() - t) / 1000;
      await Bun.sleep(10_000);
      const rss = () => {
        const s = readFileSync(`/proc/${d.proc.pid}/status`, "utf8");
        return { rss: Number(/VmRSS:\s+(\d+)/.exec(s)?.[1]) / 1024, peak: Number(/VmHWM:\s+(\d+)/.exec(s)?.[1]) / 1024 };
      };
      const settled = rss();
      const picked = new Set<number>();
      while (picked.size < 1000) picked.add(Math.floor(rand() * tree.rrds));
      const before = d.events.length;
      await rrdtoolPipe([...picked].map((n) => `update ${rrdPath(n)} ${Math.floor(Date.now() / 1000)}:${Math.floor(rand() * 1e9)}\n`), src);
      const end = Date.now();
      const confirmed = () => d.events.slice(before).filter((e) => e.event === "batch").reduce((n, e) => n + Number(e.files), 0);
      await d.waitFor(() => confirmed() >= 1000, 120_000, "the burst confirmed");
      const doneAt = Date.parse(String(d.events.slice(before).filter((e) => e.event === "batch").at(-1)?.time));
      table.push(`| \`--watch\` (state synced) | ready (initial pass done) ${ready.toFixed(1)} s; RSS ${settled.rss.toFixed(0)} MiB settled (peak ${settled.peak.toFixed(0)} MiB) | | |`);
      table.push(`| burst of 1,000 \`rrdtool update\`s, \`debounce_time\` 1 | ${((doneAt - end) / 1000).toFixed(2)} s after the burst ends | | |`);
    } finally {
      await d.stop("SIGTERM");
    }
  }
} finally {
  await sshd.cleanup();
  console.log(`\n${tree.files.toLocaleString("en-US")} files (${tree.rrds.toLocaleString("en-US")} RRDs, ${tree.dirs.toLocaleString("en-US")} directories), loopback sshd, ${bin.join(" ")}\n`);
  console.log("| workload | rrdsync | plain `rsync -a` | ratio |\n|---|---|---|---|");
  console.log(table.join("\n"));
  if (!args.includes("--keep")) rmTree(work);
}
