// `rrdsync merge A B --to OUT [--prefer a|b] [--force] [--dry-run] [--json]`: two copies of one RRD merged into
// one (src/track/rrd-merge.ts has the rule), and what each side gave, per archive.
import { resolve } from "node:path";
import { ExitCode, UserError } from "../errors.ts";
import { escapeLine, safeJson } from "../escape.ts";
import type { ArchiveMerge } from "../track/rrd-merge.ts";
import { type FileMerge, mergeRrdFiles } from "../track/rrd-merge-file.ts";
import { writeOut } from "./out.ts";

export interface MergeFlags {
  to?: string;
  prefer?: string;
  force?: boolean;
  dryRun?: boolean;
  json?: boolean;
  quiet?: boolean;
}

export async function mergeCommand(args: ReadonlyArray<unknown>, flags: MergeFlags): Promise<ExitCode> {
  if (args.length !== 2) throw new UserError(`merge takes two RRD files, got ${args.length}`, ExitCode.Usage, "rrdsync merge A.rrd B.rrd --to OUT.rrd");
  const [a, b] = args.map(String) as [string, string];
  if (flags.prefer !== undefined && flags.prefer !== "a" && flags.prefer !== "b") {
    throw new UserError(`--prefer ${JSON.stringify(String(flags.prefer))}: expected a or b`, ExitCode.Usage, "--prefer a keeps A's value where both files hold one, --prefer b B's (default: the file updated last)");
  }
  if (flags.to === undefined && !flags.dryRun) throw new UserError("merge needs --to OUT", ExitCode.Usage, "--to a new file, or --to A (or B) to merge into that file in place; --dry-run only reports");
  if (flags.to === "") throw new UserError("--to is empty", ExitCode.Usage, "--to names the merged file");
  const out = flags.to === undefined ? null : resolve(flags.to);
  const r = await mergeRrdFiles(a, b, out, { prefer: flags.prefer as "a" | "b" | undefined, force: flags.force, dryRun: flags.dryRun });
  if (flags.json) await writeOut(`${safeJson(report(r, out))}\n`);
  else if (!flags.quiet) await writeOut(describe(r, out, flags.dryRun === true));
  return ExitCode.Ok;
}

const iso = (t: number) => new Date(Math.floor(t) * 1000).toISOString().replace(".000Z", "Z");

function report(r: FileMerge, out: string | null) {
  const s = r.stats;
  return {
    a: r.names[0],
    b: r.names[1],
    to: out,
    wrote: r.wrote,
    bytes: r.bytes,
    live_state_from: s.liveFrom,
    kept_where_both: s.winner,
    last_update: { a: s.lastUpdate.a, b: s.lastUpdate.b },
    archives: s.archives.map((x) => ({ cf: x.cf, steps: x.pdpPerRow, rows: x.rows, only_a: x.onlyA, only_b: x.onlyB, both: x.both, differed: x.differ, unknown: x.neither })),
    notes: s.notes,
  };
}

function describe(r: FileMerge, out: string | null, dryRun: boolean): string {
  const s = r.stats;
  const name = (side: "a" | "b") => escapeLine(side === "a" ? r.names[0] : r.names[1]);
  const other = (side: "a" | "b") => (side === "a" ? "b" : "a");
  const lines = [
    dryRun ? `would merge ${name("a")} + ${name("b")}${out === null ? "" : ` → ${escapeLine(out)}`}` : `merged ${name("a")} + ${name("b")} → ${escapeLine(out ?? "")} (${r.wrote === "in place" ? "in place, under rrdtool's lock" : "a new file, renamed into place"})`,
    `  live state from ${name(s.liveFrom)}: last update ${iso(s.lastUpdate[s.liveFrom])} (${name(other(s.liveFrom))}: ${iso(s.lastUpdate[other(s.liveFrom)])})`,
    `  where both hold a value: ${name(s.winner)}'s kept (${s.winner === s.liveFrom ? "updated last" : "--prefer"})`,
    ...s.archives.map((x) => `  ${archive(x, name("a"), name("b"))}`),
    ...s.notes.map((n) => `  note: ${escapeLine(n)} (${name(s.liveFrom)}'s kept)`),
  ];
  return `${lines.join("\n")}\n`;
}

const n = (x: number) => x.toLocaleString("en-US");

function archive(x: ArchiveMerge, a: string, b: string): string {
  return `${x.cf} ${x.pdpPerRow}×${x.rows}: ${n(x.onlyA)} row${x.onlyA === 1 ? "" : "s"} from ${a} alone, ${n(x.onlyB)} from ${b} alone, ${n(x.both)} held by both (${n(x.differ)} differed), ${n(x.neither)} unknown in both`;
}
