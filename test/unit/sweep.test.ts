// The stat sweep against real files: it agrees with versionKey(statFacts(lstat)) exactly, and yields what changed.
import { afterEach, expect, test } from "bun:test";
import { closeSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, renameSync, rmSync, symlinkSync, utimesSync, writeFileSync, ftruncateSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { statFacts, versionKey } from "../../src/engine/plan.ts";
import { sweepChanged, type TrackedEntry } from "../../src/source/sweep.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tree(files: string[]): { root: string; entries: TrackedEntry[] } {
  const root = mkdtempSync(join(tmpdir(), "rrdsync-sweep-"));
  dirs.push(root);
  for (const f of files) {
    mkdirSync(join(root, f, ".."), { recursive: true });
    writeFileSync(join(root, f), f);
  }
  return { root, entries: files.map((rel) => ({ rel, key: keyOf(join(root, rel)) })) };
}

const keyOf = (abs: string) => versionKey(statFacts(lstatSync(abs, { bigint: true })));

async function sweep(root: string, entries: Iterable<TrackedEntry>): Promise<string[]> {
  const out: string[] = [];
  for await (const rel of sweepChanged(root, entries)) out.push(rel);
  return out;
}

const FILES = ["top.rrd", "snmp/1/a.rrd", "snmp/1/b.rrd", "snmp/1/eth0/c.rrd", "snmp/10/d.rrd", "snmp/2/é ü.rrd", "x/y/z/deep.jrb"];

test("nothing changed: nothing yielded (the digit-by-digit compare agrees with versionKey)", async () => {
  const { root, entries } = tree(FILES);
  expect(await sweep(root, entries)).toEqual([]);
  expect(await sweep(root, [...entries].reverse())).toEqual([]); // any order is correct, path order is only faster
});

test("extreme values: a size above 4 GiB, an mtime before 1970, an mtime with 0 ns, are compared exactly", async () => {
  const { root, entries } = tree(["big.rrd", "old.rrd", "round.rrd"]);
  const fd = openSync(join(root, "big.rrd"), "r+");
  ftruncateSync(fd, 5 * 2 ** 32 + 17); // sparse
  closeSync(fd);
  expect(Bun.spawnSync(["touch", "-h", "-d", "1969-12-31 00:00:00.25 UTC", join(root, "old.rrd")]).exitCode).toBe(0);
  utimesSync(join(root, "round.rrd"), 1_700_000_000, 1_700_000_000);
  const fresh = entries.map((e) => ({ rel: e.rel, key: keyOf(join(root, e.rel)) }));
  expect(fresh[0]?.key.startsWith("21474836497:")).toBe(true);
  expect(fresh[1]?.key).toContain(":-");
  expect(await sweep(root, fresh)).toEqual([]);
  expect(await sweep(root, entries)).toEqual(["big.rrd", "old.rrd", "round.rrd"]);
});

test("changed content, mtime alone, a replaced inode, a symlink in its place, gone files and a gone directory are yielded", async () => {
  const { root, entries } = tree(FILES);
  writeFileSync(join(root, "snmp/1/a.rrd"), "longer content"); // size
  const st = lstatSync(join(root, "snmp/1/b.rrd"), { bigint: true });
  utimesSync(join(root, "snmp/1/b.rrd"), new Date(), new Date(Number(st.mtimeMs) + 1)); // mtime only
  writeFileSync(join(root, "snmp/10/d.tmp"), "snmp/10/d.rrd");
  renameSync(join(root, "snmp/10/d.tmp"), join(root, "snmp/10/d.rrd")); // same size, new inode
  rmSync(join(root, "top.rrd"));
  symlinkSync(join(root, "snmp/2/é ü.rrd"), join(root, "top.rrd")); // never followed
  rmSync(join(root, "x"), { recursive: true });
  expect(await sweep(root, entries)).toEqual(["top.rrd", "snmp/1/a.rrd", "snmp/1/b.rrd", "snmp/10/d.rrd", "x/y/z/deep.jrb"]);
});

test("stopping early closes the directory fd; long runs yield to the event loop", async () => {
  const files = Array.from({ length: 1000 }, (_, i) => `d${Math.floor(i / 100)}/f${i}`);
  const { root, entries } = tree(files);
  rmSync(join(root, "d0"), { recursive: true });
  const fds = readdirSync("/proc/self/fd").length;
  for await (const rel of sweepChanged(root, entries)) {
    expect(rel).toBe("d0/f0");
    break;
  }
  expect(readdirSync("/proc/self/fd").length).toBe(fds);
  let ticks = 0;
  const t = setInterval(() => ticks++, 0);
  let n = 0;
  for await (const _ of sweepChanged(root, Array.from({ length: 40 }, () => entries).flat(), { sliceMs: 1 })) n++;
  clearInterval(t);
  expect(n).toBe(40 * 100);
  expect(ticks).toBeGreaterThan(0);
});
