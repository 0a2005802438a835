// The full pass's walk (getdents64 + statx through bun:ffi): what it reports against the tracked versions, in the
// walk's order, never following a symlink below the root, and the same items from node:fs without the binding.
import { afterEach, expect, test } from "bun:test";
import { lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ScanItem, scanTree, type TrackedVersion } from "../../src/source/scan.ts";
import { treeSlices } from "../../src/source/slices.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tree(): string {
  const root = mkdtempSync(join(tmpdir(), "rrdsync-scan-"));
  dirs.push(root);
  const files: Record<string, string> = {
    "a.rrd": "a", "b.txt": "b", "skip.tmp": "x", "n/1/x.rrd": "x", "n/1/y.rrd": "y", "n/2/z.rrd": "z", "n/10/w.rrd": "w", "own/state.db": "s",
  };
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(join(root, rel, ".."), { recursive: true });
    writeFileSync(join(root, rel), text);
  }
  symlinkSync("/etc", join(root, "n/link")); // a directory symlink: never followed
  symlinkSync(join(root, "a.rrd"), join(root, "n/1/l.rrd"));
  return root;
}

function version(path: string): TrackedVersion {
  const st = lstatSync(path, { bigint: true });
  const sec = st.mtimeNs / 1_000_000_000n;
  return [Number(st.size), Number(sec), Number(st.mtimeNs - sec * 1_000_000_000n), Number(st.ino)];
}

const run = (root: string, tracked: Record<string, Record<string, TrackedVersion>>, more: Partial<Parameters<typeof scanTree>[1]> = {}) =>
  [...scanTree(root, { extensions: [".rrd", ".txt"], exclude: [join(root, "own")], trackedIn: (d) => new Map(Object.entries(tracked[d] ?? {})), ...more })];

const brief = (items: ScanItem[]) =>
  items.map((i) => (i.kind === "dir" ? `dir ${i.rel || "."} ${i.unchanged} [${i.unseen.join(",")}]` : i.kind === "problem" ? `problem ${i.rel}` : `${i.kind} ${i.rel}`));

test("new, changed and unchanged files against the tracked versions; tracked names not found; symlinks reported, not followed", () => {
  const root = tree();
  const tracked = {
    "": { "a.rrd": version(join(root, "a.rrd")), "gone.txt": [1, 2, 3, 4] as TrackedVersion },
    "n/1": { "x.rrd": version(join(root, "n/1/x.rrd")), "y.rrd": [9, 9, 9, 9] as TrackedVersion },
  };
  expect(brief(run(root, tracked))).toEqual([
    "file b.txt", "dir . 1 [gone.txt]",
    "symlink n/link", "dir n 0 []",
    "symlink n/1/l.rrd", "file n/1/y.rrd", "dir n/1 1 []",
    "file n/10/w.rrd", "dir n/10 0 []",
    "file n/2/z.rrd", "dir n/2 0 []",
  ]);
});

test("the walk's order: directories depth first, names sorted (as slices and resume expect); `until` stops after a directory", () => {
  const root = tree();
  const dirOrder = (items: ScanItem[]) => items.filter((i) => i.kind === "dir").map((i) => i.rel);
  expect(dirOrder(run(root, {}))).toEqual(["", "n", "n/1", "n/10", "n/2"]);
  expect(dirOrder(run(root, {}, { until: "n/1" }))).toEqual(["", "n", "n/1"]);
  // the first sync's slices list the same directories in the same order
  const slices = [...treeSlices(root, { extensions: [".rrd", ".txt"], exclude: new Set([join(root, "own")]), maxFiles: 2, maxDirs: 100, onProblem: () => {} })];
  expect(slices.flatMap((s) => s.dirs.map((d) => d.rel))).toEqual(["", "n", "n/1", "n/10", "n/2"]);
  expect(slices.map((s) => s.last)).toEqual([false, false, true]);
});

test("a split hands subdirectories away once; subtrees walk only their part", () => {
  const root = tree();
  const seen: string[] = [];
  const items = run(root, {}, {
    split: (rel, subdirs) => {
      seen.push(rel);
      return rel === "n" ? subdirs.filter((s) => s !== "10") : subdirs;
    },
  });
  expect(items.filter((i) => i.kind === "dir").map((i) => i.rel)).toEqual(["", "n", "n/1", "n/2"]);
  expect(seen).toEqual(["", "n"]); // not asked again below the split point
  expect(brief(run(root, {}, { subtrees: ["n/10", "n/missing"] }))).toEqual(["file n/10/w.rrd", "dir n/10 0 []"]);
});

