// The demo: a generated OpenNMS-like sample tree replicated to a local directory (no server needed), twice,
// with a change in between so the change log has something to show.
import { appendFileSync, existsSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { generateTree, touchRrdUpdate } from "./bench/generate-tree.ts";

const root = resolve(process.env.RRDSYNC_DEMO_DIR ?? join(tmpdir(), "rrdsync-demo"));
const src = join(root, "source");
const dest = join(root, "replica");
const state = join(root, "state", "rrdsync.db");
const bin = process.env.RRDSYNC_BIN ? [resolve(process.env.RRDSYNC_BIN)] : [process.execPath, resolve(import.meta.dir, "../src/main.ts")];

function run(title: string): void {
  console.log(`\n$ rrdsync --once --source ${src} --dest ${dest} --state ${state}    # ${title}`);
  const p = Bun.spawnSync([...bin, "--once", "--source", src, "--dest", dest, "--state", state], { stdout: "inherit", stderr: "inherit" });
  if (p.exitCode !== 0) {
    console.error(`demo: rrdsync exited with ${p.exitCode}`);
    process.exit(p.exitCode ?? 1);
  }
}

rmSync(root, { recursive: true, force: true });
const made = await generateTree(src, { files: 300, seed: 7 });
console.log(`demo: generated ${made.files} files (${(made.bytes / 1048576).toFixed(1)} MiB) in ${made.dirs} directories under ${src}`);

run("initial sync");
run("nothing changed: no transfer, no remote walk");

// One RRD update and one edited properties file, as OpenNMS would do between collections.
const glob = new Bun.Glob("**/*.{rrd,properties}");
let rrd = "";
let props = "";
for (const f of glob.scanSync({ cwd: src })) {
  if (!rrd && f.endsWith(".rrd")) rrd = f;
  if (!props && f.endsWith("strings.properties")) props = f;
  if (rrd && props) break;
}
touchRrdUpdate(join(src, rrd), Math.random);
appendFileSync(join(src, props), "sysLocation=rack 42, row B\n");
run(`after an RRD update (${rrd}) and an edit of ${props}`);

const changeLog = join(root, "state", "change_log.txt");
if (existsSync(changeLog)) {
  const entries = readFileSync(changeLog, "utf8").split(/^-{80}$/m);
  console.log(`\nthe last two change-log entries (${changeLog}):\n${entries.slice(-3).join("-".repeat(80))}`);
}
console.log(`demo: replica in ${dest}; state, change log and backups in ${join(root, "state")}`);
