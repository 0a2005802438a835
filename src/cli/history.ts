// `rrdsync log`: the change history from the state DB, filtered; entries as in the change log (diffs coloured on
// a terminal, through a pager when longer than the screen), one line per change with --stat, JSON lines with --json.
import pc from "picocolors";
import type { Config } from "../config/types.ts";
import { ExitCode, UserError } from "../errors.ts";
import { formatTimestamp } from "../log.ts";
import { formatBytes } from "../text.ts";
import { type ChangeRow, StateStore } from "../store/state.ts";
import { escapeLine, safeJson } from "../escape.ts";
import { displayPath, formatEntry } from "../track/changelog.ts";
import { page } from "./pager.ts";
import { parseWhen } from "./when.ts";
import { nameFromShown } from "../names.ts";

export const KINDS = ["created", "modified", "deleted", "renamed", "repaired", "summary", "stale", "resumed", "conflict", "overwritten", "kept", "merged"] as const;

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
    process.stderr.write(`rrdsync: no history yet: ${escapeLine(config.stateFile)} does not exist (run rrdsync --once first)\n`);
    return ExitCode.Ok;
  }
  try {
    // Where the kept history begins, when retention pruned older changes and the query reaches back that far; and
    // a file's routine RRD updates, which are counted in its row, not listed (issue 25). On stderr: the entries
    // on stdout stay exactly entries.
    const pruned = store.historyPrunedBefore();
    if (pruned !== null && (since === undefined || since < pruned) && !flags.json) {
      const ct = config.changeTracking;
      process.stderr.write(`rrdsync: the history kept begins at ${formatTimestamp(new Date(pruned)).slice(0, 19)}; older changes were pruned (keep_history ${ct.keepHistoryDays > 0 ? `${ct.keepHistoryDays} days` : "for ever"}, max_history_bytes ${ct.maxHistoryBytes > 0 ? formatBytes(ct.maxHistoryBytes) : "unlimited"})\n`);
    }
    const rolled = pattern !== undefined && !/[*?[]/.test(pattern) && !flags.json ? store.rolledUp(pattern) : null;
    if (rolled !== null && rolled.updates > 0) {
      process.stderr.write(`rrdsync: ${escapeLine(pattern as string)}: ${rolled.updates.toLocaleString("en-US")} routine updates rolled up (not listed one by one; change_tracking.rrd_updates "every" lists them)${rolled.stale !== null ? `; stopped updating since ${formatTimestamp(new Date(rolled.stale * 1000)).slice(0, 19)}` : ""}\n`);
    }
    // A plain path (no wildcard) means that file, or everything under that directory: an indexed lookup.
    const wild = pattern !== undefined && /[*?[]/.test(pattern);
    const query = (under: string | undefined) => store.changes({ glob: wild ? pattern : undefined, under, since, until, kinds });
    let rows: Iterable<ChangeRow> = query(wild ? undefined : pattern);
    // a name that is not UTF-8, given as shown (\xNN for each such byte), when nothing has that name as given
    if (!wild && pattern !== undefined && nameFromShown(pattern) !== pattern) rows = orElse(rows, () => query(nameFromShown(pattern)));
    const tty = process.stdout.isTTY === true && !flags.json && !(env.NO_COLOR ?? "");
    const render = flags.json ? jsonLine : flags.stat ? (r: ChangeRow) => statLine(r, tty) : (r: ChangeRow) => entry(r, tty);
    await page(mapRows(rows, render), tty, env);
  } finally {
    store.close();
  }
  return ExitCode.Ok;
}

/** `rows`, or when it has none, `other()`. */
function* orElse<T>(rows: Iterable<T>, other: () => Iterable<T>): Generator<T> {
  let any = false;
  for (const r of rows) {
    any = true;
    yield r;
  }
  if (!any) yield* other();
}

function* mapRows(rows: Iterable<ChangeRow>, render: (r: ChangeRow) => string): Generator<string> {
  for (const r of rows) yield render(r);
}

/** Exact values (JSON escapes every control character, so the line is safe on a terminal as well). */
function jsonLine(r: ChangeRow): string {
  return `${safeJson({ time: new Date(r.time).toISOString(), path: r.path, kind: r.kind, summary: r.summary, added: r.added, removed: r.removed, details: r.details })}\n`;
}

function statLine(r: ChangeRow, tty: boolean): string {
  const c = pc.createColors(tty);
  return `${formatTimestamp(new Date(r.time)).slice(0, 19)}  ${c.green(`+${r.added}`.padStart(6))} ${c.red(`−${r.removed}`.padStart(6))}  ${escapeLine(r.kind).padEnd(15)}  ${displayPath(r.path)}  ${c.dim(escapeLine(r.summary))}\n`;
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
