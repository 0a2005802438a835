import { expect, test } from "bun:test";
import type { BigIntStats } from "node:fs";
import type { Look } from "../../src/source/look.ts";
import { classifyPath } from "../../src/watch/classify.ts";

const file: Look = { kind: "file", stat: {} as BigIntStats };
const ctx = (deletes: boolean) => ({ isOwn: (rel: string) => rel === "state.db", extensions: [".rrd", ".txt"], deletes });

test.each([
  // [path, look, delete on, action]
  ["a/b.rrd", file, false, { kind: "changed", path: "a/b.rrd" }],
  ["a/.b.rrd.tmp", file, false, { kind: "ignore" }],
  ["state.db", file, false, { kind: "ignore" }],
  ["a/new", { kind: "dir" }, false, { kind: "walk", dir: "a/new" }],
  ["a/b.rrd", { kind: "gone" }, false, { kind: "ignore" }],
  ["a/b.rrd", { kind: "gone" }, true, { kind: "gone", path: "a/b.rrd" }],
  ["a/dir", { kind: "gone" }, true, { kind: "goneDir", dir: "a/dir" }],
  ["a/link.rrd", { kind: "other" }, true, { kind: "ignore" }],
  ["a/b.rrd", { kind: "unknown", code: "EACCES" }, true, { kind: "ignore" }],
] as Array<[string, Look, boolean, unknown]>)("%s (%o, delete %p) → %o", (rel, look, deletes, action) => {
  expect(classifyPath(rel, look, ctx(deletes))).toEqual(action as never);
});
