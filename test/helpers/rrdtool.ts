// The real rrdtool as the ground truth for what an RRD holds: `info` and `fetch`, parsed, and updates by pipe.
import { rrdtoolPipe } from "../../scripts/bench/generate-tree.ts";

/** Runs rrdtool; its stdout, or an error with its stderr. */
export function rrdtool(args: string[]): string {
  const p = Bun.spawnSync(["rrdtool", ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`rrdtool ${args.join(" ")} exited ${p.exitCode}: ${p.stderr.toString().trim()}`);
  return p.stdout.toString();
}

/** `rrdtool update`s through one `rrdtool -` process: [file, time, values] each. */
export async function updates(list: Array<[file: string, time: number, values: Array<number | "U">]>): Promise<void> {
  await rrdtoolPipe(list.map(([f, t, v]) => `update ${f} ${t}:${v.join(":")}\n`));
}

/** `rrdtool info`, one line per field, without the file's name (so two files' infos compare). */
export function infoLines(file: string): string[] {
  return rrdtool(["info", file])
    .split("\n")
    .filter((l) => l !== "" && !l.startsWith("filename = "));
}

/** One field of `rrdtool info` as its text (last_update, rra[0].cur_row, …). */
export function infoField(file: string, key: string): string {
  const line = infoLines(file).find((l) => l.startsWith(`${key} = `));
  if (line === undefined) throw new Error(`rrdtool info ${file}: no ${key}`);
  return line.slice(key.length + 3).replace(/^"|"$/g, "");
}

/**
 * `rrdtool fetch FILE CF -r PERIOD` of the `rows` rows that end at `end` (a multiple of PERIOD): [time, values as
 * printed] per row, oldest first; "nan" for unknown (rrdtool prints -nan or nan). Rows outside the file's range come
 * back unknown, as rrdtool pads them.
 */
export function fetchRows(file: string, cf: string, period: number, rows: number, end: number): Array<[number, string[]]> {
  const text = rrdtool(["fetch", file, cf, "-r", String(period), "-s", String(end - rows * period), "-e", String(end - 1)]);
  const out: Array<[number, string[]]> = [];
  for (const line of text.split("\n")) {
    const m = /^(\d+): (.*)$/.exec(line.trim());
    if (!m) continue;
    out.push([Number(m[1]), (m[2] as string).trim().split(/\s+/).map((v) => (/nan/i.test(v) ? "nan" : v))]);
  }
  if (out.length !== rows || out[out.length - 1]?.[0] !== end) {
    throw new Error(`rrdtool fetch ${file} ${cf} -r ${period}: expected ${rows} rows ending ${end}, got ${out.length} ending ${out[out.length - 1]?.[0]}`);
  }
  return out;
}
