// Moves on the replica never go through a planted symlink: the local rename and the sh script (run here by sh).
import { expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { moveLocally, moveScript } from "../../src/transport/replica-moves.ts";

function tree(): { dest: string; outside: string } {
  const dir = mkdtempSync(join(tmpdir(), "rrdsync-moves-"));
  const dest = join(dir, "dest");
  const outside = join(dir, "outside");
  for (const d of [join(dest, "real"), join(outside, "sub")]) mkdirSync(d, { recursive: true });
  writeFileSync(join(dest, "real/a.txt"), "a");
  writeFileSync(join(dest, "real/-n odd 'q'.txt"), "odd");
  writeFileSync(join(outside, "victim.txt"), "victim");
  symlinkSync(outside, join(dest, "link")); // a directory replaced by a symlink to outside
  symlinkSync(join(outside, "victim.txt"), join(dest, "real/filelink.txt"));
  mkdirSync(join(dest, "real/dir"));
  return { dest, outside };
}

const moves = [
  { from: "link/victim.txt", to: "real/stolen.txt" }, // from behind the symlink: refused
  { from: "real/a.txt", to: "link/sub/a.txt" }, // into it: refused
  { from: "real/filelink.txt", to: "real/f.txt" }, // a symlink is not a regular file: refused
  { from: "real/a.txt", to: "real/dir" }, // onto a directory: refused
  { from: "real/a.txt", to: "new/deep/b.txt" }, // fine: directories made
  { from: "real/-n odd 'q'.txt", to: "real/x y.txt" }, // fine: any bytes
];

function check(dest: string, outside: string, moved: number[]): void {
  expect(moved).toEqual([4, 5]);
  expect(readFileSync(join(outside, "victim.txt"), "utf8")).toBe("victim");
  expect(readFileSync(join(dest, "new/deep/b.txt"), "utf8")).toBe("a");
  expect(readFileSync(join(dest, "real/x y.txt"), "utf8")).toBe("odd");
  expect(() => readFileSync(join(outside, "sub/a.txt"))).toThrow();
}

test("a local destination: only regular files, only through real directories, never onto a directory", () => {
  const { dest, outside } = tree();
  const moved = moves.flatMap((m, i) => (moveLocally(dest, m.from, m.to) ? [i] : []));
  check(dest, outside, moved);
});

test("over ssh: the sh script does the same, and reports exactly the moves it did", () => {
  const { dest, outside } = tree();
  const p = Bun.spawnSync(["sh", "-s"], { stdin: Buffer.from(moveScript(dest, moves)) });
  expect(p.stderr.toString()).toBe("");
  const moved = p.stdout.toString().trim().split("\n").map((l) => Number(/^rrdsync-moved (\d+)$/.exec(l)?.[1]));
  check(dest, outside, moved);
});
