// RRDtool file headers (x86_64 layout, format versions 0001–0005), read from the first bytes of a file only:
// what an update changed (last update, last values) or how a file's structure changed, without reading the data.
// Layout: ../shared/reference/rrd-format.md (checked against `rrdtool info`).

const FLOAT_COOKIE = 8.642135e130;
const STAT = 128;
const DS_DEF = 120;
const RRA_DEF = 120;
const PDP_PREP = 112;
const CDP_PREP = 80;
const RRA_PTR = 8;
/** Enough for the header of a file with ~10 data sources and 5 archives; larger headers are read in a second step. */
export const RRD_HEAD_PROBE = 4096;

export interface RrdHeader {
  /** rrdtool's C layout, or JRobin's Java one (src/track/jrobin.ts) */
  format: "rrdtool" | "jrobin";
  /** "0003", or JRobin's signature */
  version: string;
  step: number;
  ds: Array<{ name: string; type: string; heartbeat: number; min: number; max: number }>;
  rra: Array<{ cf: string; rows: number; pdpPerRow: number; xff: number }>;
  /** seconds since the epoch, with microseconds for format ≥ 0003 */
  lastUpdate: number;
  /** the last raw value per data source, as rrdtool keeps it (text) */
  lastDs: string[];
  /** each archive's current row (rrdtool's rra_ptr; JRobin keeps one per DS and archive, not read) */
  curRow: number[];
  headerSize: number;
  /** what the file's size must be for this header */
  expectedSize: number;
}

export type RrdProbe =
  | { kind: "rrd"; header: RrdHeader }
  /** an RRD written on another architecture (32-bit, big-endian): recognised, not misread */
  | { kind: "foreign" }
  /** starts like an RRD, but the header needs more bytes than given */
  | { kind: "need"; bytes: number }
  | { kind: "not-rrd" };

const cstr = (b: Buffer, off: number, len: number): string => {
  const s = b.subarray(off, off + len);
  const z = s.indexOf(0);
  return s.subarray(0, z < 0 ? len : z).toString("latin1");
};

/** Where each part of an x86_64 RRD with n data sources and m archives begins (rrd-format.md's table). */
export function rrdLayout(version: string, n: number, m: number): { liveAt: number; pdpAt: number; cdpAt: number; ptrAt: number; dataAt: number } {
  const liveAt = STAT + DS_DEF * n + RRA_DEF * m;
  const pdpAt = liveAt + (version >= "0003" ? 16 : 8);
  const cdpAt = pdpAt + PDP_PREP * n;
  const ptrAt = cdpAt + CDP_PREP * n * m;
  return { liveAt, pdpAt, cdpAt, ptrAt, dataAt: ptrAt + RRA_PTR * m };
}

/** Reads an RRD header from the start of a file. */
export function probeRrd(b: Buffer): RrdProbe {
  if (b.length < 48 || b.toString("latin1", 0, 4) !== "RRD\0") return { kind: "not-rrd" };
  if (Math.abs(b.readDoubleLE(16) - FLOAT_COOKIE) > 1e124) return { kind: "foreign" };
  const version = cstr(b, 4, 5);
  if (!/^000[1-5]$/.test(version)) return { kind: "foreign" };
  const n = Number(b.readBigUInt64LE(24));
  const m = Number(b.readBigUInt64LE(32));
  if (n < 1 || n > 100_000 || m < 1 || m > 100_000) return { kind: "foreign" };
  const { liveAt, pdpAt, ptrAt, dataAt: headerSize } = rrdLayout(version, n, m);
  if (b.length < headerSize) return { kind: "need", bytes: headerSize };
  const ds = Array.from({ length: n }, (_, i) => {
    const o = STAT + DS_DEF * i;
    return { name: cstr(b, o, 20), type: cstr(b, o + 20, 20), heartbeat: Number(b.readBigUInt64LE(o + 40)), min: b.readDoubleLE(o + 48), max: b.readDoubleLE(o + 56) };
  });
  let rows = 0;
  const rra = Array.from({ length: m }, (_, j) => {
    const o = STAT + DS_DEF * n + RRA_DEF * j;
    const r = { cf: cstr(b, o, 20), rows: Number(b.readBigUInt64LE(o + 24)), pdpPerRow: Number(b.readBigUInt64LE(o + 32)), xff: b.readDoubleLE(o + 40) };
    rows += r.rows;
    return r;
  });
  const lastUpdate = Number(b.readBigUInt64LE(liveAt)) + (pdpAt - liveAt === 16 ? Number(b.readBigUInt64LE(liveAt + 8)) / 1e6 : 0);
  const lastDs = ds.map((_, i) => cstr(b, pdpAt + PDP_PREP * i, 30));
  const curRow = rra.map((_, j) => Number(b.readBigUInt64LE(ptrAt + RRA_PTR * j)));
  return {
    kind: "rrd",
    header: { format: "rrdtool", version, step: Number(b.readBigUInt64LE(40)), ds, rra, lastUpdate, lastDs, curRow, headerSize, expectedSize: headerSize + 8 * n * rows },
  };
}

