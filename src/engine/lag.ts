// Replica lag for RRDs: how far the replica's data is behind the source's, in seconds of data. Per tracked RRD:
// the last update in the source's header now, minus the one its header had when the replica confirmed it (kept in
// the state DB). A source file whose size, mtime and inode are still those confirmed is not behind, and costs one
// lstat; only a changed file's header is read (a few KiB), up to a bound.
import { lstatSync } from "node:fs";
import { join } from "node:path";
import { sweepChanged } from "../source/sweep.ts";
import type { StateStore } from "../store/state.ts";
import { RRD_NAME, readRrdProbe } from "../track/rrd-read.ts";
import type { RrdSummary } from "../track/rrd.ts";
import { fsPath } from "../names.ts";

/** Headers read per computation at most (~7 µs each, page-cached); beyond it a changed file's mtime stands in for its last update (rrdtool update stamps the file as it writes: close, for data collected live). */
export const MAX_HEADER_READS = 200_000;

export interface ReplicaLag {
  /** tracked RRDs (each counts, 0 when current) */
  rrds: number;
  /** RRDs whose replica copy is older than the source's */
  behind: number;
  maxSeconds: number;
  medianSeconds: number;
  /** past MAX_HEADER_READS: lags estimated from the file's mtime instead of its header */
  estimated: number;
}

/** Max and median over `rrds` values, of which `lags` are the non-zero ones (the rest are 0). Pure. */
export function lagFigures(lags: number[], rrds: number): { maxSeconds: number; medianSeconds: number } {
  if (rrds === 0 || lags.length === 0) return { maxSeconds: 0, medianSeconds: 0 };
  const sorted = [...lags].sort((a, b) => a - b);
  const zeros = rrds - sorted.length;
  const at = (i: number) => (i < zeros ? 0 : (sorted[i - zeros] as number));
  const median = rrds % 2 === 1 ? at((rrds - 1) / 2) : (at(rrds / 2 - 1) + at(rrds / 2)) / 2;
  return { maxSeconds: sorted[sorted.length - 1] as number, medianSeconds: median };
}

type Synced = { path: string; size: number; mtimeNs: string; ino: string; last: number };

/** Judges RRDs one at a time, keeping only their lags (numbers); `result` gives the figures over `rrds`. */
function lagTally(store: StateStore, sourceDir: string) {
  const lags: number[] = [];
  let reads = 0;
  let estimated = 0;
  const judge = (r: Synced) => {
    let st;
    try {
      st = lstatSync(fsPath(join(sourceDir, r.path)), { bigint: true });
    } catch {
      return; // gone from the source: no newer data to lag behind
    }
    if (Number(st.size) === r.size && st.mtimeNs.toString() === r.mtimeNs && st.ino.toString() === r.ino) return;
    let last: number | null = null;
    if (reads < MAX_HEADER_READS) {
      reads++;
      try {
        const p = readRrdProbe(join(sourceDir, r.path));
        if (p.kind === "rrd") last = p.header.lastUpdate;
      } catch {
        // unreadable now: the mtime below
      }
    }
    if (last === null) {
      estimated++;
      last = Number(st.mtimeNs / 1_000_000n) / 1000; // rrdtool update stamps the file as it writes
    }
    const lag = Math.round(last - r.last);
    if (lag > 0) lags.push(lag);
  };
  /** A tracked path, looked up in the state (not an RRD, or not tracked as one: nothing). */
  const judgePath = (path: string) => {
    if (!RRD_NAME.test(path)) return;
    const row = store.get(path);
    if (!row?.rrd) return;
    try {
      judge({ path, size: row.size, mtimeNs: row.mtimeNs, ino: row.ino, last: (JSON.parse(row.rrd) as RrdSummary).last });
    } catch {
      // a summary this version cannot read: no figure for it
    }
  };
  const result = (rrds: number): ReplicaLag => ({ rrds, behind: lags.length, ...lagFigures(lags, rrds), estimated });
  return { judge, judgePath, result };
}

/**
 * The lag of every tracked RRD, or, with `candidates`, only of those paths (the daemon: every other tracked RRD is
 * current, its queue holds the rest); `rrds` is the tracked count either way.
 */
export function replicaLag(store: StateStore, sourceDir: string, candidates?: Iterable<string>): ReplicaLag {
  const t = lagTally(store, sourceDir);
  if (candidates === undefined) {
    let rrds = 0;
    for (const r of store.syncedRrds()) {
      rrds++;
      t.judge(r);
    }
    return t.result(rrds);
  }
  for (const path of candidates) t.judgePath(path);
  return t.result(store.countRrds());
}

/**
 * The lag of every tracked RRD, as `status --lag` wants it, at the stat sweep's cost: the tracked files are
 * statx'ed in directory order against their recorded version (~2 µs a file, nothing allocated per unchanged one),
 * and each changed RRD is judged as the sweep finds it, so no list of them is held (measured at 1,000,000 RRDs:
 * 8.6 s for `status` with an lstat and a row object per file, 4.7 s this way).
 */
export async function replicaLagNow(store: StateStore, sourceDir: string): Promise<ReplicaLag> {
  const t = lagTally(store, sourceDir);
  for await (const rel of sweepChanged(sourceDir, rrdKeys(store.trackedKeys()))) t.judgePath(rel);
  return t.result(store.countRrds());
}

function* rrdKeys(keys: Iterable<{ rel: string; key: string }>): Generator<{ rel: string; key: string }> {
  for (const k of keys) if (RRD_NAME.test(k.rel)) yield k;
}
