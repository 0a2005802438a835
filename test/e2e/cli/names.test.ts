// End to end: file names that are not valid UTF-8 (bytes as Linux allows them, e.g. a Latin-1 name). The rsync
// transport (and a local destination) replicates them byte for byte by every path: the first sync's whole-tree
// run, list batches, renames and deletes on the replica, the daemon; logs and the change log show the bad bytes as
// \xNN. The SFTP client cannot carry them (ssh2 sends paths as UTF-8): each is refused with the fix and stays
// pending. Before, the whole-tree run copied them, nothing else could, and every later run exited 1.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { eventually } from "../../helpers/daemon.ts";
import { e2eSuite } from "../../helpers/suite.ts";
import { readTree, runRrdsync, TRANSPORT, type World, writeTree } from "../../helpers/world.ts";

setDefaultTimeout(120_000);
const suite = e2eSuite("names");

const paths = TRANSPORT === "rsync" ? (["local", "ssh"] as const) : (["ssh"] as const);
function config(w: World, where: "local" | "ssh", over: Record<string, unknown> = {}): string {
  return where === "local" ? w.writeConfig({ ...over, remote_sync: { remote_dest_dir: w.dest } }) : w.writeConfig(over);
}
/** `<dir>/<before><0xff><after>` as a Buffer path: the bytes as they are. */
const bad = (dir: string, before: string, after = "", byte = 0xff) => Buffer.concat([Buffer.from(`${dir}/${before}`), Buffer.from([byte]), Buffer.from(after)]);
/** Every file under `root` with its content, a name that is not UTF-8 in hex (so a test can say what it expects). */
function tree(root: Buffer | string, rel = ""): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(root, { encoding: "buffer" })) {
    const shown = Buffer.compare(Buffer.from(name.toString("utf8")), name) === 0 ? name.toString("utf8") : `hex:${name.toString("hex")}`;
    const path = rel === "" ? shown : `${rel}/${shown}`;
    const abs = Buffer.concat([Buffer.from(root), Buffer.from("/"), name]);
    // A running transfer's temporary file may go between the listing and the look: then it is not there.
    const st = lstatSync(abs, { throwIfNoEntry: false });
    if (st === undefined) continue;
    if (st.isDirectory()) Object.assign(out, tree(abs, path));
    else {
      try {
        out[path] = readFileSync(abs, "utf8");
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
      }
    }
  }
  return out;
}
const BAD = Buffer.from("bad-\xff.txt", "latin1").toString("hex");
const DIR = Buffer.from("dir-\xff", "latin1").toString("hex");

/** A source holding valid names (one with a real U+FFFD) beside names that are not UTF-8, files and a directory. */
function badTree(w: World): void {
  writeTree(w.src, { "a.txt": "a\n", "café.txt": "c\n", "d/b.txt": "b\n", "d/repl\uFFFD.txt": "r\n" });
  writeFileSync(bad(w.src, "bad-", ".txt"), "bad\n");
  writeFileSync(bad(join(w.src, "d"), "bad-", ".txt"), "bad d\n");
  mkdirSync(bad(w.src, "dir-"));
  writeFileSync(Buffer.concat([bad(w.src, "dir-"), Buffer.from("/inside.txt")]), "inside\n");
}
const ALL = { "a.txt": "a\n", "café.txt": "c\n", "d/b.txt": "b\n", "d/repl\uFFFD.txt": "r\n", [`hex:${BAD}`]: "bad\n", [`d/hex:${BAD}`]: "bad d\n", [`hex:${DIR}/inside.txt`]: "inside\n" };

