// What changed in a file since it was last synced, as a change-log entry: a diff for text, size and sha256 for binary.
import { closeSync, constants, openSync, readFileSync, readSync, statSync } from "node:fs";
import { RRD_NAME, readRrdProbe } from "./rrd-read.ts";
import type { PreviousCopy } from "./backup.ts";
import { isTextFile, SNIFF_BYTES, sha256File } from "./detect.ts";
import { propertiesChanges } from "./properties.ts";
import { describeCreatedRrd, describeUpdatedRrd, parseSummary, rrdDamage, type RrdProbe, type RrdSummary, summarize } from "./rrd.ts";
import { judgeRrdUpdate } from "./rrd-routine.ts";
import { DEFAULT_MAX_DIFF_LINES, formatAppendDiff, formatUnifiedDiff, splitLines } from "./diff.ts";
import { bunFile, fsPath } from "../names.ts";

/** Files are read never through a symlink at their name (a file swapped for one since it was looked at). */
const NOFOLLOW_READ = constants.O_RDONLY | constants.O_NOFOLLOW;

export interface PreviousVersion {
  size: number;
  /** null when unknown (e.g. imported from the seed's state, or an RRD: those keep a header summary instead) */
  sha256: string | null;
  /** an RRD's header summary as last synced (JSON of RrdSummary) */
  rrd?: string | null;
  /** the same, already parsed (undefined: not parsed yet) */
  summary?: RrdSummary | null;
}

export interface ChangeRecord {
  path: string;
  kind: "created" | "modified";
  fileKind: "text" | "binary" | "rrd";
  /** one short line for the console and the DB */
  summary: string;
  /** the body after "Changes:" in the change log, no trailing newline */
  details: string;
  added: number;
  removed: number;
  /** null for RRD files: their header summary (`rrd`) identifies the version, no full read needed */
  sha256: string | null;
  /** RRD files: the header summary to keep for the next entry (JSON) */
  rrd?: string;
  size: number;
  /** a file named like an RRD that looks torn or corrupt (see rrdDamage) */
  damage?: string;
  /** an RRD update of the same structure with its last update forward (track/rrd-routine.ts): rolled up */
  routine?: boolean;
  /** RRDs: the last update now (seconds), and the last values */
  last?: number;
  lastDs?: string[];
  /** text files read whole (all but huge ones): the content described, for its backup copy */
  content?: Buffer;
  /**
   * the summary and this many leading characters of the details are the same for every file of its layout (a new
   * RRD's definition): the state DB keeps them once
   */
  shared?: number;
}

export interface DiffLimits {
  /** above this size (either side) a text file is not diffed in memory */
  maxDiffBytes: number;
  maxDiffLines: number;
}

export const DEFAULT_LIMITS: DiffLimits = { maxDiffBytes: 8 * 1024 * 1024, maxDiffLines: DEFAULT_MAX_DIFF_LINES };
const CHUNK = 1024 * 1024;

function countLines(text: string): number {
  return splitLines(text).length;
}

interface DescribeOptions {
  srcPath: string;
  relPath: string;
  /** the text copy as last synced (the diff's "before"), if one is kept; asked for text files only */
  copy: () => PreviousCopy | null;
  previous: PreviousVersion | null;
  limits?: Partial<DiffLimits>;
  /** the size the caller just stat'ed (saves a stat per file) */
  size?: number;
  /** the header the caller already read for this version (the torn-file hold check), if it did */
  probe?: RrdProbe;
  /** the whole content, when the caller already read it (a small file read with its header) */
  content?: Buffer | null;
  /**
   * a routine RRD update is rolled up (no entry of its own): it is judged, and nothing of an entry is written for
   * it (issue 25: a tree updated day and night pays for no text nobody reads)
   */
  rollup?: boolean;
}

/** null: the content is the same as the previous version (nothing to record). */
export async function describeChange(opts: DescribeOptions): Promise<ChangeRecord | null> {
  const probe = opts.probe ?? readRrdProbe(opts.srcPath);
  const rec = await describeWith(probe, opts);
  // A file named like an RRD also gets the torn-file verdict, from the same header read.
  if (rec !== null && RRD_NAME.test(opts.relPath)) {
    const prev = opts.previous?.summary !== undefined ? opts.previous.summary : parseSummary(opts.previous?.rrd);
    rec.damage = rrdDamage(probe, rec.size, prev) ?? undefined;
  }
  return rec;
}

