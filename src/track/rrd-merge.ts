// Two copies of one RRD merged into one, over their bytes: for every archive and row slot, a known value beats an
// unknown one (or a slot outside the other side's range); where both are known, one side wins (the newer, unless
// told); the live state (last update, PDP/CDP preparation areas, row pointers) comes from the newer side, so
// `rrdtool update` goes on as it would have there. Pure: buffers in, a buffer out (issue 26).
//
// Slots are matched by the time each row stands for, never by index: rrdtool starts each archive's ring at a random
// row (rrd_create.c), so two files made apart are rotated differently, and two copies of one file drift apart as
// each side advances its own pointer. The row at cur_row ends at last_up − last_up mod (pdp_per_row × step), the row
// d places before it d × pdp_per_row × step earlier (rrd_fetch.c and end_time_for_row() in rrd_create.c).
import { type RrdHeader, probeRrd, rrdLayout } from "./rrd.ts";
import { isJrobin } from "./jrobin.ts";

export type Side = "a" | "b";

export interface MergeOptions {
  /** the side whose value is kept where both hold one; by default the side with the later last update */
  prefer?: Side;
  /**
   * Whose ring position the output keeps. "live" (the default): the newer side's row pointers, so the output's
   * bytes are laid out as that side's. "a": a's ring position, the newer side's state rotated onto it, so every
   * slot of `a` keeps standing for the same time whatever the header says (mergeInto writes in place over a).
   */
  layout?: "live" | "a";
  /** how the two inputs are named in a refusal (file names) */
  names?: [string, string];
  /** where to build the output (8-byte aligned, at least the file's size): a loop reuses one, no garbage per pair */
  into?: Buffer;
}

export interface ArchiveMerge {
  cf: string;
  rows: number;
  pdpPerRow: number;
  /** rows where some value came from a alone (b unknown there, or the slot outside b's range) */
  onlyA: number;
  onlyB: number;
  /** rows where some data source was known on both sides (the winner's value kept) */
  both: number;
  /** of those, rows where some value differed */
  differ: number;
  /** rows unknown on both sides */
  neither: number;
}

export interface MergeStats {
  /** the side whose live state (last update, preparation areas) the output has */
  liveFrom: Side;
  /** the side whose value is kept where both are known */
  winner: Side;
  lastUpdate: { a: number; b: number };
  archives: ArchiveMerge[];
  /** tunable settings (heartbeat, min, max, xff) that differed: the live side's are kept */
  notes: string[];
}

export type MergeOutcome = { kind: "merged"; out: Buffer; header: RrdHeader; stats: MergeStats } | { kind: "refused"; reason: string };

/** The consolidation functions whose rows are plain time series (Holt-Winters archives are models, not samples). */
const SERIES_CF = new Set(["AVERAGE", "MIN", "MAX", "LAST"]);

/** What stands in the way of merging this file, or its header. */
export function mergeableHeader(b: Buffer, name: string): { header: RrdHeader } | { reason: string } {
  if (isJrobin(b)) {
    return {
      reason: `${name} is a JRobin file: rrdsync merges only rrdtool's format (a merged .jrb could not be checked against JRobin's own reader, so none is written); keep the newer .jrb whole instead`,
    };
  }
  const p = probeRrd(b);
  if (p.kind === "not-rrd") return { reason: `${name} is not an RRD file (${b.length === 0 ? "empty" : "no RRD cookie at its start"})` };
  if (p.kind === "foreign") {
    return { reason: `${name} is an RRD written on another architecture (32-bit or big-endian) or in an unknown format version: rrdsync merges only the x86-64/arm64 layout OpenNMS writes on Linux` };
  }
  if (p.kind === "need") return { reason: `${name} is truncated: its header alone needs ${p.bytes} bytes, the file has ${b.length}` };
  const h = p.header;
  if (b.length !== h.expectedSize) return { reason: `${name} is damaged: its header needs ${h.expectedSize} bytes, the file has ${b.length} (truncated or still being written?)` };
  if (h.step < 1) return { reason: `${name} is damaged: its step is ${h.step}` };
  const empty = h.rra.findIndex((r) => r.rows < 1 || r.pdpPerRow < 1);
  if (empty >= 0) return { reason: `${name} is damaged: archive ${empty} has ${h.rra[empty]?.rows} rows of ${h.rra[empty]?.pdpPerRow} steps` };
  const bad = h.curRow.findIndex((r, j) => r >= (h.rra[j]?.rows ?? 0));
  if (bad >= 0) return { reason: `${name} is damaged: archive ${bad}'s current row ${h.curRow[bad]} lies outside its ${h.rra[bad]?.rows} rows` };
  const hw = h.rra.findIndex((r) => !SERIES_CF.has(r.cf));
  if (hw >= 0) return { reason: `${name} has a ${h.rra[hw]?.cf} archive (rra[${hw}]): Holt-Winters archives hold a model, not samples, and cannot be merged slot by slot` };
  return { header: h };
}

const num = (v: number) => (Number.isNaN(v) ? "U" : String(v));

