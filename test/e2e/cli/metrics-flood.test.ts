// End to end (issue 24, item 6): idle connections to metrics_listen never starve replication of descriptors. The
// daemon runs with the descriptor limit most services start with (1,024, prlimit); 1,500 clients connect and say
// nothing. The daemon holds only a few of them; a scrape is still answered; the next batch still goes.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { join } from "node:path";
import { eventually } from "../../helpers/daemon.ts";
import { e2eSuite } from "../../helpers/suite.ts";
import { rrdsyncCommand, writeTree } from "../../helpers/world.ts";

setDefaultTimeout(120_000);
const suite = e2eSuite("flood");

async function freePort(): Promise<number> {
  return await new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => resolve(typeof a === "object" && a ? a.port : 0));
    });
  });
}

describe("metrics_listen under a flood of idle connections", () => {
  test("1,500 idle clients against a daemon limited to 1,024 descriptors: it keeps few open, answers a scrape, and the next batch goes", async () => {
    const w = suite.world();
    writeTree(w.src, { "a.txt": "a\n" });
    const port = await freePort();
    const cfg = w.writeConfig({ metrics_listen: `127.0.0.1:${port}`, debounce_time: 0.3, rescan_interval: 0 });
    const proc = Bun.spawn(["prlimit", "--nofile=1024:1024", "--", ...rrdsyncCommand(), "--watch", "--config", cfg], {
      stdout: "ignore", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" },
    });
    const clients: Socket[] = [];
    try {
      await eventually(() => existsSync(join(w.dest, "a.txt")), 30_000, "a.txt on the replica");
      for (let i = 0; i < 1500; i++) {
        const c = connect({ host: "127.0.0.1", port });
        c.on("error", () => {}); // closed by the daemon: expected
        clients.push(c);
        if (i % 100 === 99) await Bun.sleep(20);
      }
      await Bun.sleep(1000);
      const fds = readdirSync(`/proc/${proc.pid}/fd`).length;
      expect(fds).toBeLessThan(200);
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain("rrdsync_files_transferred_total");
      writeTree(w.src, { "b.txt": "b, after the flood\n" });
      await eventually(() => existsSync(join(w.dest, "b.txt")), 15_000, "the next batch on the replica");
      expect(readFileSync(join(w.dest, "b.txt"), "utf8")).toBe("b, after the flood\n");
      expect(readFileSync(w.logFile, "utf8")).not.toContain("EMFILE");
    } finally {
      for (const c of clients) c.destroy();
      proc.kill("SIGTERM");
      await proc.exited;
    }
  });
});