async function describeWith(probe: RrdProbe, opts: DescribeOptions): Promise<ChangeRecord | null> {
  const limits = { ...DEFAULT_LIMITS, ...opts.limits };
  const { srcPath, relPath, previous } = opts;
  // RRD files are described from their header alone (a few KiB): what the update did, not a hash of 38 KB.
  const rrd = probe.kind === "rrd" ? probe.header : null;
  if (rrd !== null) {
    const size = opts.size ?? statSync(fsPath(srcPath)).size;
    const now = summarize(rrd);
    if (previous !== null && opts.rollup) {
      // Routine and rolled up: judged, and no entry's text or summary JSON made (the row takes last and values).
      const prev = previous.summary !== undefined ? previous.summary : parseSummary(previous.rrd);
      // (a file that looks damaged in any way gets its full entry: the audit flags it)
      if (judgeRrdUpdate(prev, now, { stale: false, damaged: rrdDamage(probe, size, prev) !== null }) === "routine") {
        return { path: relPath, kind: "modified", fileKind: "rrd", added: 0, removed: 0, sha256: null, size, summary: "rrd updated (routine)", details: "", routine: true, last: now.last, lastDs: now.lastDs };
      }
    }
    const summaryJson = JSON.stringify(now);
    if (previous === null) {
      const d = describeCreatedRrd(rrd, size);
      return { path: relPath, kind: "created", fileKind: "rrd", added: 0, removed: 0, sha256: null, rrd: summaryJson, size,
        summary: `rrd created, ${rrd.ds.length} DS, step ${rrd.step} s`, details: d.text, shared: d.shared };
    }
    const prev = previous.summary !== undefined ? previous.summary : parseSummary(previous.rrd);
    const d = describeUpdatedRrd(prev, rrd, previous.size, size);
    const routine = judgeRrdUpdate(prev, now, { stale: false, damaged: size !== rrd.expectedSize }) === "routine";
    return { path: relPath, kind: "modified", fileKind: "rrd", added: 0, removed: 0, sha256: null, rrd: summaryJson, size, summary: d.summary, details: d.text, routine, last: rrd.lastUpdate, lastDs: now.lastDs };
  }

  // Small files (nearly all of an RRD tree) are read once: sniffed, hashed and diffed from the same buffer.
  const content = opts.content ?? ((opts.size ?? statSync(fsPath(srcPath)).size) <= limits.maxDiffBytes ? readFileSync(fsPath(srcPath)) : null);
  const size = content ? content.length : statSync(fsPath(srcPath)).size;
  const sha256 = content ? new Bun.CryptoHasher("sha256").update(content).digest("hex") : await sha256File(srcPath);
  const base = { path: relPath, sha256, size };
  const text = content ? content.subarray(0, SNIFF_BYTES).indexOf(0) < 0 : isTextFile(srcPath);

  if (!text) {
    // An RRD written on another architecture is recognised by its cookie but not misread: hashed like any binary.
    const note = probe.kind === "foreign" ? "RRD file in a foreign layout (32-bit or big-endian): header not parsed.\n" : "";
    const what = probe.kind === "foreign" ? "foreign-layout rrd" : "binary";
    if (previous === null) {
      return { ...base, kind: "created", fileKind: "binary", added: 0, removed: 0, summary: `${what}, ${size} bytes`,
        details: `${note}Binary file created.\nSize: ${size} bytes\nSHA256: ${sha256}` };
    }
    if (previous.sha256 === sha256) return null;
    return { ...base, kind: "modified", fileKind: "binary", added: 0, removed: 0, summary: `${what}, ${previous.size} → ${size} bytes`,
      details: `${note}Binary file modified.\nSize: ${previous.size} → ${size} bytes\nSHA256: ${previous.sha256 ?? "unknown"} → ${sha256}` };
  }

  const copy = opts.copy();
  if (copy === null) {
    if (previous === null) {
      const lines = content ? countLines(content.toString("utf8")) : await countLinesStreaming(srcPath, 0);
      return { ...base, content: content ?? undefined, kind: "created", fileKind: "text", added: lines, removed: 0, summary: `created, ${lines} lines`,
        details: `New file created with ${lines} lines.` };
    }
    if (previous.sha256 === sha256) return null;
    return { ...base, content: content ?? undefined, kind: "modified", fileKind: "text", added: 0, removed: 0, summary: "modified (no previous copy)",
      details: `Text file modified (no previous copy to diff against).\nSize: ${previous.size} → ${size} bytes\nSHA256: ${previous.sha256 ?? "unknown"} → ${sha256}` };
  }

  const bsize = copy.size;
  const small = bsize <= limits.maxDiffBytes;
  // the copy in memory (read once) when it is small enough to diff; a huge one stays a file, read as a stream
  const old = small ? copy.bytes() : null;
  const copySha = async () => (old ? new Bun.CryptoHasher("sha256").update(old).digest("hex") : await sha256File(copy.path as string));
  const oldSha = previous?.sha256 ?? null;
  if (oldSha === sha256 || (bsize === size && (await copySha()) === sha256)) return null;
  const withContent = { ...base, content: content ?? undefined };

  // Properties files: the keys that changed, then the diff (small files: both versions are read whole).
  if (relPath.endsWith(".properties") && content !== null && old !== null) {
    const before = old.toString("utf8");
    const after = content.toString("utf8");
    const keys = propertiesChanges(before, after);
    const d = formatUnifiedDiff(before, after, { maxLines: limits.maxDiffLines });
    const keyNote = keys.length === 0 ? "no key changed" : `${keys.length} key${keys.length === 1 ? "" : "s"} changed`;
    return { ...withContent, kind: "modified", fileKind: "text", added: d.added, removed: d.removed, summary: `+${d.added} −${d.removed} lines, ${keyNote}`,
      details: keys.length > 0 ? `${keys.join("\n")}\n${d.text}` : d.text };
  }

  if (size > bsize && (old ? isPrefixOf(old, content, srcPath) : await isAppendOnly(copy.path as string, srcPath, bsize))) {
    const { lines, total } = await readAppended(srcPath, bsize, limits.maxDiffLines);
    const oldLines = old ? countNewlines(old) : await countLinesStreaming(copy.path as string, 0);
    const d = formatAppendDiff(oldLines, lines, total, limits.maxDiffLines);
    return { ...withContent, kind: "modified", fileKind: "text", added: d.added, removed: 0, summary: `+${d.added} lines (appended)`, details: d.text };
  }
  if (size <= limits.maxDiffBytes && old !== null) {
    const d = formatUnifiedDiff(old.toString("utf8"), content ? content.toString("utf8") : await bunFile(srcPath).text(), { maxLines: limits.maxDiffLines });
    return { ...withContent, kind: "modified", fileKind: "text", added: d.added, removed: d.removed, summary: `+${d.added} −${d.removed} lines`, details: d.text };
  }
  return { ...withContent, kind: "modified", fileKind: "text", added: 0, removed: 0, summary: "modified (too large to diff)",
    details: `Text file modified (too large to diff: ${bsize} → ${size} bytes).\nSHA256: ${oldSha ?? (await copySha())} → ${sha256}` };
}

