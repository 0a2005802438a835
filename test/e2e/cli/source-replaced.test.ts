// End to end (issue 24, item 3): the daemon after its source directory was replaced (`mv src src.old; mkdir src`).
// The rsync started ahead for the next batch (the spare) entered the old directory during its handshake: what it
// sends is the old tree's. It must be discarded once the root is another directory, and a batch is confirmed only
// under the root its files were looked at: the replica ends with the new tree's bytes, verify agrees.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { eventually } from "../../helpers/daemon.ts";
import { e2eSuite } from "../../helpers/suite.ts";
import { runRrdsync, TRANSPORT, writeTree } from "../../helpers/world.ts";

setDefaultTimeout(90_000);

/** An rsync started ahead (waiting for its file list) whose working directory is `dir`: it entered the tree. */
function spareIn(dir: string): boolean {
  for (const pid of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    try {
      if (readlinkSync(`/proc/${pid}/cwd`) === dir && readFileSync(`/proc/${pid}/cmdline`, "latin1").includes("--files-from=-")) return true;
    } catch {
      // gone, or not ours to look at
    }
  }
  return false;
}
const suite = e2eSuite("replaced");

describe("the source directory replaced under a running daemon", () => {
  test("mv src src.old; mkdir src; a new n.txt: the replica gets the new bytes, not the old tree's", async () => {
    const w = suite.world();
    writeTree(w.src, { "n.txt": "old\n", "other.txt": "x\n" });
    const cfg = w.writeConfig({ debounce_time: 0.5, rescan_interval: 0 });
    const d = suite.daemon(["--config", cfg]);
    await d.waitFor((e) => e.event === "pass", 30_000, "the initial pass");
    // a batch, so that a spare rsync is started ahead for the next one (0.25 s after it)
    const before = d.events.length;
    writeFileSync(join(w.src, "other.txt"), "y\n");
    await d.waitFor((e) => d.events.indexOf(e) >= before && e.event === "batch" && Number(e.files) > 0, 10_000, "the first batch");
    expect(readFileSync(join(w.dest, "other.txt"), "utf8")).toBe("y\n");
    if (TRANSPORT === "rsync") await eventually(() => spareIn(w.src), 20_000, "the spare rsync inside the source directory");
    renameSync(w.src, `${w.src}.old`);
    mkdirSync(w.src);
    await Bun.sleep(2000);
    writeFileSync(join(w.src, "n.txt"), "NEW\n"); // the same size as "old\n"
    await eventually(() => readFileSync(join(w.dest, "n.txt"), "utf8") === "NEW\n", 15_000, "the new tree's n.txt on the replica");
    await Bun.sleep(1500); // nothing later puts the old bytes back
    expect(readFileSync(join(w.dest, "n.txt"), "utf8")).toBe("NEW\n");
    expect(await d.stop("SIGTERM")).toBe(0);
    const v = await runRrdsync(["verify", "--config", cfg]);
    expect(v.stdout).not.toContain("* n.txt");
  });
});
