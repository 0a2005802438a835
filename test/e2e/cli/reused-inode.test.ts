// End to end (issue 24, item 2): a new file on a reused inode is not a rename. Delete A, restore B with A's size and
// mtime (cp -p, as restores do): ext4 hands B A's freed inode at once (checked here, or the test says it could not
// set the case up). A move would leave A's bytes under B's name on the replica; B must be sent. A real rename stays
// a move (test/e2e/cli/renames.test.ts).
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { eventually } from "../../helpers/daemon.ts";
import { e2eSuite } from "../../helpers/suite.ts";
import { runRrdsync, type World, writeTree } from "../../helpers/world.ts";

setDefaultTimeout(120_000);
const suite = e2eSuite("reuse");

function sh(argv: string[]): void {
  const r = Bun.spawnSync(argv, { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr.toString()}`);
}

/**
 * Replaces `a` by `b` the way a restore does: B gets B's bytes (A's size) and A's mtime to the nanosecond (touch -r,
 * as cp -p and tar do), on A's freed inode. ext4 gives a new file the lowest free inode of its directory's group:
 * files made meanwhile may have freed lower ones, so new names are made (and set aside) until one lands on A's.
 * Returns whether B got A's inode.
 */
function restoreOverFreedInode(w: World, a: string, b: string, stash: string): boolean {
  const ino = statSync(join(w.src, a)).ino;
  expect(statSync(stash).size).toBe(statSync(join(w.src, a)).size);
  sh(["touch", "-r", join(w.src, a), stash]);
  rmSync(join(w.src, a));
  const B = join(w.src, b);
  const fillers: string[] = [];
  let reused = false;
  for (let i = 0; i < 20_000 && !reused; i++) {
    const fd = openSync(B, "wx");
    reused = fstatSync(fd).ino === ino;
    closeSync(fd);
    if (!reused) {
      const f = join(w.dir, `fill-${i}`); // same file system, outside the tree
      renameSync(B, f);
      fillers.push(f);
    }
  }
  for (const f of fillers) rmSync(f);
  if (!reused) return false;
  writeFileSync(B, readFileSync(stash));
  sh(["touch", "-r", stash, B]);
  return statSync(B).ino === ino;
}

describe("a new file on a reused inode is sent, not taken for a rename", () => {
  test("--once, text files: B restored with cp -p over A's freed inode reaches the replica with B's bytes", async () => {
    const w = suite.world();
    writeTree(w.src, { "d/A.txt": `${"A".repeat(99)}\n`, "d/other.txt": "o\n" });
    const cfg = w.writeConfig();
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    mkdirSync(join(w.dir, "stash"));
    writeTree(join(w.dir, "stash"), { "B.txt": `${"B".repeat(99)}\n` });
    expect(restoreOverFreedInode(w, "d/A.txt", "d/B.txt", join(w.dir, "stash/B.txt"))).toBe(true); // else the case is not set up
    const r = await runRrdsync(["--once", "--config", cfg]);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain("renamed");
    expect(readFileSync(join(w.dest, "d/B.txt"), "utf8")).toBe(`${"B".repeat(99)}\n`);
    expect(readFileSync(join(w.dest, "d/A.txt"), "utf8")).toBe(`${"A".repeat(99)}\n`); // delete is off: A stays there
    const v = await runRrdsync(["verify", "--config", cfg]);
    expect(v.stdout).not.toContain("* d/B.txt");
  });

  test("--once, RRDs of one layout (rrdtool create): B.rrd over A.rrd's freed inode is sent whole", async () => {
    const w = suite.world();
    mkdirSync(join(w.src, "n"), { recursive: true });
    mkdirSync(join(w.dir, "stash"));
    const create = (path: string, start: number) =>
      sh(["rrdtool", "create", path, "--start", String(start), "--step", "300", "DS:v:GAUGE:600:U:U", "RRA:AVERAGE:0.5:1:100"]);
    create(join(w.src, "n/A.rrd"), 1_700_000_000);
    sh(["rrdtool", "update", join(w.src, "n/A.rrd"), "1700000300:1", "1700000600:2"]);
    create(join(w.dir, "stash/B.rrd"), 1_700_000_000);
    sh(["rrdtool", "update", join(w.dir, "stash/B.rrd"), "1700000300:7", "1700000600:8"]);
    const cfg = w.writeConfig();
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    expect(restoreOverFreedInode(w, "n/A.rrd", "n/B.rrd", join(w.dir, "stash/B.rrd"))).toBe(true);
    const r = await runRrdsync(["--once", "--config", cfg]);
    expect(r.code).toBe(0);
    expect(readFileSync(join(w.dest, "n/B.rrd")).equals(readFileSync(join(w.src, "n/B.rrd")))).toBe(true);
    const fetch = Bun.spawnSync(["rrdtool", "lastupdate", join(w.dest, "n/B.rrd")], { stdout: "pipe" }).stdout.toString();
    expect(fetch).toContain("1700000600: 8"); // rrdtool reads B's own last value on the replica
  });

  test("--watch: a delete and a restore with cp -p (two events, no cookie pair) send B", async () => {
    const w = suite.world();
    writeTree(w.src, { "A.txt": `${"a".repeat(199)}\n` });
    mkdirSync(join(w.dir, "stash"));
    writeTree(join(w.dir, "stash"), { "B.txt": `${"b".repeat(199)}\n` });
    const d = suite.daemon(["--config", w.writeConfig({ debounce_time: 0.5, rescan_interval: 0 })]);
    await d.waitFor((e) => e.event === "pass", 30_000, "the initial pass");
    expect(restoreOverFreedInode(w, "A.txt", "B.txt", join(w.dir, "stash/B.txt"))).toBe(true);
    await eventually(() => existsSync(join(w.dest, "B.txt")), 15_000, "B on the replica");
    await Bun.sleep(300);
    expect(readFileSync(join(w.dest, "B.txt"), "utf8")).toBe(`${"b".repeat(199)}\n`);
    expect(await d.stop("SIGTERM")).toBe(0);
  });
});