/** Differences that make two headers different RRDs (a reason), and tunable settings that merely differ (notes). */
export function compareStructure(a: RrdHeader, b: RrdHeader, names: [string, string]): { reason: string | null; notes: string[] } {
  const diff: string[] = [];
  const notes: string[] = [];
  const [na, nb] = names;
  if ((a.version >= "0003") !== (b.version >= "0003")) diff.push(`format ${a.version} vs ${b.version} (a different header layout)`);
  if (a.step !== b.step) diff.push(`step ${a.step} s vs ${b.step} s`);
  if (a.ds.length !== b.ds.length) diff.push(`${a.ds.length} vs ${b.ds.length} data sources (${a.ds.map((d) => d.name).join(",")} vs ${b.ds.map((d) => d.name).join(",")})`);
  else {
    a.ds.forEach((d, i) => {
      const e = b.ds[i] as (typeof b.ds)[number];
      if (d.name !== e.name) diff.push(`data source ${i} is ${d.name} vs ${e.name}`);
      else if (d.type !== e.type) diff.push(`data source ${d.name} is ${d.type} vs ${e.type}`);
      else {
        if (d.heartbeat !== e.heartbeat) notes.push(`DS ${d.name} heartbeat ${d.heartbeat} vs ${e.heartbeat}`);
        if (!Object.is(d.min, e.min) && !(Number.isNaN(d.min) && Number.isNaN(e.min))) notes.push(`DS ${d.name} min ${num(d.min)} vs ${num(e.min)}`);
        if (!Object.is(d.max, e.max) && !(Number.isNaN(d.max) && Number.isNaN(e.max))) notes.push(`DS ${d.name} max ${num(d.max)} vs ${num(e.max)}`);
      }
    });
  }
  const fmt = (r: RrdHeader["rra"][number]) => `${r.cf}:${r.pdpPerRow}:${r.rows}`;
  if (a.rra.length !== b.rra.length) diff.push(`archives ${a.rra.map(fmt).join(" ")} vs ${b.rra.map(fmt).join(" ")}`);
  else {
    a.rra.forEach((r, j) => {
      const s = b.rra[j] as (typeof b.rra)[number];
      if (r.cf !== s.cf || r.pdpPerRow !== s.pdpPerRow || r.rows !== s.rows) diff.push(`archive ${j} is ${fmt(r)} vs ${fmt(s)} (CF:steps:rows)`);
      else if (r.xff !== s.xff) notes.push(`archive ${j} (${fmt(r)}) xff ${r.xff} vs ${s.xff}`);
    });
  }
  return { reason: diff.length === 0 ? null : `${na} and ${nb} are not copies of one RRD: ${diff.join("; ")}`, notes };
}

/** A view of the data as doubles and as 32-bit halves (a value is moved as its exact bits: NaN payloads too). */
function views(buf: Buffer): { f: Float64Array; u: Uint32Array } {
  if (buf.byteOffset % 8 !== 0) throw new Error("rrd-merge: buffer not 8-byte aligned");
  return { f: new Float64Array(buf.buffer, buf.byteOffset, buf.length >> 3), u: new Uint32Array(buf.buffer, buf.byteOffset, buf.length >> 2) };
}

/** A copy of b whose bytes start 8-byte aligned (Float64Array needs it; Buffer's small-file pool does not give it). */
export function aligned(b: Buffer): Buffer {
  if (b.byteOffset % 8 === 0) return b;
  const c = Buffer.allocUnsafeSlow(b.length);
  b.copy(c);
  return c;
}

const mod = (x: number, n: number) => ((x % n) + n) % n;

/** One double moved as its two 32-bit halves: the exact bits (a NaN's payload too). */
function copyValue(to: Uint32Array, at: number, from: Uint32Array, fromAt: number): void {
  to[at] = from[fromAt] as number;
  to[at + 1] = from[fromAt + 1] as number;
}

/** The end time of the newest row of an archive whose rows are `period` seconds (last_up rounded down to it). */
const lastRowEnd = (lastUp: number, period: number) => {
  const t = Math.floor(lastUp);
  return t - mod(t, period);
};

/**
 * Merges two RRDs of one structure. Both buffers are whole files; neither is changed. A tie in last update counts
 * a as the newer side.
 */
