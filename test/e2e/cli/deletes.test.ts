// End to end: deletes propagated (or not) to the replica over the sshd fixture, behind the max_delete guard.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { eventually } from "../../helpers/daemon.ts";
import { e2eSuite } from "../../helpers/suite.ts";
import { readTree, runRrdsync, writeTree } from "../../helpers/world.ts";

setDefaultTimeout(90_000);
const suite = e2eSuite("del");

const names = ["snmp/1/a.txt", "snmp/1/with space.txt", "snmp/1/-dash.txt", "snmp/1/br[a]ck*et.txt", "snmp/2/only.txt", "snmp/3/ü.txt"];

describe("deletes", () => {
  test("off (the default, as the seed): a file gone from the source stays on the replica, nothing recorded", async () => {
    const w = suite.world();
    writeTree(w.src, { "a.txt": "a\n", "b.txt": "b\n" });
    const cfg = w.writeConfig();
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    rmSync(join(w.src, "a.txt"));
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    expect(readFileSync(join(w.dest, "a.txt"), "utf8")).toBe("a\n");
    expect(w.changes()).not.toContain("deleted");
  });

  test("on: files deleted while rrdsync was not running go from the replica; others beside them stay; recorded", async () => {
    const w = suite.world();
    const files: Record<string, string> = {};
    for (const n of names) files[n] = `${n}\n`;
    for (let i = 0; i < 20; i++) files[`keep/k${i}.txt`] = `${i}\n`;
    writeTree(w.src, files);
    const cfg = w.writeConfig({ delete: true, max_delete: "50%" });
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    writeFileSync(join(w.dest, "snmp/1/not-ours.log"), "the standby's own\n"); // never ours to delete
    for (const n of names) rmSync(join(w.src, n));
    rmSync(join(w.src, "snmp/2"), { recursive: true });
    const r = await runRrdsync(["--once", "--config", cfg]);
    expect(r.code).toBe(0);
    const dest = readTree(w.dest);
    for (const n of names) expect(dest.has(n)).toBe(false);
    expect(dest.get("snmp/1/not-ours.log")).toBe("the standby's own\n");
    expect(existsSync(join(w.dest, "snmp/2"))).toBe(false); // emptied directory: gone too
    expect([...dest.keys()].filter((k) => k.startsWith("keep/"))).toHaveLength(20);
    for (const n of names) expect(w.changes()).toContain(`File: ${n}\nChanges:\nFile deleted (it was ${Buffer.byteLength(n) + 1} bytes).`);
    const log = await runRrdsync(["log", "--kind", "deleted", "--json", "--config", cfg]);
    expect(log.stdout.trim().split("\n").map((l) => JSON.parse(l).path).sort()).toEqual([...names].sort());
    // the last backup of a deleted text file stays restorable
    const restored = await runRrdsync(["restore", "snmp/1/with space.txt", "--config", cfg]);
    expect(restored.stdout).toBe("snmp/1/with space.txt\n");
    // and the next pass has nothing left to delete
    const again = await runRrdsync(["--once", "--config", cfg]);
    expect(again.code).toBe(0);
    expect(w.changes().match(/File deleted/g)).toHaveLength(names.length);
  });

  test("max_delete: a mass delete, or an emptied source (an unmounted mount point), deletes nothing and exits 1", async () => {
    const w = suite.world();
    const files: Record<string, string> = {};
    for (let i = 0; i < 30; i++) files[`n/f${i}.txt`] = `${i}\n`;
    writeTree(w.src, files);
    const cfg = w.writeConfig({ delete: true }); // default max_delete: 10%
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    for (let i = 0; i < 4; i++) rmSync(join(w.src, `n/f${i}.txt`)); // 4 of 30: above 10%
    const r = await runRrdsync(["--once", "--config", cfg]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("nothing deleted: 4 files would be deleted on the replica (13.3% of 30 tracked), more than max_delete allows (10% of the tracked files, 3 here)");
    expect(readTree(w.dest).size).toBe(30);
    rmSync(join(w.src, "n"), { recursive: true }); // the source is suddenly empty
    const empty = await runRrdsync(["--once", "--config", cfg]);
    expect(empty.code).toBe(1);
    expect(empty.stderr).toContain("30 files would be deleted on the replica (100% of 30 tracked)");
    expect(readTree(w.dest).size).toBe(30);
    // raised for one run, as the message says: they go
    expect((await runRrdsync(["--once", "--config", w.writeConfig({ delete: true, max_delete: "100%" })])).code).toBe(0);
    expect(readTree(w.dest).size).toBe(0);
  });

  test("--watch: a delete event removes the file on the replica and records it", async () => {
    const w = suite.world();
    const files: Record<string, string> = { "x/gone.txt": "g\n" };
    for (let i = 0; i < 20; i++) files[`x/k${i}.txt`] = `${i}\n`;
    writeTree(w.src, files);
    const d = suite.daemon(["--config", w.writeConfig({ delete: true, debounce_time: 0.3, rescan_interval: 0 })]);
    await d.waitFor((e) => e.event === "pass", 30_000, "the initial pass");
    expect(existsSync(join(w.dest, "x/gone.txt"))).toBe(true);
    rmSync(join(w.src, "x/gone.txt"));
    await eventually(() => !existsSync(join(w.dest, "x/gone.txt")), 10_000, "gone.txt deleted on the replica");
    await eventually(() => w.changes().includes("File: x/gone.txt\nChanges:\nFile deleted"), 5_000, "the delete's entry");
    expect(readTree(w.dest).size).toBe(20);
    rmSync(join(w.src, "x"), { recursive: true }); // a whole directory: each tracked file under it is due
    // …but 20 of 20 tracked is above max_delete (10%): refused, the replica keeps them, the daemon says why
    await eventually(() => d.stderr().includes("nothing deleted: 20 files would be deleted"), 10_000, "the guard's refusal");
    expect(readTree(w.dest).size).toBe(20);
  });
});