test("a symlinked root is followed (as everywhere); without the libc binding the same files come from node:fs", () => {
  const root = tree();
  const link = `${root}-link`;
  symlinkSync(root, link);
  dirs.push(link);
  const files = (items: ScanItem[]) => items.filter((i) => i.kind === "file").map((i) => i.rel).sort();
  expect(files(run(link, {}))).toEqual(["a.rrd", "b.txt", "n/1/x.rrd", "n/1/y.rrd", "n/10/w.rrd", "n/2/z.rrd"]);
  const script = `import { scanTree } from ${JSON.stringify(join(import.meta.dir, "../../src/source/scan.ts"))};
    import { treeSlices } from ${JSON.stringify(join(import.meta.dir, "../../src/source/slices.ts"))};
    const items = [...scanTree(${JSON.stringify(root)}, { extensions: [".rrd", ".txt"], exclude: [${JSON.stringify(join(root, "own"))}], trackedIn: (d) => new Map(d === "n/1" ? [["x.rrd", [0, 0, 0, 0]], ["old.rrd", [0, 0, 0, 0]]] : []) })];
    const pick = (k) => items.filter((i) => i.kind === k).map((i) => i.kind === "dir" ? i.rel + ":" + i.unseen : i.rel).sort();
    const links = [];
    const slices = [...treeSlices(${JSON.stringify(root)}, { extensions: [".rrd", ".txt"], exclude: new Set([${JSON.stringify(join(root, "own"))}]), maxFiles: 3, maxDirs: 9, onProblem: () => {}, onSymlink: (r) => links.push(r) })];
    console.log(JSON.stringify([pick("file"), pick("symlink"), pick("dir").filter((d) => !d.endsWith(":")), slices, links.sort()]));`;
  const node = Bun.spawnSync([process.execPath, "-e", script], { env: { ...process.env, RRDSYNC_NO_FFI: "1" } });
  const ffi = Bun.spawnSync([process.execPath, "-e", script]);
  expect(node.stderr.toString()).toBe("");
  expect(JSON.parse(node.stdout.toString())).toEqual(JSON.parse(ffi.stdout.toString()));
  expect(JSON.parse(ffi.stdout.toString())[2]).toEqual(["n/1:old.rrd"]);
  expect(JSON.parse(ffi.stdout.toString())[3][0].dirs[0]).toEqual({ rel: "", names: ["a.rrd", "b.txt"] });
});

test("without deletes a directory whose tracked files were all found is only counted (no item each)", () => {
  const root = tree();
  const tracked = { "n/1": { "x.rrd": version(join(root, "n/1/x.rrd")) }, "": { "gone.txt": [1, 2, 3, 4] as TrackedVersion } };
  const items = run(root, tracked, { allDirs: false });
  expect(brief(items.filter((i) => i.kind === "dir" && i.rel !== ""))).toEqual([]);
  expect(items.filter((i) => i.kind === "dir" && i.unseen.length > 0).map((i) => (i as { rel: string }).rel)).toEqual([""]);
  expect(items.reduce((n, i) => n + (i.kind === "dir" ? i.unchanged : 0), 0)).toBe(1);
});

test("the walk on two threads reports every file once, and the worker's share is walked here if the worker fails", async () => {
  const root = mkdtempSync(join(tmpdir(), "rrdsync-split-"));
  dirs.push(root);
  const want: string[] = [];
  for (let n = 0; n < 20; n++) for (let f = 0; f < 3; f++) {
    mkdirSync(join(root, `snmp/${n}`), { recursive: true });
    writeFileSync(join(root, `snmp/${n}/f${f}.rrd`), "x");
    want.push(`snmp/${n}/f${f}.rrd`);
  }
  const { splitScan } = await import("../../src/engine/scan-split.ts");
  const { StateStore } = await import("../../src/store/state.ts");
  const db = join(root, "..", `${root.split("/").pop()}.db`);
  dirs.push(db);
  const store = StateStore.open(db).store; // empty: every file is new
  for (const stateFile of [db, join(root, "no/such/state.db")]) {
    const said: string[] = [];
    const files: string[] = [];
    for await (const item of splitScan(root, {
      extensions: [".rrd"], exclude: [], trackedIn: (d) => store.trackedIn(d), parallel: true, stateFile, allDirs: false, debug: (m) => said.push(m),
    })) if (item.kind === "file") files.push(item.rel);
    expect(files.sort()).toEqual([...want].sort());
    expect(said[0]).toContain("two threads from snmp/: 10 of its 20 subdirectories in a worker");
    if (stateFile !== db) expect(said[1]).toContain("the walk's worker failed");
  }
  store.close();
});
