// End to end, issue #13's headline: `rrdsync --watch` ships what the real `rrdtool` writes (through mmap: no
// IN_MODIFY, only IN_CLOSE_WRITE), one update and a burst through one `rrdtool -` process, to a real sshd.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { eventually } from "../../helpers/daemon.ts";
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
