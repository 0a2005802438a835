// Generates an OpenNMS-like tree: snmp/<node>/<resource>/<ds>.rrd in the real x86_64 RRDtool layout
// (../shared/reference/rrd-format.md) with OpenNMS's default RRAs (~38 KB per single-DS file), plus the
// small text files OpenNMS writes beside them (strings.properties, ds.properties, *.meta).
// Usage: bun scripts/bench/generate-tree.ts DIR [--files N] [--seed S]
import { closeSync, existsSync, mkdirSync, openSync, readSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";

const STEP = 300;
/** OpenNMS's default datacollection RRAs: 5-min for 7 days, hourly for 62 days, daily avg/max/min for a year. */
const RRAS: Array<[cf: string, pdpPerRow: number, rows: number]> = [
  ["AVERAGE", 1, 2016], ["AVERAGE", 12, 1488], ["AVERAGE", 288, 366], ["MAX", 288, 366], ["MIN", 288, 366],
];
const STAT = 128, DS = 120, RRA = 120, LIVE = 16, PDP = 112, CDP = 80, PTR = 8;
const IF_DS = ["ifHCInOctets", "ifHCOutOctets", "ifInErrors", "ifOutErrors", "ifInDiscards", "ifOutDiscards", "ifHCInUcastPkts", "ifHCOutUcastPkts"];
const NODE_DS = ["tcpActiveOpens", "tcpPassiveOpens", "tcpCurrEstab", "hrSystemProcesses", "hrSystemNumUsers", "loadavg1"];

/** A small RRA set for scale runs (100,000 files): the same layout, ~2 KB a file instead of ~38 KB. */
const SMALL_RRAS: typeof RRAS = [["AVERAGE", 1, 24], ["MAX", 12, 10]];

export function headerSize(dsCnt: number, rras = RRAS): number {
  return STAT + DS * dsCnt + RRA * rras.length + LIVE + PDP * dsCnt + CDP * dsCnt * rras.length + PTR * rras.length;
}

function putStr(b: Buffer, off: number, s: string): void {
  b.write(s, off, "latin1");
}

/** A real RRDtool (format 0003, x86_64) file: header as `rrdtool create` writes it, data rings NaN then filled from `rand`. */
export function makeRrd(dsNames: string[], dsType: string, lastUpdate: number, rand: () => number, rras = RRAS): Buffer {
  const rows = rras.reduce((n, r) => n + r[2], 0);
  const hdr = headerSize(dsNames.length, rras);
  const b = Buffer.alloc(hdr + 8 * dsNames.length * rows);
  putStr(b, 0, "RRD");
  putStr(b, 4, "0003");
  b.writeDoubleLE(8.642135e130, 16);
  b.writeBigUInt64LE(BigInt(dsNames.length), 24);
  b.writeBigUInt64LE(BigInt(rras.length), 32);
  b.writeBigUInt64LE(BigInt(STEP), 40);
  let o = STAT;
  for (const name of dsNames) {
    putStr(b, o, name.slice(0, 19));
    putStr(b, o + 20, dsType);
    b.writeBigUInt64LE(600n, o + 40);
    b.writeDoubleLE(0, o + 48);
    b.writeDoubleLE(Number.NaN, o + 56);
    o += DS;
  }
  for (const [cf, pdp, n] of rras) {
    putStr(b, o, cf);
    b.writeBigUInt64LE(BigInt(n), o + 24);
    b.writeBigUInt64LE(BigInt(pdp), o + 32);
    b.writeDoubleLE(0.5, o + 40);
    o += RRA;
  }
  b.writeBigUInt64LE(BigInt(lastUpdate), o);
  o += LIVE;
  for (let i = 0; i < dsNames.length; i++, o += PDP) putStr(b, o, String(Math.floor(rand() * 1e9)));
  o += CDP * dsNames.length * rras.length;
  for (const [, , n] of rras) {
    b.writeBigUInt64LE(BigInt(Math.floor(rand() * n)), o);
    o += PTR;
  }
  // Rings: a collected history (values) with gaps (NaN), as a real file months into collection.
  for (let p = hdr; p < b.length; p += 8) b.writeDoubleLE(rand() < 0.1 ? Number.NaN : Math.round(rand() * 1e6) / 100, p);
  return b;
}

/**
 * Real `rrdtool update`s, as OpenNMS's collectors write them: every file through ONE `rrdtool -` process (librrd,
 * writing through mmap, so a watcher sees only IN_CLOSE_WRITE). `at`: the update's time (seconds), or now. Each
 * file gets a value for every data source (read from its header). Throws if rrdtool refuses one.
 */
export async function rrdtoolUpdates(files: string[], rand: () => number, at?: number): Promise<void> {
  const head = Buffer.alloc(STAT);
  const lines = files.map((f) => {
    const fd = openSync(f, "r");
    try {
      readSync(fd, head, 0, STAT, 0);
    } finally {
      closeSync(fd);
    }
    const values = Array.from({ length: Number(head.readBigUInt64LE(24)) }, () => Math.floor(rand() * 1e9));
    return `update ${f} ${at ?? "N"}:${values.join(":")}\n`;
  });
  await rrdtoolPipe(lines);
}

/**
 * Feeds `rrdtool -` one command per line, streamed both ways (an unread pipe would stall rrdtool; a million
 * commands never sit in memory): the count of OK answers. Any ERROR line fails it with that line.
 */
export async function rrdtoolPipe(commands: Iterable<string>, cwd?: string): Promise<number> {
  const p = Bun.spawn(["rrdtool", "-"], { cwd, stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  let ok = 0;
  const failed: string[] = [];
  const read = (async () => {
    let rest = "";
    for await (const chunk of p.stdout as ReadableStream<Uint8Array>) {
      rest += Buffer.from(chunk).toString("latin1");
      const lines = rest.split("\n");
      rest = lines.pop() ?? "";
      for (const l of lines) {
        if (l.startsWith("OK")) ok++;
        else if (l.startsWith("ERROR") && failed.length < 3) failed.push(l);
      }
    }
  })();
  const errText = new Response(p.stderr).text();
  let chunk = "";
  for (const c of commands) {
    chunk += c;
    if (chunk.length > 1 << 16) {
      p.stdin.write(chunk);
      await p.stdin.flush();
      chunk = "";
    }
  }
  p.stdin.write(chunk);
  await p.stdin.end();
  const code = await p.exited;
  await read;
  if (code !== 0 || failed.length > 0) throw new Error(`rrdtool - failed (exit ${code}): ${[...failed, (await errText).trim()].join("; ")}`);
  return ok;
}

/**
 * What `rrdtool update` does to a file, imitated with write() (for the demo, which needs no rrdtool, and the
 * parser's unit test). NOT for watchers or benches: write() raises IN_MODIFY, which the real mmap writes never do.
 */
export function touchRrdUpdate(file: string, rand: () => number, now = Math.floor(Date.now() / 1000)): void {
  const fd = openSync(file, "r+");
  try {
    const head = Buffer.alloc(STAT);
    readSync(fd, head, 0, STAT, 0);
    const dsCnt = Number(head.readBigUInt64LE(24));
    const rraCnt = Number(head.readBigUInt64LE(32));
    const defs = Buffer.alloc(RRA * rraCnt);
    readSync(fd, defs, 0, defs.length, STAT + DS * dsCnt);
    const rows = Array.from({ length: rraCnt }, (_, r) => Number(defs.readBigUInt64LE(r * RRA + 24)));
    const liveOff = STAT + DS * dsCnt + RRA * rraCnt;
    const live = Buffer.alloc(LIVE);
    live.writeBigUInt64LE(BigInt(now), 0);
    live.writeBigUInt64LE(BigInt(Math.floor(rand() * 1e6)), 8);
    writeSync(fd, live, 0, LIVE, liveOff);
    for (let i = 0; i < dsCnt; i++) {
      const pdp = Buffer.alloc(30);
      pdp.write(String(Math.floor(rand() * 1e9)), "latin1");
      writeSync(fd, pdp, 0, 30, liveOff + LIVE + PDP * i);
    }
    const ptrOff = liveOff + LIVE + PDP * dsCnt + CDP * dsCnt * rraCnt;
    let ring = ptrOff + PTR * rraCnt;
    rows.forEach((n, r) => {
      const row = Math.floor(rand() * n);
      const ptr = Buffer.alloc(8);
      ptr.writeBigUInt64LE(BigInt(row));
      writeSync(fd, ptr, 0, 8, ptrOff + PTR * r);
      const vals = Buffer.alloc(8 * dsCnt);
      for (let d = 0; d < dsCnt; d++) vals.writeDoubleLE(Math.round(rand() * 1e6) / 100, 8 * d);
      writeSync(fd, vals, 0, vals.length, ring + row * 8 * dsCnt);
      ring += n * 8 * dsCnt;
    });
  } finally {
    closeSync(fd);
  }
}

/** mulberry32: a small seeded PRNG so two runs generate the same tree. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Generated {
  files: number;
  bytes: number;
  dirs: number;
  /** relative paths of the .rrd files, for update workloads */
  rrds: string[];
}

/**
 * About `files` files: per node a nodeSnmp resource (6 RRDs + ds.properties) and interfaces
 * (8 RRDs + strings.properties + a .meta each). `dirsPerNode` spreads them for the many-directories case.
 */
/**
 * `spread`: the many-directories case (100,000 files in 20,000 directories): snmp/<node>/<resource>/ with
 * `perDir` small RRDs each, no text files.
 */
export async function generateSpreadTree(root: string, opts: { files: number; perDir: number; seed?: number }): Promise<Generated> {
  const rand = seededRandom(opts.seed ?? 1);
  const out: Generated = { files: 0, bytes: 0, dirs: 0, rrds: [] };
  for (let d = 0; out.files < opts.files; d++) {
    const dir = `snmp/${Math.floor(d / 50)}/res${d % 50}`;
    mkdirSync(join(root, dir), { recursive: true });
    out.dirs++;
    for (let i = 0; i < opts.perDir && out.files < opts.files; i++) {
      const rel = `${dir}/ds${i}.rrd`;
      const data = makeRrd([`ds${i}`], "GAUGE", 1_700_000_000, rand, SMALL_RRAS);
      writeFileSync(join(root, rel), data);
      out.files++;
      out.bytes += data.length;
      out.rrds.push(rel);
    }
  }
  return out;
}

export async function generateTree(root: string, opts: { files: number; seed?: number }): Promise<Generated> {
  const rand = seededRandom(opts.seed ?? 1);
  const out: Generated = { files: 0, bytes: 0, dirs: 0, rrds: [] };
  const t0 = 1_700_000_000;
  const write = (rel: string, data: Buffer | string) => {
    writeFileSync(join(root, rel), data);
    out.files++;
    out.bytes += data.length;
  };
  const mkdir = (rel: string) => {
    mkdirSync(join(root, rel), { recursive: true });
    out.dirs++;
  };
  for (let node = 1; out.files < opts.files; node++) {
    const base = `snmp/${node}`;
    mkdir(`${base}/nodeSnmp`);
    for (const ds of NODE_DS) {
      if (out.files >= opts.files) return out;
      write(`${base}/nodeSnmp/${ds}.rrd`, makeRrd([ds], "GAUGE", t0, rand));
      out.rrds.push(`${base}/nodeSnmp/${ds}.rrd`);
    }
    write(`${base}/nodeSnmp/ds.properties`, `#${new Date(t0 * 1000).toUTCString()}\n${NODE_DS.map((d) => `${d}=mib2-tcp`).join("\n")}\n`);
    for (let ifc = 0; ifc < 8 && out.files < opts.files; ifc++) {
      const mac = (node * 256 + ifc).toString(16).padStart(12, "0");
      const dir = `${base}/eth${ifc}-${mac}`;
      mkdir(dir);
      for (const ds of IF_DS) {
        if (out.files >= opts.files) return out;
        write(`${dir}/${ds}.rrd`, makeRrd([ds], "COUNTER", t0, rand));
        out.rrds.push(`${dir}/${ds}.rrd`);
      }
      write(`${dir}/strings.properties`, `#${new Date(t0 * 1000).toUTCString()}\nifAlias=uplink ${node}/${ifc}\nifDescr=eth${ifc}\nifSpeed=1000000000\n`);
      write(`${dir}/ifHCInOctets.meta`, `ifHCInOctets=ifHCInOctets\nifHCOutOctets=ifHCOutOctets\n`);
    }
  }
  return out;
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const dir = args.find((a) => !a.startsWith("--"));
  const num = (flag: string, dflt: number) => {
    const i = args.indexOf(flag);
    return i >= 0 ? Number(args[i + 1]) : dflt;
  };
  if (!dir) {
    console.error("usage: bun scripts/bench/generate-tree.ts DIR [--files N] [--seed S]");
    process.exit(2);
  }
  const g = await generateTree(dir, { files: num("--files", 20_000), seed: num("--seed", 1) });
  console.log(`${g.files} files, ${(g.bytes / 1048576).toFixed(1)} MiB, ${g.dirs} directories in ${dir}`);
}

/** The bench tree of `files` files under root (seed 1), generated once and reused by later benches (.complete marks it). */
export async function cachedBenchTree(root: string, files: number): Promise<string> {
  const src = join(root, `tree-${files}`);
  if (!existsSync(join(src, ".complete"))) {
    rmSync(src, { recursive: true, force: true });
    const t = performance.now();
    const g = await generateTree(src, { files, seed: 1 });
    writeFileSync(join(src, ".complete"), "");
    console.log(`generated ${g.files} files (${(g.bytes / 1048576).toFixed(0)} MiB, ${g.dirs} dirs) in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  }
  return src;
}
