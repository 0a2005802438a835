// End to end: two standbys. Each keeps its own state, pending files and backoff: one down never holds back the
// other, and when it is back it catches up. The change log follows the first target.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { eventually } from "../../helpers/daemon.ts";
import { type SshdFixture, startSshd } from "../../helpers/sshd.ts";
import { e2eSuite } from "../../helpers/suite.ts";
import { readTree, runRrdsync, TRANSPORT, type World, writeTree } from "../../helpers/world.ts";

setDefaultTimeout(120_000);
const suite = e2eSuite("tgt");
let second: SshdFixture;
beforeAll(async () => {
  second = await startSshd();
});
afterAll(async () => {
  await second.cleanup();
});

function targetsConfig(w: World, b: SshdFixture, extra: Record<string, unknown> = {}): string {
  const a = suite.sshd();
  return w.writeConfig({
    remote_sync: { remote_user: a.user, remote_host: a.host, port: a.port, remote_dest_dir: w.dest, ssh_key_path: a.clientKey, known_hosts_file: a.knownHosts, transport: TRANSPORT },
    targets: [{ name: "standby-b", remote_user: b.user, remote_host: b.host, port: b.port, remote_dest_dir: join(w.dir, "dest-b"), ssh_key_path: b.clientKey, known_hosts_file: b.knownHosts, transport: TRANSPORT }],
    ...extra,
  });
}

describe("two targets", () => {
  test("--once: one down (exit 1, its files pending, named by status) while the other is complete; back, it catches up", async () => {
    const w = suite.world();
    writeTree(w.src, { "a.txt": "a\n", "n/b.txt": "b\n" });
    await second.stop();
    const cfg = targetsConfig(w, second);
    const r = await runRrdsync(["--once", "--config", cfg]);
    expect(r.code).toBe(1);
    expect(readTree(w.dest)).toEqual(readTree(w.src));
    expect(existsSync(join(w.dir, "dest-b", "a.txt"))).toBe(false);
    const st = await runRrdsync(["status", "--json", "--config", cfg]);
    expect(st.code).toBe(1);
    const [sa, sb] = st.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect([sa.pending, sa.reachable, sb.pending, sb.reachable]).toEqual([0, true, 2, false]);
    expect(sb.stateFile).toMatch(/state\.standby-b\.db$/);
    const check = await runRrdsync(["check", "--config", cfg]);
    expect(check.code).toBe(1);
    expect(check.stdout).toContain(`(port ${suite.sshd().port})${TRANSPORT === "sftp" ? " via sftp" : ""}): ${suite.sshd().user}@127.0.0.1 port ${suite.sshd().port}`);
    expect(check.stdout).toMatch(/✗ ssh login \(.*Connection refused/);
    await second.start();
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    expect(readTree(join(w.dir, "dest-b"))).toEqual(readTree(w.src));
    // the change log follows the first target: each file once
    expect(w.changes().match(/^File: a\.txt$/gm)).toHaveLength(1);
  });

  test("--watch: with one standby down, the other stays current; the down one catches up once it is back", async () => {
    const w = suite.world();
    writeTree(w.src, { "x.txt": "1\n" });
    const d = suite.daemon(["--config", targetsConfig(w, second, { debounce_time: 0.3, rescan_interval: 0, retry: { initial: 0.5, max: 2 } })]);
    await d.waitFor((e) => e.event === "pass" && String(e.target).includes("dest-b"), 30_000, "the second target's initial pass");
    await d.waitFor((e) => e.event === "pass" && !String(e.target).includes("dest-b"), 30_000, "the first target's initial pass");
    await second.stop();
    for (let v = 2; v <= 4; v++) {
      writeFileSync(join(w.src, "x.txt"), `${v}\n`);
      await eventually(() => readFileSync(join(w.dest, "x.txt"), "utf8") === `${v}\n`, 5_000, `update ${v} on the first target while the second is down`);
    }
    expect(readFileSync(join(w.dir, "dest-b", "x.txt"), "utf8")).toBe("1\n");
    await second.start();
    await eventually(() => readFileSync(join(w.dir, "dest-b", "x.txt"), "utf8") === "4\n", 10_000, "the second target caught up");
  });
});
