import { expect, test } from "bun:test";
import type { BigIntStats } from "node:fs";
import type { Look } from "../../src/source/look.ts";
import { classifyEvent, classifyPath } from "../../src/watch/classify.ts";
import type { WatchEvent } from "../../src/watch/events.ts";

const file: Look = { kind: "file", stat: {} as BigIntStats };
const ctx = (deletes: boolean, reportsNewDirFiles = true) => ({ isOwn: (rel: string) => rel === "state.db", extensions: [".rrd", ".txt"], deletes, reportsNewDirFiles });

test.each([
  // [path, look, delete on, action]
  ["a/b.rrd", file, false, { kind: "changed", path: "a/b.rrd" }],
  ["a/.b.rrd.tmp", file, false, { kind: "ignore" }],
  ["state.db", file, false, { kind: "ignore" }],
  ["a/b\u0000ff.rrd", file, false, { kind: "changed", path: "a/b\u0000ff.rrd" }], // not UTF-8 (src/names.ts): replicated too
  ["a/b\uFFFD.rrd", file, false, { kind: "changed", path: "a/b\uFFFD.rrd" }], // a real U+FFFD
  ["a/b.rrd", { kind: "gone" }, false, { kind: "ignore" }],
  ["a/b.rrd", { kind: "gone" }, true, { kind: "gone", path: "a/b.rrd" }],
  ["a/dir", { kind: "gone" }, true, { kind: "goneDir", dir: "a/dir" }],
  ["a/link.rrd", { kind: "other" }, true, { kind: "ignore" }],
  ["a/b.rrd", { kind: "unknown", code: "EACCES" }, true, { kind: "ignore" }],
] as Array<[string, Look, boolean, unknown]>)("path %j (%o, delete %p) → %o", (rel, look, deletes, action) => {
  expect(classifyPath(rel, look, ctx(deletes))).toEqual(action as never);
});

test("a new directory is walked only where the watcher does not report its files (fs.watch)", () => {
  expect(classifyPath("a/new", { kind: "dir" }, ctx(false, true))).toEqual({ kind: "ignore" });
  expect(classifyPath("a/new", { kind: "dir" }, ctx(false, false))).toEqual({ kind: "walk", dir: "a/new" });
});

const looksLike = (l: Look) => () => l;
test.each([
  // [event, delete on, actions]
  [{ type: "move", from: "a/x.rrd", to: "b/x.rrd", dir: false }, false, [{ kind: "moved", from: "a/x.rrd", to: "b/x.rrd" }]],
  [{ type: "move", from: "a/.x.txt.tmp", to: "a/x.txt", dir: false }, false, [{ kind: "changed", path: "a/x.txt" }]],
  [{ type: "move", from: "a/x.txt", to: "a/x.txt.old", dir: false }, true, [{ kind: "gone", path: "a/x.txt" }]],
  [{ type: "move", from: "a/x.txt", to: "a/x.txt.old", dir: false }, false, [{ kind: "ignore" }]],
  [{ type: "move", from: "a", to: "b", dir: true }, false, [{ kind: "movedDir", from: "a", to: "b" }, { kind: "walk", dir: "b" }]],
  // names that are not UTF-8 (src/names.ts) are names like any other
  [{ type: "move", from: "a/x.txt", to: "a/x\u0000ff.txt", dir: false }, true, [{ kind: "moved", from: "a/x.txt", to: "a/x\u0000ff.txt" }]],
  [{ type: "move", from: "a", to: "b\u0000ff", dir: true }, false, [{ kind: "movedDir", from: "a", to: "b\u0000ff" }, { kind: "walk", dir: "b\u0000ff" }]],
  [{ type: "gone", rel: "a/x\u0000ff.rrd", dir: false }, true, [{ kind: "gone", path: "a/x\u0000ff.rrd" }]],
  [{ type: "gone", rel: "a/x.rrd", dir: false }, true, [{ kind: "gone", path: "a/x.rrd" }]],
  [{ type: "gone", rel: "a", dir: true }, true, [{ kind: "goneDir", dir: "a" }]],
  [{ type: "gone", rel: "a", dir: true }, false, [{ kind: "ignore" }]],
  [{ type: "overflow" }, false, [{ kind: "rescan", why: expect.stringContaining("overflowed") }]],
  [{ type: "root", state: "gone" }, true, [{ kind: "sourceGone" }]],
  [{ type: "root", state: "back" }, true, [{ kind: "rescan", why: expect.stringContaining("is back") }]],
  [{ type: "error", code: "ENOSPC", message: "limit" }, false, [{ kind: "watchError", message: "limit", poll: true }]],
  [{ type: "error", code: "EACCES", message: "denied", rel: "d" }, false, [{ kind: "watchError", message: "d: denied", poll: false }]],
] as Array<[WatchEvent, boolean, unknown]>)("event %o (delete %p) → %o", (e, deletes, actions) => {
  expect(classifyEvent(e, looksLike(file), ctx(deletes))).toEqual(actions as never);
});
