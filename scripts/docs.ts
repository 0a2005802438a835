// Writes what the docs hold that comes from the code, so it cannot drift: the config reference's table in
// docs/config.md (from src/config/keys.ts), the exit-code tables in README.md and docs/exit-codes.md (from
// src/errors.ts), and the man page docs/rrdsync.1 (from the command table in src/main.ts, the exit codes, the
// environment and each page's summary). test/unit/docs.test.ts fails when any of them is out of date.
// Usage: bun run docs            (writes what changed)
//        bun run docs --check    (writes nothing; exit 1 naming what is out of date)
import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { KEYS, type KeyDecl, shownDefault } from "../src/config/keys.ts";
import { pageSummary, pageTitle, TOPICS } from "../src/cli/topics.ts";
import { EXIT_CODE_TABLE } from "../src/errors.ts";
import { INSTALL_DEFAULTS } from "../src/install/plan.ts";
import { buildCli } from "../src/main.ts";
import pkg from "../package.json" with { type: "json" };

export const REPO = resolve(import.meta.dir, "..");

/** A table cell: one line, and a "|" in it does not end the cell. */
const cell = (s: string) => s.replace(/\s*\n\s*/g, " ").replace(/\|/g, "\\|");

/** The exit-code table's text as one line (the table in errors.ts is wrapped for --help). */
export const exitText = (text: string) => text.replace(/\s*\n\s*/g, " ");

export function configTable(): string {
  const rows = (Object.entries(KEYS) as Array<[string, KeyDecl]>).map(([key, d]) => `| \`${key}\` | ${cell(d.rule.accepts)} | ${cell(shownDefault(d))} | ${cell(d.doc)} |`);
  return ["| key | accepts | default | meaning |", "|---|---|---|---|", ...rows].join("\n");
}

export function exitCodeTable(): string {
  return ["| code | meaning |", "|---|---|", ...EXIT_CODE_TABLE.map(([code, text]) => `| ${code} | ${cell(exitText(text))} |`)].join("\n");
}

/** Replaces what stands between `<!-- NAME: … -->` and `<!-- end NAME -->` (both kept) in `text`. */
export function fillBetween(text: string, name: string, body: string, file: string): string {
  const start = new RegExp(`<!-- ${name}:[^\\n]*-->\\n`);
  const m = start.exec(text);
  const endMark = `<!-- end ${name} -->`;
  const end = text.indexOf(endMark);
  if (m === null || end < m.index) throw new Error(`${file}: the markers <!-- ${name}: … --> and ${endMark} are missing`);
  const from = m.index + m[0].length;
  return `${text.slice(0, from)}${body}\n${text.slice(end)}`;
}

export function exitCodesPage(): string {
  return `# Exit codes

What rrdsync's exit status means: one table for every command, as rsync's manual has its "EXIT VALUES". A command that means more by a code says so in its row. \`rrdsync --help\` prints the same table, and so does the README.

${exitCodeTable()}

Where a code needs doing something about, [troubleshooting](troubleshooting.md) has a section per symptom.
`;
}

// ---- the man page: roff for man(7), by hand (no dependency) ----

/** Text as roff: backslashes escaped, "-" as a real minus (copy-pastable options), anything beyond ASCII as \[uXXXX]. */
function roffText(s: string): string {
  let out = "";
  for (const ch of s.replace(/\\/g, "\\e").replace(/-/g, "\\-")) {
    const cp = ch.codePointAt(0) as number;
    out += cp < 0x80 ? ch : `\\[u${cp.toString(16).toUpperCase().padStart(4, "0")}]`;
  }
  return out;
}

/** Inline Markdown as roff: `code` and **bold** in bold, links as their text. */
export function roffInline(md: string): string {
  const parts: string[] = [];
  const re = /`([^`]+)`|\*\*(.+?)\*\*|\[([^\]]+)\]\([^)]*\)/g;
  let last = 0;
  for (let m = re.exec(md); m !== null; m = re.exec(md)) {
    parts.push(roffText(md.slice(last, m.index)));
    if (m[1] !== undefined) parts.push(`\\fB${roffText(m[1])}\\fR`);
    else if (m[2] !== undefined) parts.push(`\\fB${roffInline(m[2])}\\fR`);
    else parts.push(roffInline(m[3] as string));
    last = re.lastIndex;
  }
  parts.push(roffText(md.slice(last)));
  return parts.join("");
}

/** A line of text for the page: a line starting with "." or "'" would be read as a request. */
const line = (s: string) => (/^[.']/.test(s) ? `\\&${s}` : s);

/** One section of a page ("## Environment"): its paragraphs. */
function section(md: string, heading: string): string {
  const at = md.indexOf(`\n## ${heading}\n`);
  if (at < 0) throw new Error(`no section "## ${heading}"`);
  const rest = md.slice(at + heading.length + 5);
  const end = rest.search(/\n#{1,2} /);
  return (end < 0 ? rest : rest.slice(0, end)).trim();
}

