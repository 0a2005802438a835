// End to end: a symlink planted on the replica where a directory belongs leads nowhere. Nothing is written,
// moved or deleted outside the destination by a move (a rename in the source), a delete or a send.
// Local destination (rsync, run once), rsync over ssh and SFTP (RRDSYNC_TEST_TRANSPORT).
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { renameSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { eventually } from "../../helpers/daemon.ts";
import { e2eSuite } from "../../helpers/suite.ts";
import { readTree, runRrdsync, TRANSPORT, type World, writeTree } from "../../helpers/world.ts";

setDefaultTimeout(120_000);
const suite = e2eSuite("links");

const paths = TRANSPORT === "rsync" ? (["local", "ssh"] as const) : (["ssh"] as const);
const label = (where: "local" | "ssh") => (where === "local" ? "local destination" : `${TRANSPORT} over ssh`);
function config(w: World, where: "local" | "ssh", over: Record<string, unknown> = {}): string {
  return where === "local" ? w.writeConfig({ remote_sync: { remote_dest_dir: w.dest }, ...over }) : w.writeConfig(over);
}

/** A directory outside the destination with files that must survive, and a symlink to it planted at `at`. */
function plant(w: World, at: string, name: string): { outside: string; before: Map<string, string> } {
  const outside = join(w.dir, name);
  writeTree(outside, { "a.txt": "outside a\n", "sub/b.txt": "outside b\n", "c.txt": "outside c\n" });
  rmSync(join(w.dest, at), { recursive: true, force: true });
  symlinkSync(outside, join(w.dest, at));
  return { outside, before: readTree(outside) };
}

for (const where of paths) {
  describe(`symlinks planted on the replica (${label(where)})`, () => {
    test("a rename in the source moves nothing from or into a symlinked directory", async () => {
      const w = suite.world();
      writeTree(w.src, { "d/a.txt": "a\n", "e/c.txt": "c\n", "keep.txt": "k\n" });
      // a move the replica cannot do is a send and a delete of the old name: let max_delete allow that here
      const cfg = config(w, where, { max_delete: "100%" });
      expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
      const { outside, before } = plant(w, "d", "outside");
      renameSync(join(w.src, "d/a.txt"), join(w.src, "e/a-moved.txt")); // the old name is behind the symlink
      renameSync(join(w.src, "e/c.txt"), join(w.src, "d/c.txt")); // the new name is behind it
      const r = await runRrdsync(["--once", "--config", cfg]);
      expect(readTree(outside)).toEqual(before); // nothing moved away, nothing moved in, nothing written
      if (TRANSPORT === "sftp") {
        expect(r.code).toBe(1);
        expect(r.stderr).toContain(`${join(w.dest, "d")} on the standby is a symlink: not written through`);
        expect(readTree(w.dest).get("e/a-moved.txt")).toBe("a\n");
      } else {
        // rsync replaces a symlink that stands where the source has a directory with a real one
        expect({ code: r.code, err: r.stderr }).toEqual({ code: 0, err: "" });
        expect(readTree(w.dest)).toEqual(readTree(w.src));
      }
    });

    test("a send writes nothing through a symlinked directory deeper down", async () => {
      const w = suite.world();
      writeTree(w.src, { "x/y/sub/old.txt": "o\n" });
      const cfg = config(w, where);
      expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
      const { outside, before } = plant(w, "x/y", "outside"); // outside has a sub/ of its own
      writeTree(w.src, { "x/y/sub/new.txt": "n\n", "x/y/sub/old.txt": "o2\n" });
      const r = await runRrdsync(["--once", "--config", cfg]);
      expect(readTree(outside)).toEqual(before);
      if (TRANSPORT === "sftp") {
        expect(r.code).toBe(1);
        expect(r.stderr).toContain(`${join(w.dest, "x/y")} on the standby is a symlink: not written through`);
      } else {
        expect({ code: r.code, err: r.stderr }).toEqual({ code: 0, err: "" });
        expect(readTree(w.dest)).toEqual(readTree(w.src));
      }
    });

    test("deletes remove nothing through a symlinked directory, at any depth", async () => {
      const w = suite.world();
      writeTree(w.src, { "d/a.txt": "a\n", "d/sub/b.txt": "b\n", "x/y/a.txt": "xa\n", "x/y/sub/b.txt": "xb\n", "keep.txt": "k\n" });
      const cfg = config(w, where, { delete: true, max_delete: "100%" });
      expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
      const top = plant(w, "d", "outside-top");
      const deep = plant(w, "x/y", "outside-deep");
      rmSync(join(w.src, "d"), { recursive: true });
      rmSync(join(w.src, "x/y/a.txt"));
      rmSync(join(w.src, "x/y/sub/b.txt"));
      const r = await runRrdsync(["--once", "--config", cfg]);
      expect(r.code).toBe(0);
      expect(readTree(top.outside)).toEqual(top.before);
      expect(readTree(deep.outside)).toEqual(deep.before);
      expect(readTree(w.dest).get("keep.txt")).toBe("k\n");
    });
  });
}

describe("a symlink planted while the daemon's SFTP connection stays open", () => {
  test.if(TRANSPORT === "sftp")("the next batch checks the directories again: nothing is written through it", async () => {
    const w = suite.world();
    writeTree(w.src, { "d/a.txt": "a1\n" });
    const d = suite.daemon(["--config", w.writeConfig({ debounce_time: 0.2, rescan_interval: 0 })]);
    await d.waitFor((e) => e.event === "pass", 30_000, "the initial pass");
    writeTree(w.src, { "d/a.txt": "a2\n" });
    await eventually(() => d.events.filter((e) => e.event === "batch").length >= 2, 15_000, "the second batch (the connection now knows d/)");
    const { outside, before } = plant(w, "d", "outside");
    writeTree(w.src, { "d/a.txt": "a3\n" });
    await d.waitFor((e) => e.event === "pending", 15_000, "the refused batch");
    expect(d.stderr()).toContain(`${join(w.dest, "d")} on the standby is a symlink: not written through`);
    expect(readTree(outside)).toEqual(before);
  });
});
