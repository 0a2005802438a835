// End to end (issue 24, items 7, 11 and 12): bad places and bad input get a clear error naming the key or the option,
// a documented exit code and no stack; check, --once and --watch agree on them.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { e2eSuite } from "../../helpers/suite.ts";
import { readTree, runRrdsync, writeTree } from "../../helpers/world.ts";

setDefaultTimeout(90_000);
const suite = e2eSuite("edges");

const noStack = (r: { stderr: string }) => expect(r.stderr).not.toContain("    at ");

describe("source_dir that is a symlink to a directory (item 7)", () => {
  test("check, --once, --watch and status all refuse it with exit 2, naming the directory to write instead", async () => {
    const w = suite.world();
    const v1 = join(w.dir, "v1");
    writeTree(v1, { "a.txt": "a\n" });
    const cur = join(w.dir, "cur");
    symlinkSync(v1, cur);
    const cfg = w.writeConfig({ source_dir: cur });
    for (const args of [["check"], ["--once"], ["--watch"], ["status"], ["verify"]]) {
      const r = await runRrdsync([...args, "--config", cfg], { timeoutMs: 30_000 });
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toContain(`source_dir: ${cur} is a symlink to ${v1}: rrdsync replicates a directory, not a link that can be re-pointed under it`);
      expect(r.stderr).toContain(`hint: name the directory itself: "source_dir": "${v1}"`);
      noStack(r);
    }
    const direct = await runRrdsync(["--once", "--config", w.writeConfig({ source_dir: v1 })]);
    expect(direct.code).toBe(0);
    expect(readTree(w.dest)).toEqual(readTree(v1));
  });
});

describe("places and input that are refused (item 11)", () => {
  test('source_dir "/", a remote remote_dest_dir of "/" (config or --dest): exit 2 naming the key', async () => {
    const w = suite.world();
    const remote = { remote_host: "127.0.0.1", remote_dest_dir: "/srv/rrd" };
    let r = await runRrdsync(["--once", "--config", w.writeConfig({ source_dir: "/", remote_sync: remote })]);
    expect([r.code, r.stderr]).toEqual([2, expect.stringContaining('source_dir: "/" is the whole file system')]);
    r = await runRrdsync(["--once", "--config", w.writeConfig({ remote_sync: { ...remote, remote_dest_dir: "/" } })]);
    expect([r.code, r.stderr]).toEqual([2, expect.stringContaining(`remote_sync.remote_dest_dir: "/" is the standby's root directory`)]);
    r = await runRrdsync(["--once", "--source", w.src, "--dest", "standby:/", "--state", join(w.dir, "s.db")]);
    expect([r.code, r.stderr]).toEqual([2, expect.stringContaining(`--dest: "/" is the standby's root directory`)]);
    r = await runRrdsync(["check", "--config", w.writeConfig({ targets: [{ name: "b", remote_host: "standby", remote_dest_dir: "/" }] })]);
    expect([r.code, r.stderr]).toEqual([2, expect.stringContaining(`targets[0].remote_dest_dir: "/" is the standby's root directory`)]);
  });

  test("--config of /dev/zero, a fifo, or a huge file: exit 2 at once, memory bounded; empty option values name the option", async () => {
    const w = suite.world();
    const fifo = join(w.dir, "config.fifo");
    Bun.spawnSync(["mkfifo", fifo]);
    const huge = join(w.dir, "huge.json");
    writeFileSync(huge, `{"source_dir": "${w.src}", "x": "${"y".repeat(2 * 1024 * 1024)}"}`);
    for (const [path, why] of [["/dev/zero", "it is a device, not a regular file"], [fifo, "it is a fifo, not a regular file"], [huge, "larger than 1024 KiB"]]) {
      const t0 = Date.now();
      const r = await runRrdsync(["--once", "--config", path as string], { timeoutMs: 20_000 });
      expect({ path, code: r.code }).toEqual({ path, code: 2 });
      expect(r.stderr).toContain(why as string);
      expect(Date.now() - t0).toBeLessThan(10_000);
    }
    w.writeConfig();
    for (const args of [["--config", ""], ["--config="], ["-c", ""], ["verify", "--config", w.configPath, "--sample", ""], ["log", "--config", w.configPath, "--since", ""], ["--once", "--source", "", "--dest", w.dest]]) {
      const r = await runRrdsync(args);
      const name = (args.find((a) => a.startsWith("-") && (args[args.indexOf(a) + 1] === "" || a.endsWith("="))) as string).replace(/=$/, "");
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toContain(`rrdsync: ${name} is given an empty value`);
      noStack(r);
    }
  });
});

describe("what a run reports (item 12)", () => {
  test("a metrics_file that cannot be written makes --once exit 1, naming it; the replica is complete all the same", async () => {
    const w = suite.world();
    writeTree(w.src, { "a.txt": "a\n" });
    const blocker = join(w.dir, "not-a-dir");
    writeFileSync(blocker, "x\n");
    const r = await runRrdsync(["--once", "--config", w.writeConfig({ metrics_file: join(blocker, "rrdsync.prom") })]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`metrics_file ${join(blocker, "rrdsync.prom")}: not written`);
    expect(readTree(w.dest)).toEqual(readTree(w.src));
  });

  test("destination paths and arguments echoed in errors show control characters escaped, never raw", async () => {
    const w = suite.world();
    writeTree(w.src, { "a.txt": "a\n" });
    const cfg = w.writeConfig();
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    const evil = "\x1b]0;owned\x07\x1b[31m";
    const cases = [
      ["--once", `--${evil}`],
      ["--once", "--config", cfg, "--dest", `bad${evil}host:/x`],
      ["log", "--config", cfg, "--since", evil],
      ["restore", "a.txt", "--config", cfg, "--to", join(w.dir, `no/such${evil}/dir/f`)],
      ["--once", "--config", cfg, "--transport", evil],
      [`nonsense${evil}`],
    ];
    for (const args of cases) {
      const r = await runRrdsync(args);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect({ args, raw: /[\x00-\x08\x0b-\x1f\x7f]/.test(r.stderr + r.stdout) }).toEqual({ args, raw: false });
      expect(r.stderr).toMatch(/\\x1b|\\u001b/); // shown, escaped
    }
  });
});