export function mergeRrd(aBuf: Buffer, bBuf: Buffer, opts: MergeOptions = {}): MergeOutcome {
  const names = opts.names ?? ["a", "b"];
  const pa = mergeableHeader(aBuf, names[0]);
  if ("reason" in pa) return { kind: "refused", reason: pa.reason };
  const pb = mergeableHeader(bBuf, names[1]);
  if ("reason" in pb) return { kind: "refused", reason: pb.reason };
  const ha = pa.header;
  const hb = pb.header;
  const cmp = compareStructure(ha, hb, names);
  if (cmp.reason !== null) return { kind: "refused", reason: cmp.reason };

  const liveFrom: Side = ha.lastUpdate >= hb.lastUpdate ? "a" : "b";
  const winner: Side = opts.prefer ?? liveFrom;
  const hl = liveFrom === "a" ? ha : hb;
  const a = aligned(aBuf);
  const b = aligned(bBuf);
  const lb = liveFrom === "a" ? a : b;
  const n = hl.ds.length;
  const m = hl.rra.length;
  const lay = rrdLayout(hl.version, n, m);
  // The output starts as a copy of the side whose ring position it keeps (the base: the live side, or a); then each
  // slot is taken from the other side where the rule says so. Then the live side's header as it is: definitions,
  // live head, PDP and CDP preparation areas, row pointers (turned, below, when the base is not the live side).
  const baseIsA = opts.layout === "a" || liveFrom === "a";
  const [x, y, hx, hy] = baseIsA ? [a, b, ha, hb] : [b, a, hb, ha];
  const into = opts.into;
  const usable = into !== undefined && into.length >= x.length && into.byteOffset % 8 === 0 && into.buffer !== a.buffer && into.buffer !== b.buffer;
  const out = usable ? into.subarray(0, x.length) : Buffer.allocUnsafeSlow(x.length);
  x.copy(out);
  if (lb !== x) lb.copy(out, 0, 0, lay.dataAt);
  const winX = winner === (baseIsA ? "a" : "b");
  const yIsLive = lb === y;

  const { f: fy, u: uy } = views(y);
  const { f: fo, u: uo } = views(out);
  const archives: ArchiveMerge[] = [];
  let base = lay.dataAt >> 3; // index of the archive's first value, in doubles
  const outCur: number[] = [];
  for (let j = 0; j < m; j++) {
    const r = hl.rra[j] as RrdHeader["rra"][number];
    const rows = r.rows;
    const period = r.pdpPerRow * hl.step;
    const endX = lastRowEnd(hx.lastUpdate, period);
    const endY = lastRowEnd(hy.lastUpdate, period);
    const end = Math.max(endX, endY);
    // The newest rows (ages below these) lie after that side's last update.
    const behindX = (end - endX) / period;
    const behindY = (end - endY) / period;
    // The output's newest row: the base's ring turned on by as many rows as the other side is ahead (none when the
    // base is the live side). A slot of the base keeps standing for the same time: its row is the output's row.
    const curO = mod((hx.curRow[j] as number) + behindX, rows);
    outCur.push(curO);
    let rowO = curO;
    let rowY = mod((hy.curRow[j] as number) + behindY, rows);
    let onlyX = 0;
    let onlyY = 0;
    let both = 0;
    let differ = 0;
    let neither = 0;
    for (let age = 0; age < rows; age++) {
      const hasX = age >= behindX && age - behindX < rows;
      const hasY = age >= behindY && age - behindY < rows;
      const o = base + rowO * n;
      const q = base + rowY * n;
      let fromX = false;
      let fromY = false;
      let inBoth = false;
      let differs = false;
      for (let i = 0; i < n; i++) {
        const vx = hasX ? (fo[o + i] as number) : Number.NaN;
        const vyv = hasY ? (fy[q + i] as number) : Number.NaN;
        const kx = vx === vx;
        const ky = vyv === vyv;
        const to = (o + i) * 2;
        if (kx && ky) {
          inBoth = true;
          if (vx !== vyv) differs = true;
          if (!winX) copyValue(uo, to, uy, (q + i) * 2);
        } else if (kx) {
          fromX = true;
        } else if (ky) {
          fromY = true;
          copyValue(uo, to, uy, (q + i) * 2);
        } else if (hasY && (yIsLive || !hasX)) {
          copyValue(uo, to, uy, (q + i) * 2); // unknown on both: as the live side writes its unknowns
        } else if (!hasX) {
          // A slot the base has from before its window (old data): unknown now, as rrdtool writes it (DNAN, which
          // is the negative quiet NaN on x86-64: 0xfff8000000000000, as `rrdtool create` fills a new file).
          uo[to] = 0;
          uo[to + 1] = 0xfff80000;
        }
      }
      if (fromX) onlyX++;
      if (fromY) onlyY++;
      if (inBoth) both++;
      if (differs) differ++;
      if (!fromX && !fromY && !inBoth) neither++;
      rowO = rowO === 0 ? rows - 1 : rowO - 1;
      rowY = rowY === 0 ? rows - 1 : rowY - 1;
    }
    const [onlyA, onlyB] = baseIsA ? [onlyX, onlyY] : [onlyY, onlyX];
    archives.push({ cf: r.cf, rows, pdpPerRow: r.pdpPerRow, onlyA, onlyB, both, differ, neither });
    base += rows * n;
  }
  if (opts.layout === "a") outCur.forEach((c, j) => out.writeBigUInt64LE(BigInt(c), lay.ptrAt + 8 * j));
  const header: RrdHeader = { ...hl, curRow: outCur };
  return { kind: "merged", out, header, stats: { liveFrom, winner, lastUpdate: { a: ha.lastUpdate, b: hb.lastUpdate }, archives, notes: cmp.notes } };
}