describe.if(TRANSPORT === "rsync")("names that are not UTF-8", () => {
  for (const where of paths) {
    test(`${where === "local" ? "local destination" : "rsync over ssh"}: first sync, list batches, renames, deletes, verify: the replica has them byte for byte`, async () => {
      const w = suite.world();
      badTree(w);
      const cfg = config(w, where, { delete: true, max_delete: "50%" });
      const r1 = await runRrdsync(["--once", "--config", cfg]);
      expect({ code: r1.code, err: r1.stderr }).toEqual({ code: 0, err: "" });
      expect(tree(w.dest)).toEqual(tree(w.src));
      expect(tree(w.dest)).toEqual(ALL);
      const r2 = await runRrdsync(["--once", "--config", cfg]);
      expect({ code: r2.code, err: r2.stderr, sent: r2.stdout.match(/(\d+) files .* synced/)?.[1] }).toEqual({ code: 0, err: "", sent: "0" });
      // a change (a list batch), a rename to another bad name (a move on the replica), a rename from a valid name
      // to a bad one, a delete
      writeFileSync(bad(w.src, "bad-", ".txt"), "bad changed\n");
      renameSync(bad(join(w.src, "d"), "bad-", ".txt"), bad(join(w.src, "d"), "moved-", ".txt", 0xe9));
      renameSync(join(w.src, "a.txt"), bad(w.src, "a-", ".txt", 0xfe));
      rmSync(Buffer.concat([bad(w.src, "dir-"), Buffer.from("/inside.txt")]));
      const r3 = await runRrdsync(["--once", "--config", cfg]);
      expect({ code: r3.code, err: r3.stderr }).toEqual({ code: 0, err: "" });
      expect(tree(w.dest)).toEqual(tree(w.src));
      expect(tree(w.dest)[`hex:${BAD}`]).toBe("bad changed\n");
      // shown with the bad bytes as \xNN, in the change log and the log
      expect(w.changes()).toContain('File: "bad-\\xff.txt"');
      expect(w.changes()).toContain('Renamed: "d/bad-\\xff.txt" → "d/moved-\\xe9.txt"');
      const log = readFileSync(w.logFile, "utf8");
      expect(log).toContain("bad-\\xff.txt");
      expect(log).not.toMatch(/\\x00|\\u0000|bad-\uFFFD/);
      const v = await runRrdsync(["verify", "--config", cfg]);
      expect({ code: v.code, err: v.stderr }).toEqual({ code: 0, err: expect.stringMatching(/files checked .*: the replica matches/) });
      // log and restore take the name as it is shown
      const l = await runRrdsync(["log", "bad-\\xff.txt", "--config", cfg]);
      expect({ code: l.code, modified: l.stdout.includes('File: "bad-\\xff.txt"\nChanges:\n--- before') }).toEqual({ code: 0, modified: true });
      const rs = await runRrdsync(["restore", "bad-\\xff.txt", "--config", cfg]);
      expect({ code: rs.code, out: rs.stdout }).toEqual({ code: 0, out: "bad changed\n" });
    });
  }

  test("the daemon: a new bad name, a rename between bad names, a delete, each reaches the replica", async () => {
    const w = suite.world();
    badTree(w);
    const d = suite.daemon(["--config", w.writeConfig({ debounce_time: 1, rescan_interval: 0, delete: true, max_delete: "50%" })]);
    await d.waitFor((e) => e.event === "pass", 30_000, "the initial pass");
    expect(tree(w.dest)).toEqual(ALL);
    writeFileSync(bad(w.src, "new-", ".txt"), "new\n");
    mkdirSync(bad(w.src, "newdir-"));
    writeFileSync(Buffer.concat([bad(w.src, "newdir-"), Buffer.from("/x.txt")]), "x\n");
    renameSync(bad(w.src, "bad-", ".txt"), bad(w.src, "bad2-", ".txt"));
    rmSync(bad(join(w.src, "d"), "bad-", ".txt"));
    // a move, a batch and a delete, each after its own replica check: on a loaded 2-core machine each check took
    // 2-4 s (process starts through the master), so the three in a row are given 30 s
    await eventually(() => JSON.stringify(tree(w.dest)) === JSON.stringify(tree(w.src)), 30_000, "the replica equal to the source");
    expect(Object.keys(tree(w.dest))).toContain(`hex:${Buffer.from("newdir-\xff", "latin1").toString("hex")}/x.txt`);
    expect(d.stderr()).not.toMatch(/ERROR|WARN/);
    expect(await d.stop("SIGTERM")).toBe(0);
  });
});

describe.if(TRANSPORT === "sftp")("names that are not UTF-8 through SFTP", () => {
  test("each is refused with the fix and stays pending (exit 1 each run); the others are replicated; renamed, it goes", async () => {
    const w = suite.world();
    badTree(w);
    const cfg = w.writeConfig();
    for (let run = 1; run <= 2; run++) {
      const r = await runRrdsync(["--once", "--config", cfg]);
      expect({ run, code: r.code }).toEqual({ run, code: 1 });
      for (const name of ["bad-\\xff.txt", "d/bad-\\xff.txt", "dir-\\xff/inside.txt"]) {
        expect(r.stderr).toContain(`${name}: not synced, stays pending: the name is not valid UTF-8, which the SFTP transport cannot carry: use the rsync transport, or rename the file`);
      }
      expect(tree(w.dest)).toEqual({ "a.txt": "a\n", "café.txt": "c\n", "d/b.txt": "b\n", "d/repl\uFFFD.txt": "r\n" });
    }
    const st = await runRrdsync(["status", "--config", cfg]);
    expect(st.stdout).toContain('"bad-\\xff.txt"');
    renameSync(bad(w.src, "bad-", ".txt"), join(w.src, "renamed.txt"));
    rmSync(bad(join(w.src, "d"), "bad-", ".txt"));
    rmSync(bad(w.src, "dir-"), { recursive: true });
    const r = await runRrdsync(["--once", "--config", cfg]);
    expect({ code: r.code, err: r.stderr }).toEqual({ code: 0, err: "" });
    expect(readTree(w.dest).get("renamed.txt")).toBe("bad\n");
  });
});
