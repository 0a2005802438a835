// End to end: one SSH connection per target for the life of a run or daemon (issue #18), counted in sshd's log;
// the rsync transport's OpenSSH master: its private socket directory, its restart, its cleanup after kill -9.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { eventually } from "../../helpers/daemon.ts";
import { e2eSuite } from "../../helpers/suite.ts";
import { runRrdsync, TRANSPORT, type World, writeTree } from "../../helpers/world.ts";
import { loadConfig } from "../../../src/config/load.ts";
import { createTransport } from "../../../src/transport/create.ts";

setDefaultTimeout(90_000);

const suite = e2eSuite("connection");
const fast = { debounce_time: 1, rescan_interval: 0 };

/** Where a world's socket directories go (TMPDIR; XDG_RUNTIME_DIR emptied so it does not win). */
function runtimeEnv(w: World): { env: Record<string, string>; base: string } {
  const base = join(w.dir, "run");
  mkdirSync(base, { recursive: true });
  return { env: { TMPDIR: base, XDG_RUNTIME_DIR: "" }, base };
}

const socketDirs = (base: string) => readdirSync(base).filter((n) => n.startsWith("rrdsync-mux-"));

/** pids of ssh masters whose control socket lies under base */
function mastersUnder(base: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = readFileSync(`/proc/${name}/cmdline`, "latin1").split("\0");
      if (argv.includes("ControlMaster=yes") && argv.some((a) => a.startsWith(`ControlPath=${base}/`))) out.push(Number(name));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const onReplica = (w: World, rel: string, content: string) => () => {
  try {
    return readFileSync(join(w.dest, rel), "utf8") === content;
  } catch {
    return false;
  }
};

describe(`one ssh connection per target (${TRANSPORT})`, () => {
  test("--once with several batches, a rename and a delete makes exactly one ssh login", async () => {
    const w = suite.world();
    const files: Record<string, string> = {};
    for (let i = 0; i < 6; i++) files[`d/f${i}.txt`] = `v1 ${i}\n`;
    writeTree(w.src, files);
    const cfg = w.writeConfig({ batch_max_files: 2, delete: true, max_delete: "50%" });
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    for (let i = 0; i < 4; i++) appendFileSync(join(w.src, `d/f${i}.txt`), "v2\n");
    renameSync(join(w.src, "d/f4.txt"), join(w.src, "d/moved.txt"));
    rmSync(join(w.src, "d/f5.txt"));
    const before = suite.sshd().logins();
    const r = await runRrdsync(["--once", "--config", cfg]);
    expect({ code: r.code, err: r.stderr }).toEqual({ code: 0, err: "" });
    await Bun.sleep(200); // sshd's log line
    expect(suite.sshd().logins() - before).toBe(1);
    expect(readFileSync(join(w.dest, "d/f0.txt"), "utf8")).toBe("v1 0\nv2\n");
    expect(readFileSync(join(w.dest, "d/moved.txt"), "utf8")).toBe("v1 4\n");
    expect(existsSync(join(w.dest, "d/f4.txt"))).toBe(false);
    expect(existsSync(join(w.dest, "d/f5.txt"))).toBe(false);
  });

  test("warm() logs in ahead, and the batches after it log in no more", async () => {
    const w = suite.world();
    writeTree(w.src, { "a.txt": "a\n" });
    const transport = createTransport(loadConfig({ configPath: w.writeConfig(), env: {}, cwd: w.dir, home: w.dir }).config);
    const before = suite.sshd().logins();
    try {
      await transport.warm?.();
      await Bun.sleep(200);
      expect(suite.sshd().logins() - before).toBe(1);
      for (const content of ["a\n", "a\nb\n"]) {
        writeFileSync(join(w.src, "a.txt"), content);
        const r = await transport.sendBatch([{ path: "a.txt", size: content.length }]);
        expect(r.error).toBeUndefined();
        expect(readFileSync(join(w.dest, "a.txt"), "utf8")).toBe(content);
      }
      await Bun.sleep(200);
      expect(suite.sshd().logins() - before).toBe(1);
    } finally {
      await transport.close();
    }
  });

  test("the daemon logs in once for its life, however many batches it sends", async () => {
    const w = suite.world();
    writeTree(w.src, { "a.txt": "0\n" });
    const before = suite.sshd().logins();
    const d = suite.daemon(["--config", w.writeConfig(fast)]);
    await d.waitFor((e) => e.event === "pass", 30_000, "the initial pass");
    const batches = () => d.events.filter((e) => e.event === "batch").length;
    let content = "0\n";
    for (let i = 1; i <= 4; i++) {
      const n = batches();
      appendFileSync(join(w.src, "a.txt"), `${i}\n`);
      content += `${i}\n`;
      await eventually(onReplica(w, "a.txt", content), 15_000, `change ${i} on the replica`);
      await d.waitFor(() => batches() > n, 10_000, `the batch of change ${i}`);
    }
    await Bun.sleep(200);
    expect(suite.sshd().logins() - before).toBe(1);
    expect(await d.stop("SIGTERM")).toBe(0);
  });
});

describe.skipIf(TRANSPORT !== "rsync")("the rsync transport's ssh master", () => {
  test("auto: the probe and the transfers share one login", async () => {
    const w = suite.world();
    writeTree(w.src, { "a.txt": "a\n", "b/c.txt": "c\n" });
    const s = suite.sshd();
    const before = s.logins();
    const cfg = w.writeConfig({
      remote_sync: { remote_user: s.user, remote_host: s.host, port: s.port, remote_dest_dir: w.dest, ssh_key_path: s.clientKey, known_hosts_file: s.knownHosts, transport: "auto" },
    });
    const r = await runRrdsync(["--once", "--config", cfg]);
    expect(r.code).toBe(0);
    await Bun.sleep(200);
    expect(s.logins() - before).toBe(1);
    expect(readFileSync(join(w.dest, "b/c.txt"), "utf8")).toBe("c\n");
  });

  test("its socket directory is private (0700) while it runs and gone after --once and after SIGTERM", async () => {
    const w = suite.world();
    const { env, base } = runtimeEnv(w);
    writeTree(w.src, { "a.txt": "a\n" });
    const cfg = w.writeConfig(fast);
    expect((await runRrdsync(["--once", "--config", cfg], { env })).code).toBe(0);
    expect(socketDirs(base)).toEqual([]);

    const d = suite.daemon(["--config", cfg], env);
    await d.waitFor((e) => e.event === "pass", 30_000, "the initial pass");
    appendFileSync(join(w.src, "a.txt"), "b\n");
    await eventually(onReplica(w, "a.txt", "a\nb\n"), 15_000, "the change on the replica");
    const dirs = socketDirs(base);
    expect(dirs).toHaveLength(1);
    expect(dirs[0]).toStartWith(`rrdsync-mux-${d.proc.pid}-`);
    expect(statSync(join(base, dirs[0] as string)).mode & 0o777).toBe(0o700);
    const inside = readdirSync(join(base, dirs[0] as string));
    expect(inside).toHaveLength(1); // the master's socket, nothing else
    expect(statSync(join(base, dirs[0] as string, inside[0] as string)).isSocket()).toBe(true);
    const masters = mastersUnder(base);
    expect(masters).toHaveLength(1);
    expect(await d.stop("SIGTERM")).toBe(0);
    expect(socketDirs(base)).toEqual([]);
    await eventually(() => !alive(masters[0] as number), 5000, "the master gone with the daemon");
  });

  test("after kill -9 the master dies with rrdsync, and the next run removes the socket directory left behind", async () => {
    const w = suite.world();
    const { env, base } = runtimeEnv(w);
    writeTree(w.src, { "a.txt": "a\n" });
    const cfg = w.writeConfig(fast);
    const d = suite.daemon(["--config", cfg], env);
    await d.waitFor((e) => e.event === "pass", 30_000, "the initial pass");
    const [master] = mastersUnder(base);
    expect(master).toBeDefined();
    expect(await d.stop("SIGKILL")).not.toBe(0);
    await eventually(() => !alive(master as number), 5000, "the master killed with rrdsync (parent-death signal)");
    expect(socketDirs(base)).toHaveLength(1); // nobody could remove it
    appendFileSync(join(w.src, "a.txt"), "b\n");
    const r = await runRrdsync(["--once", "--config", cfg], { env });
    expect(r.code).toBe(0);
    expect(readFileSync(join(w.dest, "a.txt"), "utf8")).toBe("a\nb\n");
    expect(socketDirs(base)).toEqual([]);
  });

  test("a master that died is started again for the next batch (one new login), and the batch goes through", async () => {
    const w = suite.world();
    const { env, base } = runtimeEnv(w);
    writeTree(w.src, { "a.txt": "a\n" });
    const d = suite.daemon(["--config", w.writeConfig(fast)], env);
    await d.waitFor((e) => e.event === "pass", 30_000, "the initial pass");
    const [first] = mastersUnder(base);
    expect(first).toBeDefined();
    process.kill(first as number, "SIGKILL");
    await eventually(() => !alive(first as number), 5000, "the master killed");
    const before = suite.sshd().logins();
    appendFileSync(join(w.src, "a.txt"), "b\n");
    await eventually(onReplica(w, "a.txt", "a\nb\n"), 20_000, "the change on the replica after the master died");
    appendFileSync(join(w.src, "a.txt"), "c\n");
    await eventually(onReplica(w, "a.txt", "a\nb\nc\n"), 20_000, "the next change");
    await Bun.sleep(200);
    expect(suite.sshd().logins() - before).toBe(1);
    const now = mastersUnder(base);
    expect(now).toHaveLength(1);
    expect(now[0]).not.toBe(first);
    expect(await d.stop("SIGTERM")).toBe(0);
  });

  test("an unknown host key is refused by the master: nothing written, no master or socket left", async () => {
    const w = suite.world();
    const { env, base } = runtimeEnv(w);
    writeTree(w.src, { "a.txt": "a\n" });
    const s = suite.sshd();
    const kh = join(w.dir, "known_hosts_other_port");
    writeFileSync(kh, `[127.0.0.1]:1 ${s.hostKeys.ed25519}\n`); // the right key, listed for another port
    const cfg = w.writeConfig({
      remote_sync: { remote_user: s.user, remote_host: s.host, port: s.port, remote_dest_dir: w.dest, ssh_key_path: s.clientKey, known_hosts_file: kh, transport: "rsync" },
    });
    const r = await runRrdsync(["--once", "--config", cfg], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`host key of [127.0.0.1]:${s.port} is not in ${kh}`);
    expect(readdirSync(w.dest)).toEqual([]);
    expect(socketDirs(base)).toEqual([]);
    expect(mastersUnder(base)).toEqual([]);
  });
});
