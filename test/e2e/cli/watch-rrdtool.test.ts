// End to end, issue #13's headline: `rrdsync --watch` ships what the real `rrdtool` writes (through mmap: no
// IN_MODIFY, only IN_CLOSE_WRITE), one update and a burst through one `rrdtool -` process, to a real sshd.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { eventually } from "../../helpers/daemon.ts";
import { rrdsyncCommand } from "../../helpers/world.ts";
import { e2eSuite } from "../../helpers/suite.ts";

setDefaultTimeout(90_000);

const suite = e2eSuite("watch-rrdtool");
const T0 = 1_700_000_000;

function rrdtool(args: string[], input?: string): void {
  const p = Bun.spawnSync(["rrdtool", ...args], { stdin: input === undefined ? "ignore" : Buffer.from(input), stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`rrdtool ${args[0]} exited ${p.exitCode}: ${p.stderr.toString()}`);
}

const sameOnReplica = (src: string, dest: string, rel: string) => () => {
  try {
    return readFileSync(join(dest, rel)).equals(readFileSync(join(src, rel)));
  } catch {
    return false;
  }
};

describe("rrdsync --watch with the real rrdtool", () => {
  test("`rrdtool update` of one file, then a burst through one `rrdtool -` process, reach the replica", async () => {
    const w = suite.world();
    const files: string[] = [];
    for (let n = 1; n <= 10; n++) {
      mkdirSync(join(w.src, `snmp/${n}`), { recursive: true });
      for (const ds of ["ifHCInOctets", "ifHCOutOctets", "ifInErrors"]) {
        const rel = `snmp/${n}/${ds}.rrd`;
        files.push(rel);
        rrdtool(["create", join(w.src, rel), "--start", String(T0), "--step", "300", "DS:v:COUNTER:600:U:U", "RRA:AVERAGE:0.5:1:100"]);
      }
    }
    const d = suite.daemon(["--config", w.writeConfig({ debounce_time: 1, rescan_interval: 0 })]);
    await d.waitFor((e) => e.event === "pass", 30_000, "the initial pass");
    const one = files[0] as string;
    expect(sameOnReplica(w.src, w.dest, one)()).toBe(true);

    rrdtool(["update", join(w.src, one), `${T0 + 300}:1000`]);
    await eventually(sameOnReplica(w.src, w.dest, one), 10_000, "the rrdtool update on the replica");

    rrdtool(["-"], `${[2, 3].flatMap((k) => files.map((f) => `update ${join(w.src, f)} ${T0 + 300 * k}:${1000 * k}`)).join("\n")}\n`);
    await eventually(() => files.every((f) => sameOnReplica(w.src, w.dest, f)()), 15_000, "every file of the rrdtool - burst on the replica");
  });
});

describe("a river of rrdtool updates (issue 25)", () => {
  test("the log says one INFO line per batch, the plain live view (journald's) one line per batch, the change log no entry per update", async () => {
    const w = suite.world();
    const files: string[] = [];
    for (let n = 1; n <= 20; n++) {
      mkdirSync(join(w.src, `snmp/${n}`), { recursive: true });
      for (const ds of ["ifHCInOctets", "ifHCOutOctets"]) {
        const rel = `snmp/${n}/${ds}.rrd`;
        files.push(rel);
        rrdtool(["create", join(w.src, rel), "--start", String(T0), "--step", "300", "DS:v:COUNTER:600:U:U", "RRA:AVERAGE:0.5:1:100"]);
      }
    }
    const cfg = w.writeConfig({ debounce_time: 0.5, rescan_interval: 0, logging: { log_file: w.logFile, log_level: "INFO" } });
    // the plain view, as systemd's journal gets it (stdout not a terminal, no --json)
    const proc = Bun.spawn([...rrdsyncCommand(), "--watch", "--config", cfg], { stdout: "pipe", stderr: "pipe", stdin: "ignore", env: { ...process.env, NO_COLOR: "1" } });
    let stdout = "";
    const out = (async () => {
      const dec = new TextDecoder();
      for await (const chunk of proc.stdout as ReadableStream<Uint8Array>) stdout += dec.decode(chunk, { stream: true });
      return stdout;
    })();
    const err = new Response(proc.stderr).text();
    try {
      await eventually(() => stdout.includes("initial pass:"), 30_000, "the initial pass");
      const entries0 = w.changes();
      // three rounds of updates of every RRD, a step each, as a collector writes them
      for (let k = 1; k <= 3; k++) {
        rrdtool(["-"], `${files.map((f) => `update ${join(w.src, f)} ${T0 + 300 * k}:${1000 * k}`).join("\n")}\n`);
        await eventually(() => files.every((f) => sameOnReplica(w.src, w.dest, f)()), 20_000, `round ${k} on the replica`);
      }
      const infoLines = () => readFileSync(w.logFile, "utf8").split("\n").filter((l) => / - INFO - /.test(l));
      const batchLinesOf = (lines: string[]) => lines.filter((l) => / - INFO - batch: \d+ files, \d+ bytes \(\d+ sent\), [\d.]+ s, \d+ entries, \d+ routine RRD updates rolled up/.test(l));
      // the replica holds the last round before its batch is committed and logged: wait for its line
      await eventually(() => batchLinesOf(infoLines()).length >= 3, 10_000, "a batch line per round");
      expect(w.changes().slice(entries0.length)).not.toContain("RRD file updated");
      const log = infoLines();
      const batchLines = batchLinesOf(log);
      expect(batchLines.length).toBeGreaterThanOrEqual(3);
      expect(batchLines.length).toBeLessThanOrEqual(10);
      expect(log.filter((l) => l.includes(".rrd"))).toEqual([]); // no per-file INFO lines
    } finally {
      proc.kill("SIGTERM");
      await proc.exited;
    }
    const view = (await out).split("\n").filter(Boolean);
    expect(view.filter((l) => l.includes(".rrd"))).toEqual([]);
    expect(view.filter((l) => /↑ \d+ files? /.test(l)).length).toBeGreaterThanOrEqual(3);
    expect(await err).not.toContain(".rrd");
  });
});
