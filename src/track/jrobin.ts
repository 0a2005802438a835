// JRobin (.jrb) files, the Java RRD format OpenNMS writes by default: read from the header and the archive
// definitions only. Big-endian; a string is 20 UTF-16 code units padded with spaces.
// Layout (JRobin 1.5, checked on files the JRobin library made: test/fixtures/rrd/README.md):
//   header   64 B  signature (40) · step (i64) · ds count (i32) · archive count (i32) · last update (i64, seconds)
//   DS × n  128 B  name (40) · type (40) · heartbeat (i64) · min · max · last value · accum (doubles) · nan seconds (i64)
//   archive × m    cf (40) · xff (double) · steps (i32) · rows (i32), then per DS a 16 B state and a robin:
//                  pointer (i32) + rows × 8 B values; so archive definitions are spread through the file.
import type { RrdHeader, RrdProbe } from "./rrd.ts";

const HEADER = 64;
const DS = 128;
const STR = 40;
const ARC_DEF = STR + 8 + 4 + 4;

const jstr = (b: Buffer, off: number): string => {
  let s = "";
  for (let i = 0; i < STR; i += 2) s += String.fromCharCode(b.readUInt16BE(off + i));
  return s.trim();
};

const num = (v: number) => (Number.isNaN(v) ? "U" : String(v));

/** Starts with the UTF-16BE signature "JR" (JRobin checks only these two characters too). */
export function isJrobin(b: Buffer): boolean {
  return b.length >= 4 && b[0] === 0 && b[1] === 0x4a && b[2] === 0 && b[3] === 0x52;
}

/**
 * Parses a JRobin header. `head` is the start of the file; `readAt` reads the few bytes of each archive
 * definition further in (null when the file ends first).
 */
export function probeJrobin(head: Buffer, readAt: (offset: number, length: number) => Buffer | null): RrdProbe {
  if (!isJrobin(head)) return { kind: "not-rrd" };
  if (head.length < HEADER) return { kind: "need", bytes: HEADER };
  const step = Number(head.readBigInt64BE(STR));
  const n = head.readInt32BE(STR + 8);
  const m = head.readInt32BE(STR + 12);
  if (n < 1 || n > 100_000 || m < 1 || m > 100_000 || step < 1) return { kind: "foreign" };
  const dsEnd = HEADER + DS * n;
  if (head.length < dsEnd) return { kind: "need", bytes: dsEnd };
  const ds = Array.from({ length: n }, (_, i) => {
    const o = HEADER + DS * i;
    return { name: jstr(head, o), type: jstr(head, o + STR), heartbeat: Number(head.readBigInt64BE(o + 2 * STR)), min: head.readDoubleBE(o + 2 * STR + 8), max: head.readDoubleBE(o + 2 * STR + 16), last: head.readDoubleBE(o + 2 * STR + 24) };
  });
  const rra: RrdHeader["rra"] = [];
  let off = dsEnd;
  for (let j = 0; j < m; j++) {
    const def = readAt(off, ARC_DEF);
    // The file ends inside the archives: truncated (or still being written).
    if (def === null || def.length < ARC_DEF) return { kind: "need", bytes: off + ARC_DEF };
    const rows = def.readInt32BE(STR + 12);
    rra.push({ cf: jstr(def, 0), xff: def.readDoubleBE(STR), pdpPerRow: def.readInt32BE(STR + 8), rows });
    off += ARC_DEF + n * (16 + 4 + 8 * rows);
  }
  return {
    kind: "rrd",
    header: { format: "jrobin", version: jstr(head, 0), step, ds: ds.map(({ last: _, ...d }) => d), rra, lastUpdate: Number(head.readBigInt64BE(STR + 16)), lastDs: ds.map((d) => num(d.last)), curRow: [], headerSize: dsEnd, expectedSize: off },
  };
}
