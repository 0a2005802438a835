// When a new path with a tracked file's inode, size and mtime may be moved on the replica instead of sent (issue 24,
// item 2): its birth time proves it is the same inode object; without one, only identical recorded bytes do.
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sameFile } from "../../src/engine/renames.ts";
import type { Planned } from "../../src/engine/plan.ts";
import type { FileState } from "../../src/store/state.ts";

const facts = { size: 4, mtimeNs: "1700000000000000000", ino: "42" };
const old = (sha256: string | null): FileState => ({ ...facts, sha256, rrd: null, seedMtime: null });
const hash = (s: string) => new Bun.CryptoHasher("sha256").update(s).digest("hex");

test("a birth time at or before the recorded mtime: the same file; after it: a new file on a reused inode", async () => {
  const p: Planned = { rel: "b", abs: "/nonexistent", facts, prev: null };
  expect(await sameFile(p, old(null), 1699999999000000000n)).toBe(true);
  expect(await sameFile(p, old(null), 1700000000000000000n)).toBe(true);
  expect(await sameFile(p, old(hash("same")), 1700000000000000001n)).toBe(false); // cp -p: born after the mtime it was given
});

test("no birth time (a file system without one): moved only when its bytes are the recorded ones", async () => {
  const dir = mkdtempSync(join(tmpdir(), "rrdsync-proof-"));
  try {
    const abs = join(dir, "b");
    writeFileSync(abs, "same");
    const p: Planned = { rel: "b", abs, facts, prev: null };
    expect(await sameFile(p, old(hash("same")), 0n)).toBe(true);
    expect(await sameFile(p, old(hash("other")), 0n)).toBe(false);
    expect(await sameFile(p, old(null), 0n)).toBe(false); // an RRD (no content hash kept): in doubt, send
  } finally {
    rmSync(dir, { recursive: true });
  }
});
