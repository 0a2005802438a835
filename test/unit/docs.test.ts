// The docs cannot drift from the code: what scripts/docs.ts generates (the config reference's table, the exit-code
// tables, the man page) is what the files hold; the README's and the man page's exit codes are the code's; every
// link between the pages lands on a page and a heading; every page is a `rrdsync help` topic; the README stays short
// and its first screen keeps the two commands CI and the brief run.
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { generated, REPO } from "../../scripts/docs.ts";
import { pageSummary, TOPICS } from "../../src/cli/topics.ts";
import { KEYS, type KeyDecl } from "../../src/config/keys.ts";
import { EXIT_CODE_TABLE } from "../../src/errors.ts";

const read = (p: string) => readFileSync(join(REPO, p), "utf8");
const oneLine = (s: string) => s.replace(/\s+/g, " ").trim();
const codeTable = EXIT_CODE_TABLE.map(([code, text]) => [code, oneLine(text)] as const);

test("what bun run docs writes is what the files hold (run `bun run docs` after changing keys.ts, errors.ts, the command table or a page's first paragraph)", () => {
  for (const [path, text] of generated()) expect({ path, text: read(path) }).toEqual({ path, text });
});

describe("the exit-code tables are the code's", () => {
  test("README.md", () => {
    const readme = read("README.md");
    const table = readme.slice(readme.indexOf("<!-- exit-codes:"), readme.indexOf("<!-- end exit-codes -->"));
    const rows = [...table.matchAll(/^\| (\d+) \| (.*) \|$/gm)].map((m) => [Number(m[1]), m[2]] as const);
    expect(rows).toEqual(codeTable);
  });

  test("the man page's EXIT STATUS, as man shows it", () => {
    const roff = read("docs/rrdsync.1");
    const section = roff.slice(roff.indexOf(".SH EXIT STATUS\n"), roff.indexOf("\n.SH ", roff.indexOf(".SH EXIT STATUS\n") + 1));
    const unroff = (s: string) => s.replace(/\\-/g, "-").replace(/\\e/g, "\\").replace(/\\\[u([0-9A-F]{4,5})\]/g, (_, h: string) => String.fromCodePoint(Number.parseInt(h, 16)));
    const rows = [...section.matchAll(/^\.TP\n\\fB(\d+)\\fR\n(.*)$/gm)].map((m) => [Number(m[1]), unroff(m[2] as string)] as const);
    expect(rows).toEqual(codeTable);
  });

  test("the daemon's 130 (a second SIGINT) is in the table", () => {
    expect(EXIT_CODE_TABLE.map(([c]) => c)).toContain(130);
  });
});

test.skipIf(Bun.which("man") === null)("man renders the page without a warning", () => {
  const r = Bun.spawnSync(["man", "--warnings", "-l", join(REPO, "docs/rrdsync.1")], { env: { ...process.env, MANPAGER: "cat", PAGER: "cat", MANWIDTH: "80" }, stdout: "pipe", stderr: "pipe" });
  expect({ code: r.exitCode, err: r.stderr.toString() }).toEqual({ code: 0, err: "" });
  const text = r.stdout.toString();
  for (const s of ["NAME", "SYNOPSIS", "COMMANDS", "OPTIONS", "EXIT STATUS", "ENVIRONMENT", "FILES", "DOCUMENTATION"]) expect(text).toContain(`\n${s}\n`);
  for (const t of TOPICS) expect(text).toContain(`rrdsync help ${t.name}`);
});

describe("the pages", () => {
  test("every docs/*.md is a help topic, and every topic a page with a title and a summary", () => {
    const pages = readdirSync(join(REPO, "docs")).filter((f) => f.endsWith(".md")).map((f) => f.slice(0, -3)).sort();
    expect(TOPICS.map((t) => t.name).sort()).toEqual(pages);
    for (const t of TOPICS) {
      expect(t.text).toBe(read(`docs/${t.name}.md`)); // what the binary embeds
      expect(t.text.startsWith("# ")).toBe(true);
      expect(pageSummary(t.text).length).toBeGreaterThan(40);
    }
  });

  /** GitHub's anchor for a heading: lowercase, punctuation (markup, dashes, colons) gone, spaces as "-". */
  const slug = (h: string) => h.toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, "").replace(/ /g, "-");
  const anchors = (md: string) => new Set([...md.replace(/```[\s\S]*?```/g, "").matchAll(/^#{1,6} (.+)$/gm)].map((m) => slug(m[1] as string)));

  test("every link between the pages lands on a page and, with #anchor, on one of its headings", () => {
    const files = ["README.md", ...TOPICS.map((t) => `docs/${t.name}.md`)];
    const bad: string[] = [];
    for (const f of files) {
      const md = read(f);
      for (const m of md.matchAll(/\]\(([^)\s]+)\)/g)) {
        const href = m[1] as string;
        if (/^https?:/.test(href)) continue;
        const [file, anchor] = href.split("#") as [string, string | undefined];
        const target = file === "" ? f : join(f, "..", file).replace(/^\.\//, "");
        let text: string;
        try {
          text = read(target);
        } catch {
          bad.push(`${f}: ${href} (no such file)`);
          continue;
        }
        if (anchor !== undefined && !anchors(text).has(anchor)) bad.push(`${f}: ${href} (no such heading in ${target})`);
      }
    }
    expect(bad).toEqual([]);
  });

  test("the README's table of pages and the commands page name every topic", () => {
    const readme = read("README.md");
    const commands = read("docs/commands.md");
    for (const t of TOPICS) {
      expect(readme).toContain(`(docs/${t.name}.md) | \`${t.name}\` |`);
      expect(commands.slice(commands.indexOf("### help"))).toContain(`\`${t.name}\``);
    }
  });

  test("the README: at most ~150 lines, and its first screen keeps the fresh-machine commands", () => {
    const readme = read("README.md");
    expect(readme.split("\n").length).toBeLessThanOrEqual(150);
    const firstScreen = readme.split("\n").slice(0, 24).join("\n");
    expect(firstScreen).toContain("\nbash scripts/setup.sh && bun run demo\n");
    expect(firstScreen).toContain("\nbash scripts/setup.sh --test && bun run test\n");
  });
});

describe("the config keys' declarations", () => {
  test("each plain default passes its own key's rule unchanged", () => {
    const ctx = { origin: "keys.ts", home: "/root", warnings: [] };
    for (const [key, d] of Object.entries(KEYS) as Array<[string, KeyDecl]>) {
      if (!("value" in d) || key === "max_delete" || key === "metrics_listen") continue; // kept in their checked form
      expect({ key, value: d.rule(d.value, key, ctx) }).toEqual({ key, value: d.value });
    }
  });

  test("every key has a meaning, and the reference lists each once", () => {
    const config = read("docs/config.md");
    for (const [key, d] of Object.entries(KEYS) as Array<[string, KeyDecl]>) {
      expect(d.doc.length).toBeGreaterThan(2);
      expect(config.split(`\n| \`${key}\` |`).length).toBe(2);
    }
  });
});
