// The pages of docs/, embedded in the binary (Bun's text import), in the order `rrdsync help` lists them: what a
// server with only the binary reads, and what the man page (scripts/docs.ts) summarises.
import benchmarks from "../../docs/benchmarks.md" with { type: "text" };
import changeLog from "../../docs/change-log.md" with { type: "text" };
import commands from "../../docs/commands.md" with { type: "text" };
import config from "../../docs/config.md" with { type: "text" };
import exitCodes from "../../docs/exit-codes.md" with { type: "text" };
import failover from "../../docs/failover.md" with { type: "text" };
import install from "../../docs/install.md" with { type: "text" };
import internals from "../../docs/internals.md" with { type: "text" };
import monitoring from "../../docs/monitoring.md" with { type: "text" };
import transports from "../../docs/transports.md" with { type: "text" };
import troubleshooting from "../../docs/troubleshooting.md" with { type: "text" };
import watch from "../../docs/watch.md" with { type: "text" };

export interface Topic {
  /** as `rrdsync help NAME` takes it; the page is docs/NAME.md */
  name: string;
  /** the page's Markdown */
  text: string;
}

export const TOPICS: readonly Topic[] = [
  { name: "install", text: install },
  { name: "config", text: config },
  { name: "commands", text: commands },
  { name: "watch", text: watch },
  { name: "transports", text: transports },
  { name: "failover", text: failover },
  { name: "troubleshooting", text: troubleshooting },
  { name: "monitoring", text: monitoring },
  { name: "change-log", text: changeLog },
  { name: "benchmarks", text: benchmarks },
  { name: "internals", text: internals },
  { name: "exit-codes", text: exitCodes },
];

/** The page's title: its "# " heading. */
export function pageTitle(text: string): string {
  return /^# (.+)$/m.exec(text)?.[1] ?? "";
}

/** The page's summary: the first paragraph after its title (what the man page and the help index quote). */
export function pageSummary(text: string): string {
  const afterTitle = text.slice(text.indexOf("\n", text.search(/^# /m)) + 1);
  const para = afterTitle.split(/\n\s*\n/).map((p) => p.trim()).find((p) => p !== "" && !p.startsWith("<!--"));
  return (para ?? "").replace(/\s*\n\s*/g, " ");
}
