// End to end, the daemon under a stand-in for systemd: NOTIFY_SOCKET bound by the test (test/helpers/notify-socket.ts),
// WATCHDOG_USEC set. READY=1 once the initial pass is on the replica, WATCHDOG=1 pings often enough, STOPPING=1 on
// SIGTERM. The stand-in is first checked against systemd's own client (systemd-notify) where it is installed.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { eventually } from "../../helpers/daemon.ts";
import { NotifySocket } from "../../helpers/notify-socket.ts";
import { e2eSuite } from "../../helpers/suite.ts";
import { readTree, writeTree } from "../../helpers/world.ts";

setDefaultTimeout(90_000);

const suite = e2eSuite("notify");
const fast = { debounce_time: 1, rescan_interval: 0 };
const hasSystemdNotify = Bun.which("systemd-notify") !== null;

describe("sd_notify", () => {
  test.skipIf(!hasSystemdNotify)("the test's socket receives what systemd's own client sends (path and abstract)", async () => {
    const w = suite.world();
    for (const name of [join(w.dir, "notify.sock"), `@rrdsync-test-${process.pid}`]) {
      const s = new NotifySocket(name);
      try {
        const r = Bun.spawnSync(["systemd-notify", "--no-block", "--ready", "--status=reference"], { env: { ...process.env, NOTIFY_SOCKET: name } });
        expect(r.exitCode).toBe(0);
        await s.waitFor("READY=1", 5000);
        expect(s.having("STATUS=reference").length).toBe(1);
      } finally {
        s.close();
      }
    }
  });

  test("READY=1 after the initial pass, WATCHDOG=1 within every WATCHDOG_USEC, STOPPING=1 on SIGTERM", async () => {
    const w = suite.world();
    const files: Record<string, string> = {};
    for (let i = 0; i < 200; i++) files[`snmp/${i % 10}/f${i}.txt`] = `v${i}\n`;
    writeTree(w.src, files);
    const s = new NotifySocket(`@rrdsync-test-${process.pid}-${Date.now()}`);
    try {
      const d = suite.daemon(["--config", w.writeConfig(fast)], { NOTIFY_SOCKET: s.name, WATCHDOG_USEC: "2000000" });
      const ready = await s.waitFor("READY=1", 60_000);
      // READY=1 means the initial pass is done: the whole tree is on the replica at the moment it arrives.
      expect(readTree(w.dest)).toEqual(readTree(w.src));
      expect(ready.text).toContain("STATUS=watching ");

      // The daemon keeps working, and keeps pinging, while idle and while shipping a change.
      writeFileSync(join(w.src, "snmp/1/f1.txt"), "changed\n");
      await eventually(() => readTree(w.dest).get("snmp/1/f1.txt") === "changed\n", 15_000, "the change after READY");
      const t0 = Date.now();
      await Bun.sleep(4000);
      const pings = s.having("WATCHDOG=1").filter((m) => m.at >= t0 - 2000);
      expect(pings.length).toBeGreaterThanOrEqual(3);
      // systemd restarts a service whose pings are further apart than WatchdogSec: never so here.
      const gaps = pings.slice(1).map((m, i) => m.at - (pings[i] as (typeof pings)[number]).at);
      expect(Math.max(...gaps)).toBeLessThan(2000);
      expect(s.having("READY=1").length).toBe(1);

      expect(s.having("STOPPING=1").length).toBe(0);
      expect(await d.stop("SIGTERM")).toBe(0);
      await s.waitFor("STOPPING=1", 5000);
      expect(d.stderr()).not.toContain("cannot notify");
    } finally {
      s.close();
    }
  });

  test("a watchdog meant for another pid is not fed; a socket nobody listens on is one warning, not a failure", async () => {
    const w = suite.world();
    writeTree(w.src, { "a.txt": "a\n" });
    const s = new NotifySocket(`@rrdsync-test-${process.pid}-other-${Date.now()}`);
    try {
      const d = suite.daemon(["--config", w.writeConfig(fast)], { NOTIFY_SOCKET: s.name, WATCHDOG_USEC: "500000", WATCHDOG_PID: "1" });
      await s.waitFor("READY=1", 60_000);
      await Bun.sleep(1500);
      expect(s.having("WATCHDOG=1").length).toBe(0);
      expect(await d.stop("SIGTERM")).toBe(0);
    } finally {
      s.close();
    }

    const gone = join(w.dir, "nobody.sock");
    rmSync(gone, { force: true });
    const d = suite.daemon(["--config", w.writeConfig(fast)], { NOTIFY_SOCKET: gone, WATCHDOG_USEC: "500000" });
    await d.waitFor((e) => e.event === "pass", 60_000, "the initial pass");
    writeFileSync(join(w.src, "a.txt"), "b\n");
    await eventually(() => readTree(w.dest).get("a.txt") === "b\n", 15_000, "a change without a listener");
    expect(await d.stop("SIGTERM")).toBe(0);
    expect(d.stderr().match(/cannot notify systemd via NOTIFY_SOCKET=/g)?.length).toBe(1);
  });
});
