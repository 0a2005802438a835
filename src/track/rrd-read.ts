// Reads an RRD's or JRobin file's header from disk: a few KiB at the start (and, for JRobin, a few bytes per
// archive further in), never the data.
import { closeSync, openSync, readSync } from "node:fs";
import { isJrobin, probeJrobin } from "./jrobin.ts";
import { probeRrd, RRD_HEAD_PROBE, type RrdProbe } from "./rrd.ts";

/** Headers bigger than this are not RRD headers we should trust (a forged count would make us read gigabytes). */
const MAX_HEADER = 16 * 1024 * 1024;

/** One buffer for every first read: the parsers copy what they keep, so it is reused (no 20,000 allocations). */
const probeBuf = Buffer.allocUnsafe(RRD_HEAD_PROBE);

export const RRD_NAME = /\.(rrd|jrb)$/i;

/** The header of an RRD (rrdtool or JRobin layout), or what stands in its way. Throws only on I/O errors. */
export function readRrdProbe(path: string): RrdProbe {
  const fd = openSync(path, "r");
  try {
    const head = probeBuf.subarray(0, readSync(fd, probeBuf, 0, probeBuf.length, 0));
    const parse = (b: Buffer) =>
      isJrobin(b)
        ? probeJrobin(b, (off, len) => {
            const out = Buffer.allocUnsafe(len);
            return out.subarray(0, readSync(fd, out, 0, len, off));
          })
        : probeRrd(b);
    let p = parse(head);
    if (p.kind === "need" && p.bytes > head.length && p.bytes <= MAX_HEADER) {
      const more = Buffer.allocUnsafe(p.bytes);
      p = parse(more.subarray(0, readSync(fd, more, 0, more.length, 0)));
    }
    return p;
  } finally {
    closeSync(fd);
  }
}
