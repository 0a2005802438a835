// `rrdsync help [TOPIC]`: the docs' pages from inside the binary, for a server that has nothing else; on a terminal
// wrapped, coloured and through $PAGER, on a pipe plain, one line per paragraph (grep finds a sentence whole).
import pc from "picocolors";
import { ExitCode, UserError } from "../errors.ts";
import { versionLine } from "../version.ts";
import { writeOut } from "./out.ts";
import { page } from "./pager.ts";
import { PLAIN, renderMarkdown, type Styles } from "./render-md.ts";
import { pageTitle, type Topic, TOPICS } from "./topics.ts";

const NAMES = TOPICS.map((t) => t.name);

/** A topic by its name, or by a prefix only one name has ("trouble", "exit"). */
export function findTopic(asked: string): Topic {
  const a = asked.toLowerCase();
  const exact = TOPICS.find((t) => t.name === a);
  if (exact) return exact;
  const prefixed = TOPICS.filter((t) => t.name.startsWith(a) || t.name.replace(/-/g, "").startsWith(a.replace(/[-_ ]/g, "")));
  if (prefixed.length === 1) return prefixed[0] as Topic;
  throw new UserError(
    prefixed.length > 1 ? `help topic "${asked}" could be ${prefixed.map((t) => t.name).join(" or ")}` : `no help topic "${asked}"`,
    ExitCode.Usage,
    `the topics: ${NAMES.join(", ")} (rrdsync help lists them)`,
  );
}

/** The list `rrdsync help` prints: each topic with its page's title. */
export function topicIndex(): string {
  const w = Math.max(...NAMES.map((n) => n.length));
  return [
    `${versionLine()}: its docs, from inside the binary.`,
    "",
    "  rrdsync help TOPIC        one page (through $PAGER on a terminal, plain text on a pipe)",
    "  rrdsync COMMAND --help    a command's options",
    "  man rrdsync               the manual page (rrdsync install puts it in place)",
    "",
    "Topics:",
    ...TOPICS.map((t) => `  ${t.name.padEnd(w)}  ${pageTitle(t.text)}`),
    "",
  ].join("\n");
}

export async function helpCommand(topic: string | undefined, env: Record<string, string | undefined>): Promise<ExitCode> {
  if (topic === undefined) {
    await writeOut(topicIndex());
    return ExitCode.Ok;
  }
  const t = findTopic(topic);
  const tty = process.stdout.isTTY === true;
  const c = pc.createColors(tty && !(env.NO_COLOR ?? ""));
  const styles: Styles = tty ? { heading: c.bold, code: c.cyan, bold: c.bold } : PLAIN;
  const width = tty ? Math.min(process.stdout.columns ?? 80, 100) : Number.POSITIVE_INFINITY;
  const text = renderMarkdown(t.text, { width, styles, topics: NAMES });
  // by lines, so the pager decides with a screen's worth whether it is needed
  await page(text.split(/(?<=\n)/), tty, env);
  return ExitCode.Ok;
}
