// The max_delete setting: a count of files, or a percentage of the files tracked. Parsed here, judged by the engine.

export type MaxDelete = { count: number } | { percent: number };

export function parseMaxDelete(v: unknown): MaxDelete | null {
  if (typeof v === "number" && Number.isInteger(v) && v >= 0) return { count: v };
  if (typeof v === "string") {
    const m = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(v);
    if (m && Number(m[1]) <= 100) return { percent: Number(m[1]) };
    if (/^\s*\d+\s*$/.test(v)) return { count: Number(v) };
  }
  return null;
}

export function describeMaxDelete(m: MaxDelete): string {
  return "count" in m ? `${m.count} files` : `${m.percent}% of the tracked files`;
}
