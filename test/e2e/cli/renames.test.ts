// End to end: renames and directory moves in the source become moves on the replica (its inodes survive: nothing
// re-sent), recorded as renamed; when the replica cannot move a file, it is sent under the new name instead.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { eventually } from "../../helpers/daemon.ts";
import { e2eSuite } from "../../helpers/suite.ts";
import { readTree, runRrdsync, writeTree } from "../../helpers/world.ts";

setDefaultTimeout(90_000);
const suite = e2eSuite("ren");
const ino = (p: string) => statSync(p).ino;

describe("renames", () => {
  test("--once: a renamed file and a moved directory are moved on the replica, not re-sent; recorded; backups follow", async () => {
    const w = suite.world();
    const files: Record<string, string> = { "snmp/1/old name.txt": "k=v\n", "snmp/1/keep.txt": "keep\n" };
    for (let i = 0; i < 10; i++) files[`snmp/node-a/if${i}.txt`] = `${i}\n${"x".repeat(5000)}\n`;
    writeTree(w.src, files);
    const cfg = w.writeConfig();
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    const before = { file: ino(join(w.dest, "snmp/1/old name.txt")), dir: ino(join(w.dest, "snmp/node-a/if3.txt")) };
    renameSync(join(w.src, "snmp/1/old name.txt"), join(w.src, "snmp/1/-new name.txt"));
    mkdirSync(join(w.src, "snmp/moved"), { recursive: true });
    renameSync(join(w.src, "snmp/node-a"), join(w.src, "snmp/moved/node-b"));
    const r = await runRrdsync(["--once", "--config", cfg]);
    expect(r.code).toBe(0);
    expect(readTree(w.dest)).toEqual(readTree(w.src)); // old names gone, new ones there
    expect(ino(join(w.dest, "snmp/1/-new name.txt"))).toBe(before.file);
    expect(ino(join(w.dest, "snmp/moved/node-b/if3.txt"))).toBe(before.dir);
    expect(w.changes()).toContain('File: snmp/1/-new name.txt\nChanges:\nRenamed: "snmp/1/old name.txt" → "snmp/1/-new name.txt" (moved on the replica; nothing re-sent).');
    const log = await runRrdsync(["log", "--kind", "renamed", "--json", "--config", cfg]);
    expect(log.stdout.trim().split("\n")).toHaveLength(11);
    // the backup moved with it: a change is diffed, and restore finds the history under the new name
    writeTree(w.src, { "snmp/1/-new name.txt": "k=w\n" });
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    expect(w.changes()).toContain("-k=v\n+k=w\n"); // diffed against the backup that moved with it
    const list = await runRrdsync(["restore", "snmp/1/-new name.txt", "--list", "--config", cfg]);
    expect(list.stdout.trim().split("\n")).toHaveLength(2);
  });

  test("a rename the replica cannot do (its copy is gone there) is sent under the new name, and the old name deleted", async () => {
    const w = suite.world();
    const files: Record<string, string> = { "a.txt": "a\n" };
    for (let i = 0; i < 20; i++) files[`k${i}.txt`] = `${i}\n`;
    writeTree(w.src, files);
    const cfg = w.writeConfig();
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    rmSync(join(w.dest, "a.txt")); // someone removed it on the standby
    renameSync(join(w.src, "a.txt"), join(w.src, "b.txt"));
    const r = await runRrdsync(["--once", "--config", cfg]);
    expect(r.code).toBe(0);
    expect(readTree(w.dest)).toEqual(readTree(w.src));
    expect(w.changes()).toContain("File: b.txt\nChanges:\nNew file created with 1 lines.");
  });

  test("--watch: a rename event is a move on the replica", async () => {
    const w = suite.world();
    writeTree(w.src, { "d/rrd1.txt": `${"z".repeat(10000)}\n`, "d/other.txt": "o\n" });
    const d = suite.daemon(["--config", w.writeConfig({ debounce_time: 0.3, rescan_interval: 0 })]);
    await d.waitFor((e) => e.event === "pass", 30_000, "the initial pass");
    const before = ino(join(w.dest, "d/rrd1.txt"));
    renameSync(join(w.src, "d/rrd1.txt"), join(w.src, "d/rrd2.txt"));
    await eventually(() => existsSync(join(w.dest, "d/rrd2.txt")) && !existsSync(join(w.dest, "d/rrd1.txt")), 10_000, "moved on the replica");
    expect(ino(join(w.dest, "d/rrd2.txt"))).toBe(before);
    expect(readFileSync(join(w.dest, "d/rrd2.txt"), "utf8")).toBe(`${"z".repeat(10000)}\n`);
  });
});
