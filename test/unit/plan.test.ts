import { describe, expect, test } from "bun:test";
import { batchWouldOverflow, decide, sameVersion, statFacts } from "../../src/engine/plan.ts";
import type { FileState } from "../../src/store/state.ts";

const facts = { size: 100, mtimeNs: "1700000000123456789", ino: "42" };
const synced = (over: Partial<FileState> = {}): FileState => ({ size: 100, mtimeNs: "1700000000123456789", ino: "42", sha256: null, rrd: null, seedMtime: null, ...over });

describe("decide", () => {
  test.each([
    ["never synced", null, "send"],
    ["same size, mtime and inode", synced(), "unchanged"],
    ["size changed", synced({ size: 99 }), "send"],
    ["mtime changed by one nanosecond", synced({ mtimeNs: "1700000000123456788" }), "send"],
    ["replaced (new inode)", synced({ ino: "43" }), "send"],
    ["seed synced this mtime", synced({ size: -1, mtimeNs: "", ino: "", seedMtime: 1700000000.1234567 }), "adopt"],
    ["seed synced a newer mtime", synced({ size: -1, mtimeNs: "", ino: "", seedMtime: 1700000001 }), "adopt"],
    ["changed after the seed synced it", synced({ size: -1, mtimeNs: "", ino: "", seedMtime: 1699999999.5 }), "send"],
  ] as const)("%s", (_name, prev, want) => {
    expect(decide(facts, prev)).toBe(want);
  });
});

test("statFacts keeps nanoseconds and large inodes exactly", () => {
  const f = statFacts({ size: 5n, mtimeNs: 1732460000123456789n, ino: 18446744073709551557n });
  expect(f).toEqual({ size: 5, mtimeNs: "1732460000123456789", ino: "18446744073709551557" });
  expect(sameVersion(f, { ...f })).toBe(true);
});

describe("batchWouldOverflow", () => {
  const limits = { maxFiles: 3, maxBytes: 1000 };
  test("an empty batch takes any file, even one over the byte cap", () => {
    expect(batchWouldOverflow({ files: 0, bytes: 0 }, 5000, limits)).toBe(false);
  });
  test("count cap", () => {
    expect(batchWouldOverflow({ files: 2, bytes: 10 }, 1, limits)).toBe(false);
    expect(batchWouldOverflow({ files: 3, bytes: 10 }, 1, limits)).toBe(true);
  });
  test("byte cap", () => {
    expect(batchWouldOverflow({ files: 1, bytes: 600 }, 400, limits)).toBe(false);
    expect(batchWouldOverflow({ files: 1, bytes: 600 }, 401, limits)).toBe(true);
  });
});