/** What the state DB keeps of a header: enough to describe the next update and any structure change. */
export interface RrdSummary {
  step: number;
  ds: Array<[name: string, type: string, heartbeat: number]>;
  rra: Array<[cf: string, rows: number, pdpPerRow: number]>;
  last: number;
  lastDs: string[];
}

/** A summary as the state DB returns it (JSON), parsed; null when there is none or it is not one. */
export function parseSummary(json: string | null | undefined): RrdSummary | null {
  if (!json) return null;
  try {
    return JSON.parse(json) as RrdSummary;
  } catch {
    return null;
  }
}

export function summarize(h: RrdHeader): RrdSummary {
  return { step: h.step, ds: h.ds.map((d) => [d.name, d.type, d.heartbeat]), rra: h.rra.map((r) => [r.cf, r.rows, r.pdpPerRow]), last: h.lastUpdate, lastDs: h.lastDs };
}

const iso = (t: number) => new Date(Math.floor(t) * 1000).toISOString().replace(".000Z", "Z");
const num = (v: number) => (Number.isNaN(v) ? "U" : String(v));

const label = (h: RrdHeader) => (h.format === "jrobin" ? "JRobin file" : "RRD file");
const sizeWarning = (h: RrdHeader, size: number) => `WARNING: the header needs ${h.expectedSize} bytes, the file has ${size} (truncated or still being written?)`;

/**
 * A new RRD's definition, then its last update and size. `shared`: how many leading characters (the definition)
 * depend only on the file's layout, so every file of one layout has them alike (the state DB keeps them once).
 */
export function describeCreatedRrd(h: RrdHeader, size: number): { text: string; shared: number } {
  const head = [
    `${label(h)} created (${h.format === "jrobin" ? h.version : `format ${h.version}`}): step ${h.step} s, ${h.ds.length} data source${h.ds.length === 1 ? "" : "s"}, ${h.rra.length} archives`,
    ...h.ds.map((d) => `DS ${d.name} ${d.type} heartbeat ${d.heartbeat} min ${num(d.min)} max ${num(d.max)}`),
    ...h.rra.map((r) => `RRA ${r.cf} ${r.rows} rows × ${r.pdpPerRow} step${r.pdpPerRow === 1 ? "" : "s"} xff ${r.xff}`),
  ].join("\n");
  const tail = [`Last update: ${iso(h.lastUpdate)}`, `Size: ${size} bytes`];
  if (size !== h.expectedSize) tail.push(sizeWarning(h, size));
  return { text: `${head}\n${tail.join("\n")}`, shared: head.length + 1 };
}