/** `pages`: each topic's Markdown, as it is now (the generated ones as this run writes them). */
export function manPage(pages: ReadonlyMap<string, string>): string {
  const cli = buildCli();
  const readme = readFileSync(join(REPO, "README.md"), "utf8");
  const tagline = readme.split("\n").slice(2, 4).join(" ");
  const out: string[] = [
    `.\\" rrdsync(1): written by scripts/docs.ts (bun run docs) from the command table, the exit codes and docs/; do not edit by hand.`,
    `.TH RRDSYNC 1 "" "rrdsync ${pkg.version}" "User Commands"`,
    ".SH NAME",
    "rrdsync \\- replicate an OpenNMS RRD tree to a standby host over SSH, with an audit trail of what changed",
    ".SH SYNOPSIS",
  ];
  for (const c of cli.commands) {
    // cac's usage line where the command has one (it names the command), else its name and arguments
    const usage = c.usageText || (c.options.length > 0 ? `${c.rawName} [OPTIONS]` : c.rawName);
    out.push(".B rrdsync", line(roffText(usage)), ".br");
  }
  out.pop();
  out.push(".SH DESCRIPTION", line(roffInline(tagline)), ".PP", line(roffInline(pageSummary(readme.slice(readme.indexOf("## What it does"))))));
  out.push(".SH COMMANDS");
  for (const c of cli.commands) {
    out.push(".TP", `\\fB${roffText(c.rawName === "" ? "rrdsync [--once | --watch]" : `rrdsync ${c.rawName}`)}\\fR`, line(roffText(c.description)));
    for (const o of c.options) out.push(".RS", ".TP", `\\fB${roffText(o.rawName)}\\fR`, line(roffText(o.description)), ".RE");
    if (c.examples.length > 0) out.push(".RS", ".PP", c.examples.length === 1 ? "Example:" : "Examples:", ".nf", ...c.examples.map((e) => line(roffText(String(e)))), ".fi", ".RE");
  }
  out.push(".SH OPTIONS");
  // cac's own -h, --help says "Display this message": ours says what it prints
  for (const o of cli.globalCommand.options.filter((o) => o.name !== "help")) out.push(".TP", `\\fB${roffText(o.rawName)}\\fR`, line(roffText(o.description)));
  out.push(".TP", "\\fB\\-h, \\-\\-help\\fR", "The commands, these options and the exit codes; \\fBrrdsync \\fICOMMAND\\fB \\-\\-help\\fR for a command's options.");
  out.push(".SH EXIT STATUS");
  for (const [code, text] of EXIT_CODE_TABLE) out.push(".TP", `\\fB${code}\\fR`, line(roffText(exitText(text))));
  const commands = pages.get("commands") ?? "";
  out.push(".SH ENVIRONMENT", line(roffInline(section(commands, "Environment"))));
  const d = INSTALL_DEFAULTS;
  const files: Array<[string, string]> = [
    [`${d.etcDir}/config.json`, "the config (JSON with # and // comments), read when neither --config nor $RRDSYNC_CONFIG names another"],
    [`${d.stateDir}/`, "the state DB (state.db, its lock state.db.lock) and the backups, as rrdsync install sets them up"],
    [`${d.logDir}/`, "the log (rrdsync.log) and the change log (change_log.txt)"],
    [`${d.systemdDir}/rrdsync.service`, "the systemd unit (Type=notify, sandboxed) that rrdsync install writes"],
    [`${d.logrotateDir}/rrdsync`, "the logrotate snippet (its postrotate sends SIGHUP)"],
    [`${d.etcDir}/install-manifest.json`, "what rrdsync install wrote, for rrdsync uninstall"],
  ];
  out.push(".SH FILES");
  for (const [path, what] of files) out.push(".TP", `\\fI${roffText(path)}\\fR`, line(roffText(what)));
  out.push(".SH DOCUMENTATION", "Every page of the docs is in the binary: \\fBrrdsync help\\fR lists them, \\fBrrdsync help \\fITOPIC\\fR prints one (paged on a terminal, plain on a pipe). In the source they are README.md and docs/*.md.");
  for (const t of TOPICS) {
    const text = pages.get(t.name) ?? t.text;
    out.push(".TP", `\\fBrrdsync help ${roffText(t.name)}\\fR`, line(`\\fI${roffInline(pageTitle(text))}\\fR: ${roffInline(pageSummary(text))}`));
  }
  out.push(".SH SEE ALSO", "\\fBrsync\\fR(1), \\fBssh\\fR(1), \\fBrrdtool\\fR(1), \\fBsystemd.service\\fR(5), \\fBlogrotate\\fR(8)");
  return `${out.join("\n")}\n`;
}

/** Every generated file, as it should be now: path (from the repo) → content. */
export function generated(): Map<string, string> {
  const read = (p: string) => readFileSync(join(REPO, p), "utf8");
  const out = new Map([
    ["docs/config.md", fillBetween(read("docs/config.md"), "config-keys", configTable(), "docs/config.md")],
    ["README.md", fillBetween(read("README.md"), "exit-codes", exitCodeTable(), "README.md")],
    ["docs/exit-codes.md", exitCodesPage()],
  ]);
  const pages = new Map(TOPICS.map((t) => [t.name, out.get(`docs/${t.name}.md`) ?? read(`docs/${t.name}.md`)]));
  out.set("docs/rrdsync.1", manPage(pages));
  return out;
}

if (import.meta.main) {
  const check = process.argv.includes("--check");
  const stale: string[] = [];
  for (const [path, text] of generated()) {
    let now = "";
    try {
      now = readFileSync(join(REPO, path), "utf8");
    } catch {
      // not there yet: written below
    }
    if (now === text) continue;
    stale.push(path);
    if (!check) writeFileSync(join(REPO, path), text);
  }
  if (check && stale.length > 0) {
    console.error(`out of date: ${stale.join(", ")}; run: bun run docs`);
    process.exit(1);
  }
  console.log(stale.length === 0 ? "docs: up to date" : `docs: wrote ${stale.join(", ")}`);
}
