import { expect, test } from "bun:test";
import { previousCopy } from "../../src/track/backup.ts";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeChange } from "../../src/track/change.ts";
import { parseProperties, propertiesChanges } from "../../src/track/properties.ts";

test("properties as OpenNMS writes them: comments skipped, = and : separators, escapes, continuations", () => {
  const p = parseProperties("#Tue Nov 14 22:13:20 UTC 2023\nifAlias=core\\:uplink\nifSpeed: 1000\n! bang comment\nlong=a\\\n   b\nuni=caf\\u00e9\n");
  expect([...p]).toEqual([["ifAlias", "core:uplink"], ["ifSpeed", "1000"], ["long", "ab"], ["uni", "café"]]);
});

test("changed, added and removed keys; the timestamp comment is not a change", () => {
  const before = "#Mon\nifAlias=uplink\nifDescr=eth0\nold=1\n";
  const after = "#Tue\nifAlias=core uplink\nifDescr=eth0\nifSpeed=1000\n";
  expect(propertiesChanges(before, after)).toEqual(['ifAlias: "uplink" → "core uplink"', 'ifSpeed: added "1000"', 'old: removed (was "1")']);
  expect(propertiesChanges("#Mon\na=1\n", "#Tue\na=1\n")).toEqual([]);
});

test("a modified strings.properties: key lines, then the unified diff", async () => {
  const dir = mkdtempSync(join(tmpdir(), "rrdsync-props-"));
  mkdirSync(join(dir, "backup", "n"), { recursive: true });
  writeFileSync(join(dir, "backup", "n", "strings.properties"), "#Mon\nifAlias=uplink\n");
  const src = join(dir, "strings.properties");
  writeFileSync(src, "#Tue\nifAlias=core uplink\n");
  const rec = await describeChange({ srcPath: src, relPath: "n/strings.properties", copy: () => previousCopy(join(dir, "backup"), "n/strings.properties", null), previous: { size: 21, sha256: null } });
  expect(rec?.summary).toBe("+2 −2 lines, 1 key changed");
  expect(rec?.details).toBe('ifAlias: "uplink" → "core uplink"\n--- before\n+++ after\n@@ -1,2 +1,2 @@\n-#Mon\n-ifAlias=uplink\n+#Tue\n+ifAlias=core uplink');
});
