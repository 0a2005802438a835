// The docs' Markdown as `rrdsync help` prints it: headings underlined, paragraphs wrapped (or one line each on a
// pipe), tables as a block per row, links to other pages as `rrdsync help NAME`, maintainers' comments gone.
import { expect, test } from "bun:test";
import { PLAIN, renderMarkdown, wrap } from "../../src/cli/render-md.ts";

const o = (width: number) => ({ width, styles: PLAIN, topics: ["install", "config"] });

test("headings, a paragraph wrapped to the width, code as it is, comments gone", () => {
  const md = "# Title here\n\nOne two three four five six seven eight nine ten.\n<!-- for the lead -->\n\n## Part\n\n```sh\nrrdsync --once   # a long line that is never wrapped\n```\n";
  expect(renderMarkdown(md, o(20))).toBe(
    "TITLE HERE\n==========\n\nOne two three four\nfive six seven eight\nnine ten.\n\nPart\n----\n\n    rrdsync --once   # a long line that is never wrapped\n",
  );
});

test("on a pipe (no width) a paragraph is one line, whatever its length", () => {
  const long = Array.from({ length: 60 }, (_, i) => `word${i}`).join(" ");
  expect(renderMarkdown(`${long}\n`, o(Number.POSITIVE_INFINITY))).toBe(`${long}\n`);
});

test("inline markup goes; links to pages name the help topic, others keep their text", () => {
  const md = "Set `delete` **with care**; see [the keys](config.md#keys), [install](install.md), [below](#x), [the README](../README.md) and [rsync](https://rsync.samba.org).\n";
  expect(renderMarkdown(md, o(Number.POSITIVE_INFINITY))).toBe("Set delete with care; see the keys (rrdsync help config), rrdsync help install, below, the README and rsync <https://rsync.samba.org>.\n");
});

test("tables: short names lead their row; long ones get a line of their own, other columns labelled", () => {
  const codes = "| code | meaning |\n|---|---|\n| 0 | all synced |\n| 130 | stopped twice |\n";
  expect(renderMarkdown(codes, o(80))).toBe("  0    all synced\n  130  stopped twice\n");
  const keys = "| key | accepts | meaning |\n|---|---|---|\n| `remote_sync.port` | integer 1–65535 | SSH port, a\\|b |\n";
  expect(renderMarkdown(keys, o(80))).toBe("  remote_sync.port\n      accepts: integer 1–65535\n      SSH port, a|b\n");
});

test("lists keep a hanging indent", () => {
  expect(renderMarkdown("- alpha beta gamma delta\n1. one two three four\n", o(16))).toBe("  • alpha beta\n    gamma delta\n  1. one two\n     three four\n");
});

test("wrap: a word longer than the width stands alone, never cut", () => {
  expect(wrap("a verylongwordindeed b", 6, "", "")).toEqual(["a", "verylongwordindeed", "b"]);
});