/** A copy held in memory is a prefix of the new file ending at a line break (the file only grew, like a log). */
function isPrefixOf(old: Buffer, content: Buffer | null, srcPath: string): boolean {
  if (old.length === 0) return true;
  if (old[old.length - 1] !== 0x0a) return false; // a continued last line is a modification
  let head = content?.subarray(0, old.length) ?? null;
  if (head === null) {
    const fd = openSync(fsPath(srcPath), NOFOLLOW_READ);
    try {
      const b = Buffer.alloc(old.length);
      head = b.subarray(0, readSync(fd, b, 0, old.length, 0));
    } finally {
      closeSync(fd);
    }
  }
  return head.length === old.length && head.equals(old);
}

/** Lines in a buffer, as countLinesStreaming counts them in a file (a last line without a break counts). */
function countNewlines(b: Buffer): number {
  let n = 0;
  for (let i = b.indexOf(0x0a); i >= 0; i = b.indexOf(0x0a, i + 1)) n++;
  return b.length > 0 && b[b.length - 1] !== 0x0a ? n + 1 : n;
}

/** The old content is an unchanged prefix of the new, ending at a line break: compared chunk by chunk. */
async function isAppendOnly(oldPath: string, newPath: string, oldSize: number): Promise<boolean> {
  if (oldSize === 0) return true;
  const a = openSync(fsPath(oldPath), NOFOLLOW_READ);
  const b = openSync(fsPath(newPath), NOFOLLOW_READ);
  try {
    const ba = Buffer.alloc(CHUNK);
    const bb = Buffer.alloc(CHUNK);
    for (let off = 0; off < oldSize; off += CHUNK) {
      const want = Math.min(CHUNK, oldSize - off);
      const na = readSync(a, ba, 0, want, off);
      const nb = readSync(b, bb, 0, want, off);
      if (na !== want || nb !== want || !ba.subarray(0, want).equals(bb.subarray(0, want))) return false;
      if (off + want === oldSize && ba[want - 1] !== 0x0a) return false; // a continued last line is a modification
    }
    return true;
  } finally {
    closeSync(a);
    closeSync(b);
  }
}

/** Reads from `offset` to the end as a stream: counts every line, keeps at most `keep` of them. */
async function readAppended(path: string, offset: number, keep: number): Promise<{ lines: string[]; total: number }> {
  const lines: string[] = [];
  let total = 0;
  let rest = "";
  const dec = new TextDecoder();
  for await (const chunk of bunFile(path).slice(offset).stream()) {
    rest += dec.decode(chunk, { stream: true });
    let start = 0;
    for (let i = rest.indexOf("\n"); i >= 0; i = rest.indexOf("\n", start)) {
      total++;
      if (lines.length < keep) lines.push(rest.slice(start, i));
      start = i + 1;
    }
    rest = rest.slice(start);
  }
  rest += dec.decode();
  if (rest !== "") {
    total++;
    if (lines.length < keep) lines.push(rest);
  }
  return { lines, total };
}

async function countLinesStreaming(path: string, offset: number): Promise<number> {
  let n = 0;
  let last = 0x0a;
  let any = false;
  for await (const chunk of bunFile(path).slice(offset).stream()) {
    for (let i = 0; i < chunk.length; i++) if (chunk[i] === 0x0a) n++;
    if (chunk.length > 0) {
      last = chunk[chunk.length - 1] as number;
      any = true;
    }
  }
  return any && last !== 0x0a ? n + 1 : n;
}
