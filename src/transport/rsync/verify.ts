// `verify` over rsync: a --checksum dry run, so the standby hashes its own copies and no file data crosses the
// link; verdicts from its itemize lines, "is newer" lines and (walking a subtree) --delete's lines for extras.
import type { Target } from "../../config/types.ts";
import { attributeErrors, decodeRsyncName, isFileItem, parseItemizeLine, parseListOnlyFile, parseNewerLine } from "./itemize.ts";
import { buildListArgv, buildVerifyArgv } from "./args.ts";
import { existsInSource } from "../in-source.ts";
import { explainFailure } from "./errors.ts";
import { runChild } from "./proc.ts";
import type { FileVerdict, VerifyRequest, VerifyResult } from "../types.ts";
import { listEntry, showLatin1 } from "../../names.ts";

/** rsync's exit codes for "some files were not transferred" / "vanished": the other verdicts hold. */
const PARTIAL = new Set([23, 24]);

/** The verdict an itemize line of a --checksum dry run gives a regular file. */
export function verdictOf(flags: string): FileVerdict {
  if (flags[0] === ".") return "same"; // nothing to transfer: the checksums matched (attributes are not compared)
  return flags.slice(2) === "+++++++++" ? "missing" : "differs";
}

type Run = { code: number; stderr: string[] };

/** Runs one rsync, feeding `input` on stdin (NUL-separated paths, as their bytes) and each stdout line to `onLine`. */
async function run(argv: string[], input: string[] | null, onLine: (line: string) => void, signal?: AbortSignal): Promise<Run> {
  try {
    const r = await runChild(argv, input ? input.map(listEntry) : null, onLine, signal);
    return signal?.aborted ? { code: -1, stderr: r.stderr } : r;
  } catch {
    return { code: 127, stderr: ["rsync: not found"] };
  }
}

/** `explain`: why a run failed, for people (the transport's, which knows its ssh master). */
export async function rsyncVerify(
  opts: { target: Target; sourceDir: string; controlPath?: string | null },
  req: VerifyRequest,
  signal?: AbortSignal,
  explain: (code: number, stderr: string[]) => string | Promise<string> = (code, stderr) => explainFailure(code, stderr, opts.target),
): Promise<VerifyResult> {
  const { sourceDir } = opts;
  const tree = req.tree;
  const prefix = tree && tree.root !== "" ? `${tree.root}/` : "";
  // A list run: every listed path must get a verdict; those rsync is silent about are reported, not assumed same.
  const listed = tree ? null : req.files().map((f) => f.path);
  const waiting = listed ? new Set(listed) : null;
  let checked = 0;
  /** --stats' "Number of files: 22,069 (reg: 20,000, dir: 2,069)": the regular files the run compared */
  let compared: number | null = null;
  const countOnly = tree !== undefined && !req.nameSame;
  const judge = (path: string, v: FileVerdict) => {
    if (waiting && !waiting.delete(path)) return; // not one of ours (cannot happen with --files-from; defensive)
    req.onFile(path, v);
    req.onChecked?.(++checked);
  };
  if (listed && listed.length === 0 && !req.extras) return { bytesRead: 0 };
  const r = listed?.length === 0 ? { code: 0, stderr: [] } : await run(buildVerifyArgv(opts, tree, !countOnly), listed, (line) => {
    const item = parseItemizeLine(line);
    if (item) {
      if (item.flags.startsWith("*deleting")) {
        if (!item.dir) req.onExtra(prefix + item.path);
      } else if (isFileItem(item.flags)) {
        judge(prefix + item.path, verdictOf(item.flags));
      }
      return;
    }
    const newer = parseNewerLine(line);
    if (newer !== null) return judge(prefix + newer, "newer");
    if (countOnly && line.startsWith("Number of files: ")) compared = Number((/reg: ([\d,]+)/.exec(line)?.[1] ?? "0").replaceAll(",", ""));
  }, signal);
  if (signal?.aborted) return { error: "interrupted", bytesRead: 0 };
  if (r.code !== 0 && !PARTIAL.has(r.code)) return { error: await explain(r.code, r.stderr), bytesRead: 0 };
  if (PARTIAL.has(r.code)) {
    // Some files could not be compared (unreadable here or there, vanished): each one named is an error, unless
    // it is simply gone from the source now (deleted meanwhile: nothing to compare).
    const named = waiting ? attributeErrors(r.stderr, waiting) : namedInTreeErrors(r.stderr, sourceDir, prefix);
    for (const [path, line] of named) {
      if (existsInSource(sourceDir, path)) judge(path, { error: line });
      else waiting?.delete(path);
    }
  }
  for (const path of waiting ?? []) {
    if (existsInSource(sourceDir, path)) judge(path, { error: `not compared by rsync (exit ${r.code})` });
  }
  if (!tree && req.extras) {
    const e = await listExtras(opts, req.extras, new Set(listed), explain, signal);
    if (typeof e === "string") return { error: e, bytesRead: 0 };
    for (const p of e) req.onExtra(p);
  }
  if (!countOnly) return { bytesRead: 0 };
  // Every compared file rsync did not name is the same: it itemizes any difference, and stderr named the failures.
  if (compared === null) return { error: "rsync printed no --stats count of the files it compared", bytesRead: 0 };
  return { bytesRead: 0, sameUnnamed: Math.max(0, compared - checked) };
}

/** The replica's files under `x.under` that the source list lacks and `x.match` accepts (a listing: nothing is read). */
async function listExtras(
  o: { target: Target; controlPath?: string | null },
  x: NonNullable<VerifyRequest["extras"]>,
  source: Set<string>,
  explain: (code: number, stderr: string[]) => string | Promise<string>,
  signal?: AbortSignal,
): Promise<string[] | string> {
  const found: string[] = [];
  const under = x.under === "" ? "" : `${x.under}/`;
  const l = await run(buildListArgv(o, x.under, x.filter), null, (line) => {
    const name = parseListOnlyFile(line);
    if (name === null) return;
    const rel = under + name;
    if (!source.has(rel) && x.match(rel)) found.push(rel);
  }, signal);
  // A directory the replica does not have (or has as a file) holds no extras: rsync's "change_dir … failed", exit 23.
  if (l.code === 0 || (PARTIAL.has(l.code) && l.stderr.some((s) => /No such file or directory|Not a directory/.test(s)))) return found;
  return await explain(l.code, l.stderr);
}

/** A subtree run's error lines: the quoted names in them (absolute, or relative to the root) as source paths. */
function namedInTreeErrors(lines: string[], sourceDir: string, prefix: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of lines) {
    for (const m of line.matchAll(/"((?:[^"]|"(?!(?: |:|$)))*)"/g)) {
      const p = relativeTo(sourceDir, prefix, decodeRsyncName(m[1] as string));
      if (!out.has(p)) out.set(p, showLatin1(line));
    }
  }
  return out;
}

/** A name from an rsync error line (absolute, or relative to the transfer root) as a path relative to the source. */
function relativeTo(sourceDir: string, prefix: string, name: string): string {
  if (name.startsWith(`${sourceDir}/`)) return name.slice(sourceDir.length + 1);
  return prefix + name;
}
