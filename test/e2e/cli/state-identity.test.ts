// End to end (issue 24, item 1): a state DB describes one source and one destination. An admin who re-points a
// config (a new standby, a new source) with the same state_file gets exit 2 naming both pairs, nothing done on
// either standby; --rebuild-state keeps the old DB aside and records the tree anew (what the standby already
// holds costs only the quick check); a DB of an earlier rrdsync takes the config's pair, once, and says so.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { Database } from "bun:sqlite";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { e2eSuite } from "../../helpers/suite.ts";
import { readTree, runRrdsync, type World, writeTree } from "../../helpers/world.ts";

setDefaultTimeout(120_000);
const suite = e2eSuite("ident");

/** the remote_sync block of the world's config, pointed at another directory of the standby */
function pointedAt(w: World, dest: string): Record<string, unknown> {
  return { ...(JSON.parse(readFileSync(w.configPath, "utf8")).remote_sync as Record<string, unknown>), remote_dest_dir: dest };
}

const keptAside = (w: World) => readdirSync(join(w.dir, "state")).filter((n) => n.startsWith("state.db.replaced-") && !/-(wal|shm)$/.test(n));

describe("a state DB belongs to one source and one destination", () => {
  test("same state_file, new remote_dest_dir: exit 2 naming both, the new standby untouched; --rebuild-state syncs it and keeps the old DB", async () => {
    const w = suite.world();
    writeTree(w.src, { "a.txt": "a\n", "d/b.txt": "b\n" });
    const cfg = w.writeConfig();
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    const newDest = join(w.dir, "new-standby");
    w.writeConfig({ remote_sync: pointedAt(w, newDest) });
    for (const args of [["--once"], ["status"], ["verify"]]) {
      const r = await runRrdsync([...args, "--config", cfg]);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr + r.stdout).toContain(`describes ${w.src} → 127.0.0.1:${suite.sshd().port}:${w.dest}, but the config says ${w.src} → 127.0.0.1:${suite.sshd().port}:${newDest}`);
      expect(r.stderr + r.stdout).toContain("--rebuild-state");
      expect(r.stderr).not.toContain("    at ");
    }
    expect(existsSync(newDest)).toBe(false); // nothing was done on the new standby
    const daemon = await runRrdsync(["--watch", "--config", cfg], { timeoutMs: 30_000 });
    expect(daemon.code).toBe(2);
    expect(daemon.stderr).toContain("--rebuild-state");

    const rebuilt = await runRrdsync(["--once", "--rebuild-state", "--config", cfg]);
    expect({ code: rebuilt.code, err: rebuilt.stderr }).toEqual({ code: 0, err: expect.stringContaining("--rebuild-state: the state DB described") });
    expect(readTree(newDest)).toEqual(readTree(w.src));
    expect(keptAside(w)).toHaveLength(1); // never deleted
    expect((await runRrdsync(["verify", "--config", cfg])).code).toBe(0);
    // the flag is idempotent: a DB that already describes this pair is kept
    expect((await runRrdsync(["--once", "--rebuild-state", "--config", cfg])).code).toBe(0);
    expect(keptAside(w)).toHaveLength(1);
  });

  test("source and destination changed together: no rename is run on the new standby over a file rrdsync never wrote there", async () => {
    const w = suite.world();
    writeTree(w.src, { "sub/x.txt": `${"ours\n".repeat(50)}`, "keep.txt": "k\n" });
    const cfg = w.writeConfig();
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    // The new source holds the same inode under another path; the new standby has files of its own at both paths.
    const src2 = join(w.dir, "src2");
    mkdirSync(src2);
    renameSync(join(w.src, "sub/x.txt"), join(src2, "x.txt"));
    const dest2 = join(w.dir, "standby2");
    writeTree(dest2, { "sub/x.txt": "the new standby's own sub/x.txt\n", "x.txt": "precious\n" });
    const later = new Date(Date.now() + 60_000); // written there after ours, whatever second the run starts in
    utimesSync(join(dest2, "x.txt"), later, later);
    w.writeConfig({ source_dir: src2, remote_sync: pointedAt(w, dest2) });
    const r = await runRrdsync(["--once", "--config", cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("(another source and destination)");
    expect(readTree(dest2)).toEqual(new Map([["sub/x.txt", "the new standby's own sub/x.txt\n"], ["x.txt", "precious\n"]]));
    // rebuilt: nothing is moved; the standby's own x.txt is newer than ours and rrdsync never delivered it, so it is
    // a conflict (the failover fence: exit 4), not overwritten; its sub/x.txt was never ours either, so it stays
    const rebuilt = await runRrdsync(["--once", "--rebuild-state", "--config", cfg]);
    expect(rebuilt.code).toBe(4);
    expect(rebuilt.stdout).not.toContain("renamed");
    expect(rebuilt.stderr).toContain('conflict: "x.txt" newer on the standby than ours');
    expect(readFileSync(join(dest2, "x.txt"), "utf8")).toBe("precious\n");
    expect(readFileSync(join(dest2, "sub/x.txt"), "utf8")).toBe("the new standby's own sub/x.txt\n");
  });

  test("a rebuilt state against a standby that holds the files already: nothing is re-sent (the quick check skips them)", async () => {
    const w = suite.world();
    const files: Record<string, string> = {};
    for (let i = 0; i < 30; i++) files[`n${i % 3}/f${i}.txt`] = `${i}\n`.repeat(100);
    writeTree(w.src, files);
    const written = Date.now();
    const cfg = w.writeConfig();
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    const inode = statSync(join(w.dest, "n1/f1.txt")).ino;
    // A whole-tree run sends again (by content, rewriting the copy) a file whose ctime is within CTIME_MARGIN_NS
    // (2 s) of its start: it may have changed as rsync read it. A fast machine got there within 2 s of the writes.
    await Bun.sleep(Math.max(0, written + 2100 - Date.now()));
    // the tree moved (a new mount point, say): same files, same destination
    const moved = join(w.dir, "moved-src");
    renameSync(w.src, moved);
    w.writeConfig({ source_dir: moved });
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(2);
    const r = await runRrdsync(["--once", "--rebuild-state", "--config", cfg]);
    expect(r.code).toBe(0);
    expect(readTree(w.dest)).toEqual(readTree(moved));
    expect(statSync(join(w.dest, "n1/f1.txt")).ino).toBe(inode); // not rewritten
    expect((await runRrdsync(["verify", "--config", cfg])).code).toBe(0);
  });

  test("a state DB of an earlier rrdsync (no pair recorded) takes the config's once, says so, and is held to it after", async () => {
    const w = suite.world();
    writeTree(w.src, { "a.txt": "a\n" });
    const cfg = w.writeConfig();
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    const db = new Database(w.stateFile);
    db.run("DELETE FROM meta WHERE key = 'identity'");
    db.close();
    writeTree(w.src, { "b.txt": "b\n" });
    const r = await runRrdsync(["--once", "--config", cfg]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("did not record which source and destination it describes (made by an earlier rrdsync): it now records");
    expect(readTree(w.dest)).toEqual(readTree(w.src));
    w.writeConfig({ remote_sync: pointedAt(w, join(w.dir, "elsewhere")) });
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(2);
  });

  test("several targets: each state DB is held to its own destination; a mismatch on one stops the run before any target is touched", async () => {
    const w = suite.world();
    writeTree(w.src, { "a.txt": "a\n" });
    const other = join(w.dir, "dest-b");
    w.writeConfig();
    const cfg = w.writeConfig({ targets: [{ ...pointedAt(w, other), name: "b" }] });
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    writeTree(w.src, { "new.txt": "new\n" });
    const moved = join(w.dir, "dest-b2");
    w.writeConfig({ targets: [{ ...pointedAt(w, moved), name: "b" }] });
    const r = await runRrdsync(["--once", "--config", cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("state.b.db describes");
    expect(existsSync(join(w.dest, "new.txt"))).toBe(false); // the first target was not run either
    expect(existsSync(moved)).toBe(false);
    expect((await runRrdsync(["--once", "--rebuild-state", "--config", cfg])).code).toBe(0);
    expect(readTree(moved)).toEqual(readTree(w.src));
    expect(readTree(w.dest)).toEqual(readTree(w.src));
  });
});
