// `rrdsync log`: the change history from the state DB, filtered; entries as in the change log (diffs coloured on
// a terminal, through a pager when longer than the screen), one line per change with --stat, JSON lines with --json.
import pc from "picocolors";
import type { Config } from "../config/types.ts";
import { ExitCode, UserError } from "../errors.ts";
import { formatTimestamp } from "../log.ts";
import { type ChangeRow, StateStore } from "../store/state.ts";
import { escapeLine, safeJson } from "../escape.ts";
import { displayPath, formatEntry } from "../track/changelog.ts";
import { writeOut } from "./out.ts";
import { parseWhen } from "./when.ts";

export const KINDS = ["created", "modified", "deleted", "renamed", "repaired"] as const;

export interface LogFlags {
  since?: string;
  until?: string;
  kind?: string | string[];
  json?: boolean;
  stat?: boolean;
}

export async function showLog(config: Config, pattern: string | undefined, flags: LogFlags, env: Record<string, string | undefined>): Promise<ExitCode> {
  const kinds = [flags.kind ?? []].flat().flatMap((k) => String(k).split(","));
  for (const k of kinds) {
    if (!(KINDS as readonly string[]).includes(k)) throw new UserError(`--kind ${JSON.stringify(k)}: not a kind of change`, ExitCode.Usage, `use one of ${KINDS.join(", ")}`);
  }
  const since = flags.since !== undefined ? parseWhen(flags.since, "--since") : undefined;
  const until = flags.until !== undefined ? parseWhen(flags.until, "--until") : undefined;
  const store = StateStore.openExisting(config.stateFile);
  if (store === null) {
    process.stderr.write(`rrdsync: no history yet: ${config.stateFile} does not exist (run rrdsync --once first)\n`);
    return ExitCode.Ok;
  }
  let rows: ChangeRow[];
  try {
    rows = store.changes({ glob: globFor(pattern), since, until, kinds });
  } finally {
    store.close();
  }
  // A plain path (no wildcard) means that file, or everything under that directory.
  if (pattern !== undefined && !/[*?[]/.test(pattern)) {
    const p = pattern.replace(/\/+$/, "");
    rows = rows.filter((r) => r.path === p || r.path.startsWith(`${p}/`));
  }
  const tty = process.stdout.isTTY === true && !flags.json && !(env.NO_COLOR ?? "");
  const text = flags.json ? rows.map(jsonLine).join("") : flags.stat ? statLines(rows, tty) : rows.map((r) => entry(r, tty)).join("");
  await page(text, tty, env);
  return ExitCode.Ok;
}

function globFor(pattern: string | undefined): string | undefined {
  if (pattern === undefined) return undefined;
  return /[*?[]/.test(pattern) ? pattern : `${pattern.replace(/\/+$/, "").replace(/[[*?]/g, "[$&]")}*`;
}

/** Exact values (JSON escapes every control character, so the line is safe on a terminal as well). */
function jsonLine(r: ChangeRow): string {
  return `${safeJson({ time: new Date(r.time).toISOString(), path: r.path, kind: r.kind, summary: r.summary, added: r.added, removed: r.removed, details: r.details })}\n`;
}

function statLines(rows: ChangeRow[], tty: boolean): string {
  const c = pc.createColors(tty);
  return rows
    .map((r) => `${formatTimestamp(new Date(r.time)).slice(0, 19)}  ${c.green(`+${r.added}`.padStart(6))} ${c.red(`−${r.removed}`.padStart(6))}  ${escapeLine(r.kind).padEnd(15)}  ${displayPath(r.path)}  ${c.dim(escapeLine(r.summary))}\n`)
    .join("");
}

/** An entry as the change log has it; rows from before details were kept show their summary instead. */
function entry(r: ChangeRow, tty: boolean): string {
  const text = formatEntry(new Date(r.time), r.path, r.details || `${r.kind}: ${r.summary}`);
  if (!tty) return text;
  return text
    .split("\n")
    .map((l) => {
      if (l.startsWith("Timestamp: ") || l.startsWith("File: ")) return pc.bold(l);
      if (l.startsWith("+++") || l.startsWith("---")) return pc.bold(l);
      if (l.startsWith("@@")) return pc.cyan(l);
      if (l.startsWith("+")) return pc.green(l);
      if (l.startsWith("-")) return pc.red(l);
      if (/^(ERROR|WARNING|STRUCTURE CHANGED)/.test(l)) return pc.yellow(l);
      return l;
    })
    .join("\n");
}

/** Through $PAGER (default `less -FRX`) when it is longer than the terminal; straight out otherwise. */
async function page(text: string, tty: boolean, env: Record<string, string | undefined>): Promise<void> {
  const rows = process.stdout.rows ?? 24;
  const pager = (env.PAGER ?? "less -FRX").trim().split(/\s+/).filter((w) => w !== "");
  if (tty && pager.length > 0 && pager[0] !== "cat" && text.split("\n").length > rows && Bun.which(pager[0] as string)) {
    const p = Bun.spawn(pager, { stdin: "pipe", stdout: "inherit", stderr: "inherit", env: { LESS: "FRX", ...env } });
    try {
      p.stdin.write(text);
      await p.stdin.end();
    } catch {
      // the reader quit the pager early: fine
    }
    await p.exited;
    return;
  }
  await writeOut(text);
}
