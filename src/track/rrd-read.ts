// Reads an RRD's or JRobin file's header from disk: a few KiB at the start (and, for JRobin, a few bytes per
// archive further in), never the data.
import { readSync } from "node:fs";
import { closeFd, openRead, readAt } from "../libc.ts";
import { isJrobin, probeJrobin } from "./jrobin.ts";
import { probeRrd, RRD_HEAD_PROBE, type RrdProbe } from "./rrd.ts";

/** Headers bigger than this are not RRD headers we should trust (a forged count would make us read gigabytes). */
const MAX_HEADER = 16 * 1024 * 1024;

/** One buffer for every first read: the parsers copy what they keep, so it is reused (no 20,000 allocations). */
const probeBuf = Buffer.allocUnsafe(RRD_HEAD_PROBE);

export const RRD_NAME = /\.(rrd|jrb)$/i;

/** The header of an RRD (rrdtool or JRobin layout), or what stands in its way. Throws only on I/O errors. */
export function readRrdProbe(path: string): RrdProbe {
  return readHead(openRead(path), null).probe;
}

/**
 * A file's first bytes, read once for everything a change description needs of them: the RRD header probe, and
 * the whole content when the file is that small (a strings.properties). Closes fd. `size`: the size the caller
 * just saw (the content counts only when all of it was read).
 */
export function readHead(fd: number, size: number | null): { probe: RrdProbe; content: Buffer | null } {
  try {
    const n = readAt(fd, probeBuf, probeBuf.length, 0);
    const head = probeBuf.subarray(0, n);
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
    return { probe: p, content: p.kind === "not-rrd" && size !== null && n === size && n < probeBuf.length ? Buffer.from(head) : null };
  } finally {
    closeFd(fd);
  }
}
