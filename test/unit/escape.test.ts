import { expect, test } from "bun:test";
import { escapeLine, escapeText, safeJson } from "../../src/escape.ts";
import { displayPath, formatEntry } from "../../src/track/changelog.ts";

test("control characters become visible: C0 and DEL as \\xNN, C1 as \\uNNNN; text keeps its newlines, tabs and CRLF", () => {
  expect(escapeText("a\x1b[2Jb\tc\r\nd\re\x7f\u009b\u0085\n")).toBe("a\\x1b[2Jb\tc\r\nd\\x0de\\x7f\\u009b\\u0085\n");
  expect(escapeLine("a\nb\tc\x07")).toBe("a\\x0ab\tc\\x07");
  // printable text is untouched, non-ASCII included
  for (const s of ["ifAlias=core uplink", "Ünïcödé → ✓", "a\\x1b literal backslash"]) expect(escapeText(s)).toBe(s);
});

test("JSON output: DEL and C1 are \\u-escaped too, and the value reads back exactly", () => {
  const v = { p: "x\x7f\u009b\x1b\n" };
  const j = safeJson(v);
  expect(j).not.toMatch(/[\x00-\x1f\x7f-\x9f]/);
  expect(JSON.parse(j)).toEqual(v);
});

test("change-log entries: a name with DEL, U+009B or ESC is quoted and escaped; the body is escaped", () => {
  for (const name of ["del\x7f.txt", "csi\u009b2J.txt", "esc\x1b[31m.txt", "nl\nx.txt"]) {
    const shown = displayPath(name);
    expect(shown).not.toMatch(/[\x00-\x1f\x7f-\x9f]/);
    expect(JSON.parse(shown)).toBe(name);
  }
  const e = formatEntry(new Date(2024, 11, 12, 15, 6, 38), "a.txt", "+ifAlias=\x1b]0;x\x07\r");
  expect(e).toBe(`Timestamp: 2024-12-12 15:06:38\nFile: a.txt\nChanges:\n+ifAlias=\\x1b]0;x\\x07\r\n${"-".repeat(80)}\n`);
});