/** Structure differences between two summaries, one line each (DS added/removed/retyped, step, archives). */
export function structureChanges(a: RrdSummary, b: RrdSummary): string[] {
  const out: string[] = [];
  if (a.step !== b.step) out.push(`step ${a.step} → ${b.step} s`);
  const ad = new Map(a.ds.map((d) => [d[0], d]));
  const bd = new Map(b.ds.map((d) => [d[0], d]));
  for (const [name, d] of bd) {
    const old = ad.get(name);
    if (!old) out.push(`DS ${name} added (${d[1]})`);
    else if (old[1] !== d[1]) out.push(`DS ${name} retyped ${old[1]} → ${d[1]}`);
    else if (old[2] !== d[2]) out.push(`DS ${name} heartbeat ${old[2]} → ${d[2]}`);
  }
  for (const name of ad.keys()) if (!bd.has(name)) out.push(`DS ${name} removed`);
  const fmt = (r: [string, number, number]) => `${r[0]} ${r[1]}×${r[2]}`;
  const ar = a.rra.map(fmt).join(", ");
  const br = b.rra.map(fmt).join(", ");
  if (ar !== br) out.push(`archives ${ar} → ${br}`);
  return out;
}

/** The change-log body for an update of an RRD whose previous summary is known (or not). */
export function describeUpdatedRrd(prev: RrdSummary | null, h: RrdHeader, prevSize: number, size: number): { text: string; summary: string } {
  const now = summarize(h);
  const lines: string[] = [];
  let summary: string;
  if (prev === null) {
    lines.push(`${label(h)} updated: last update → ${iso(h.lastUpdate)} (no earlier header recorded)`);
    summary = "rrd updated";
  } else {
    const steps = h.step > 0 ? Math.round((now.last - prev.last) / h.step) : 0;
    const dir = now.last < prev.last ? " (WENT BACKWARDS)" : ` (+${steps} step${steps === 1 ? "" : "s"})`;
    lines.push(`${label(h)} updated: last update ${iso(prev.last)} → ${iso(now.last)}${now.last === prev.last ? " (unchanged)" : dir}`);
    summary = now.last < prev.last ? "rrd last update went backwards" : `rrd +${steps} step${steps === 1 ? "" : "s"}`;
    const structure = structureChanges(prev, now);
    if (structure.length > 0) {
      lines.push(`STRUCTURE CHANGED: ${structure.join("; ")}`);
      summary += ", STRUCTURE CHANGED";
    }
  }
  h.ds.forEach((d, i) => {
    const before = prev ? prev.lastDs[prev.ds.findIndex((x) => x[0] === d.name)] : undefined;
    lines.push(`${d.name}: ${before !== undefined && before !== h.lastDs[i] ? `${before} → ` : ""}${h.lastDs[i]}`);
  });
  lines.push(`Size: ${prevSize === size ? `${size} bytes` : `${prevSize} → ${size} bytes`}`);
  if (size !== h.expectedSize) lines.push(sizeWarning(h, size));
  return { text: lines.join("\n"), summary };
}

/**
 * Why a file named like an RRD must not overwrite the replica's copy yet, or null when it looks whole: a size
 * its header does not account for, a wrong cookie, or a last update older than the one already shipped.
 * A foreign layout cannot be judged and passes.
 */
export function rrdDamage(p: RrdProbe, size: number, prev: RrdSummary | null): string | null {
  switch (p.kind) {
    case "foreign":
      return null;
    case "not-rrd":
      return size === 0 ? "empty file" : "not an RRD file (wrong cookie)";
    case "need":
      return `truncated: its header alone needs ${p.bytes} bytes, the file has ${size}`;
    case "rrd":
      if (size !== p.header.expectedSize) return `size mismatch: the header needs ${p.header.expectedSize} bytes, the file has ${size}`;
      if (p.header.curRow.some((r, j) => r >= (p.header.rra[j]?.rows ?? 0))) return "an archive's current row lies outside the archive";
      if (prev !== null && p.header.lastUpdate < prev.last) return `last update went backwards (${iso(prev.last)} → ${iso(p.header.lastUpdate)})`;
      return null;
  }
}
