// The WAN bench's tree, made by the real tools: 200 RRDs created and filled by rrdtool (OpenNMS's RRAs plus hourly
// MAX and daily LAST: 53,480 bytes each, a week of 5-minute history), 40 small text files beside them, and the
// real writers for the update workloads (`rrdtool update` through rrdtool's pipe mode, appends to text files).
import { appendFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { seededRandom } from "./generate-tree.ts";

const STEP = 300;
const RRAS = [
  "RRA:AVERAGE:0.5:1:2016", "RRA:AVERAGE:0.5:12:1488", "RRA:MAX:0.5:12:1488",
  "RRA:AVERAGE:0.5:288:366", "RRA:MAX:0.5:288:366", "RRA:MIN:0.5:288:366", "RRA:LAST:0.5:288:366",
];
const IF_DS = ["ifHCInOctets", "ifHCOutOctets", "ifInErrors", "ifOutErrors", "ifInDiscards", "ifOutDiscards", "ifHCInUcastPkts", "ifHCOutUcastPkts"];
const NODE_DS = ["tcpActiveOpens", "tcpPassiveOpens", "tcpCurrEstab", "loadavg1"];
/** rrdtool's pipe mode reads lines of limited length: an update carries at most this many values */
const VALUES_PER_LINE = 200;

/** `rrdtool -`: commands on stdin, one "OK …" or "ERROR: …" line each; a burst of updates costs no process starts. */
export class RrdPipe {
  private proc = Bun.spawn(["rrdtool", "-"], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  private lines: string[] = [];
  private waiters: Array<() => void> = [];
  private reader = (async () => {
    let buf = "";
    for await (const chunk of this.proc.stdout as ReadableStream<Uint8Array>) {
      buf += new TextDecoder().decode(chunk);
      let i = buf.indexOf("\n");
      while (i >= 0) {
        const line = buf.slice(0, i);
        if (line.startsWith("OK") || line.startsWith("ERROR")) this.lines.push(line);
        buf = buf.slice(i + 1);
        i = buf.indexOf("\n");
      }
      for (const w of this.waiters.splice(0)) w();
    }
  })();

  /** Sends the commands (argv-like arrays; no spaces inside an argument) and waits for every answer. */
  async run(commands: string[][]): Promise<void> {
    for (const c of commands) {
      if (c.some((a) => /\s/.test(a))) throw new Error(`rrdtool pipe mode cannot take ${JSON.stringify(c)}`);
      this.proc.stdin.write(`${c.join(" ")}\n`);
    }
    await this.proc.stdin.flush();
    for (let n = 0; n < commands.length; n++) {
      while (this.lines.length === 0) {
        if (this.proc.exitCode !== null) throw new Error("rrdtool exited");
        await new Promise<void>((r) => this.waiters.push(r));
      }
      const line = this.lines.shift() as string;
      if (!line.startsWith("OK")) throw new Error(`rrdtool: ${line} (for ${commands[n]?.join(" ")})`);
    }
  }

  async close(): Promise<void> {
    await this.proc.stdin.end();
    await this.proc.exited;
    await this.reader;
  }
}

export interface WanTree {
  rrds: string[];
  texts: string[];
  /** each RRD's last update (seconds), so further updates can go one step later */
  last: Map<string, number>;
  bytes: number;
}

/** 10 nodes × (4 node RRDs + 2 interfaces × 8 RRDs) = 200 RRDs, and 4 text files a node = 40. */
export async function makeWanTree(root: string, seed = 1): Promise<WanTree> {
  const rand = seededRandom(seed);
  const now = Math.floor(Date.now() / 1000 / STEP) * STEP;
  const end = now - 86_400; // a day's room for the benches' further updates, each one step later
  const start = end - 8 * 86_400;
  const tree: WanTree = { rrds: [], texts: [], last: new Map(), bytes: 0 };
  const commands: string[][] = [];
  const text = (rel: string, content: string) => {
    mkdirSync(join(root, rel, ".."), { recursive: true });
    writeFileSync(join(root, rel), content);
    tree.texts.push(rel);
    tree.bytes += content.length;
  };
  const rrd = (rel: string, ds: string, type: "GAUGE" | "COUNTER") => {
    mkdirSync(join(root, rel, ".."), { recursive: true });
    commands.push(["create", join(root, rel), "--start", String(start - STEP), "--step", String(STEP), `DS:${ds}:${type}:600:0:U`, ...RRAS]);
    // A week of history: a counter that grows by a noisy rate, or a noisy gauge.
    let v = Math.floor(rand() * 1e9);
    const level = rand() * 1e6;
    let values: string[] = [];
    for (let t = start; t <= end; t += STEP) {
      v += Math.floor(level * (0.5 + rand()));
      values.push(`${t}:${type === "COUNTER" ? v : (level * (0.5 + rand())).toFixed(2)}`);
      if (values.length === VALUES_PER_LINE || t + STEP > end) {
        commands.push(["update", join(root, rel), ...values]);
        values = [];
      }
    }
    tree.rrds.push(rel);
    tree.last.set(rel, end);
    tree.bytes += 53_480;
  };
  for (let node = 1; node <= 10; node++) {
    const base = `snmp/${node}`;
    for (const ds of NODE_DS) rrd(`${base}/nodeSnmp/${ds}.rrd`, ds, "GAUGE");
    text(`${base}/nodeSnmp/ds.properties`, `#${new Date(start * 1000).toUTCString()}\n${NODE_DS.map((d) => `${d}=mib2-tcp`).join("\n")}\n`);
    text(`${base}/nodeSnmp/strings.properties`, `#${new Date(start * 1000).toUTCString()}\nsysName=node${node}.example.net\nsysLocation=rack ${node}\n`);
    for (let ifc = 0; ifc < 2; ifc++) {
      const dir = `${base}/eth${ifc}-${(node * 256 + ifc).toString(16).padStart(12, "0")}`;
      for (const ds of IF_DS) rrd(`${dir}/${ds}.rrd`, ds, "COUNTER");
      text(`${dir}/strings.properties`, `#${new Date(start * 1000).toUTCString()}\nifAlias=uplink ${node}/${ifc}\nifDescr=eth${ifc}\nifSpeed=1000000000\n`);
    }
  }
  const pipe = new RrdPipe();
  try {
    await pipe.run(commands);
  } finally {
    await pipe.close();
  }
  return tree;
}

/** `rrdtool update` of each file, one step after its last update: real writes, through mmap, as OpenNMS makes them. */
export function updateCommands(root: string, tree: WanTree, rels: string[], rand: () => number): string[][] {
  return rels.map((rel) => {
    const t = (tree.last.get(rel) as number) + STEP;
    tree.last.set(rel, t);
    return ["update", join(root, rel), `${t}:${rel.includes("nodeSnmp") ? (rand() * 1e6).toFixed(2) : Math.floor(t * 1000 + rand() * 1e6)}`];
  });
}

/** Appends a few lines to text files, as OpenNMS rewrites its properties. */
export function appendTexts(root: string, rels: string[], n: number): void {
  for (const rel of rels) appendFileSync(join(root, rel), `lastPoll${n}=${new Date().toISOString()}\nstatus${n}=up\n`);
}

/** n distinct items of xs, picked by rand */
export function pick<T>(xs: T[], n: number, rand: () => number): T[] {
  const out = new Set<T>();
  while (out.size < Math.min(n, xs.length)) out.add(xs[Math.floor(rand() * xs.length)] as T);
  return [...out];
}
