import { expect, test } from "bun:test";
import { previousCopy } from "../../src/track/backup.ts";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeChange } from "../../src/track/change.ts";
import { displayPath, formatEntry } from "../../src/track/changelog.ts";
import { formatAppendDiff, formatUnifiedDiff } from "../../src/track/diff.ts";

test("a one-line change among blank lines: exact hunk, no doubled blank lines", () => {
  const d = formatUnifiedDiff("a\n\nb\nc\n", "a\n\nB\nc\n");
  expect(d.text).toBe("--- before\n+++ after\n@@ -1,4 +1,4 @@\n a\n \n-b\n+B\n c");
  expect([d.added, d.removed, d.truncated]).toEqual([1, 1, false]);
});

test("a diff over the cap is cut with a note saying how much is hidden", () => {
  const before = Array.from({ length: 50 }, (_, i) => `l${i}`).join("\n");
  const after = Array.from({ length: 50 }, (_, i) => `L${i}`).join("\n");
  const d = formatUnifiedDiff(before, after, { maxLines: 10 });
  expect(d.truncated).toBe(true);
  expect(d.text.split("\n")).toHaveLength(2 + 10 + 1);
  // body: the hunk header, 50 removed, 50 added, two "\\ No newline at end of file" markers = 103 lines
  expect(d.text).toEndWith("… diff truncated: 93 more lines not shown");
});

test("appended lines are a zero-context hunk", () => {
  expect(formatAppendDiff(4, ["e", "f"], 2).text).toBe("--- before\n+++ after\n@@ -4,0 +5,2 @@\n+e\n+f");
});

test("change-log entries keep the seed's layout; a name with a newline is quoted", () => {
  const t = new Date(2024, 11, 12, 15, 6, 38);
  expect(formatEntry(t, "a/b.txt", "X")).toBe(`Timestamp: 2024-12-12 15:06:38\nFile: a/b.txt\nChanges:\nX\n${"-".repeat(80)}\n`);
  expect(displayPath("a\nb")).toBe('"a\\nb"');
  expect(displayPath("plain name")).toBe("plain name");
});

test("describeChange: binary by content, text created, appended, modified, unchanged", async () => {
  const dir = mkdtempSync(join(tmpdir(), "rrdsync-desc-"));
  const backupDir = join(dir, "backup");
  mkdirSync(backupDir);
  const bin = join(dir, "x.rrd");
  writeFileSync(bin, Buffer.from([1, 0, 2, 3]));
  const created = await describeChange({ srcPath: bin, relPath: "x.rrd", copy: () => previousCopy(backupDir, "x.rrd", null), previous: null });
  expect(created?.details).toMatch(/^Binary file created\.\nSize: 4 bytes\nSHA256: [0-9a-f]{64}$/);
  writeFileSync(bin, Buffer.from([1, 0, 2, 3, 4]));
  const mod = await describeChange({ srcPath: bin, relPath: "x.rrd", copy: () => previousCopy(backupDir, "x.rrd", null), previous: { size: 4, sha256: created!.sha256 } });
  expect(mod?.details).toBe(`Binary file modified.\nSize: 4 → 5 bytes\nSHA256: ${created!.sha256} → ${mod!.sha256}`);

  const txt = join(dir, "log.txt");
  writeFileSync(txt, "one\ntwo\nthree");
  expect((await describeChange({ srcPath: txt, relPath: "log.txt", copy: () => previousCopy(backupDir, "log.txt", null), previous: null }))?.details).toBe("New file created with 3 lines.");
  writeFileSync(join(backupDir, "log.txt"), "one\ntwo\n");
  writeFileSync(txt, "one\ntwo\nthree\nfour\n");
  const grown = await describeChange({ srcPath: txt, relPath: "log.txt", copy: () => previousCopy(backupDir, "log.txt", null), previous: { size: 8, sha256: null } });
  expect(grown?.details).toBe("--- before\n+++ after\n@@ -2,0 +3,2 @@\n+three\n+four");
  writeFileSync(txt, "one\nTWO\n");
  const changed = await describeChange({ srcPath: txt, relPath: "log.txt", copy: () => previousCopy(backupDir, "log.txt", null), previous: { size: 8, sha256: null } });
  expect(changed?.summary).toBe("+1 −1 lines");
  writeFileSync(txt, "one\ntwo\n");
  expect(await describeChange({ srcPath: txt, relPath: "log.txt", copy: () => previousCopy(backupDir, "log.txt", null), previous: { size: 8, sha256: null } })).toBeNull();
});
