// End to end: the rrdsync command against a real sshd and real rsync on 127.0.0.1 (or the compiled binary: RRDSYNC_BIN).
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { Database } from "bun:sqlite";
import { appendFileSync, chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeRrd, seededRandom } from "../../../scripts/bench/generate-tree.ts";
import { wrongKnownHosts } from "../../helpers/sshd.ts";
import { e2eSuite } from "../../helpers/suite.ts";
import { fakeBinary, readTree, runRrdsync, TRANSPORT, type World, writeTree } from "../../helpers/world.ts";

setDefaultTimeout(90_000); // real sshd + rsync (+ the watcher): seconds, not milliseconds

const suite = e2eSuite("w");
const world = suite.world;

const TS = /^Timestamp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/m;

/** What the last run appended to the change log, with the timestamp line checked and removed. */
function newEntries(w: World, before: string): string {
  const added = w.changes().slice(before.length);
  for (const block of added.split(/^-{80}\n/m).filter((b) => b !== "")) expect(block).toMatch(TS);
  return added.replace(/^Timestamp: .*\n/gm, "");
}

function dbRows(w: World): number {
  const db = new Database(w.stateFile, { readonly: true });
  try {
    return (db.query("SELECT count(*) AS n FROM files").get() as { n: number }).n;
  } finally {
    db.close();
  }
}

describe("rrdsync --once over ssh", () => {
  test("initial sync: the replica equals the source byte for byte; a second pass sends nothing", async () => {
    const w = world();
    writeTree(w.src, {
      "snmp/1/opennms-jvm/heap.bin": fakeBinary(40_000, 1),
      "snmp/1/opennms-jvm/ds.properties": "heap=heap\n",
      "snmp/1/eth0/ifInOctets.bin": fakeBinary(38_000, 2),
      "snmp/1/eth0/strings.properties": "ifDescr=eth0\n",
      "snmp/2/x.meta": "meta\n",
    });
    const cfg = w.writeConfig();
    const r1 = await runRrdsync(["--once", "--config", cfg]);
    expect(r1.stderr).toBe("");
    expect(r1.code).toBe(0);
    expect(readTree(w.dest)).toEqual(readTree(w.src));
    expect(r1.stdout).toContain("5 files");
    expect(dbRows(w)).toBe(5);

    // No change: nothing sent, and no connection at all: it still succeeds with sshd down.
    await suite.sshd().stop();
    const before = w.changes();
    const r2 = await runRrdsync(["--once", "--config", cfg]);
    expect(r2.code).toBe(0);
    expect(r2.stdout).toContain("0 files");
    expect(w.changes()).toBe(before);
  });

  test("a modified text file gives exactly the expected diff entry; a new file is logged as created", async () => {
    const w = world();
    writeTree(w.src, { "node/notes.txt": "a\n\nb\nc\n", "node/strings.properties": "#Mon\nifAlias=uplink\n" });
    const cfg = w.writeConfig();
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    expect(newEntries(w, "")).toContain("File: node/notes.txt\nChanges:\nNew file created with 4 lines.\n" + "-".repeat(80) + "\n");

    const before = w.changes();
    writeFileSync(join(w.src, "node/notes.txt"), "a\n\nB\nc\n");
    writeFileSync(join(w.src, "node/strings.properties"), "#Tue\nifAlias=core uplink\n");
    writeTree(w.src, { "node/new.txt": "one\ntwo\nthree" });
    const r = await runRrdsync(["--once", "--config", cfg]);
    expect(r.code).toBe(0);
    const got = newEntries(w, before);
    expect(got).toContain(
      "File: node/notes.txt\nChanges:\n--- before\n+++ after\n@@ -1,4 +1,4 @@\n a\n \n-b\n+B\n c\n" + "-".repeat(80) + "\n",
    );
    // a properties file: the keys that changed, then the diff
    expect(got).toContain('File: node/strings.properties\nChanges:\nifAlias: "uplink" → "core uplink"\n--- before\n+++ after\n');
    expect(got).toContain("File: node/new.txt\nChanges:\nNew file created with 3 lines.\n");
    expect(readFileSync(join(w.dest, "node/notes.txt"), "utf8")).toBe("a\n\nB\nc\n");
    // the backup now holds the new version, for the next diff
    expect((await runRrdsync(["restore", "node/notes.txt", "--config", w.configPath])).stdout).toBe("a\n\nB\nc\n");
  });

  test("a text file that only grew is logged as its appended lines", async () => {
    const w = world();
    writeTree(w.src, { "log.txt": "l1\nl2\nl3\nl4\n" });
    const cfg = w.writeConfig();
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    const before = w.changes();
    appendFileSync(join(w.src, "log.txt"), "l5\n");
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    expect(newEntries(w, before)).toBe("File: log.txt\nChanges:\n--- before\n+++ after\n@@ -4,0 +5,1 @@\n+l5\n" + "-".repeat(80) + "\n");
  });

  test("a binary change is noted with sizes and sha256 before → after", async () => {
    const w = world();
    const v1 = fakeBinary(4096, 3);
    writeTree(w.src, { "a.bin": v1 });
    const cfg = w.writeConfig();
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    const before = w.changes();
    const v2 = fakeBinary(4100, 4);
    writeFileSync(join(w.src, "a.bin"), v2);
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    const sha = (b: Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest("hex");
    expect(newEntries(w, before)).toBe(
      `File: a.bin\nChanges:\nBinary file modified.\nSize: 4096 → 4100 bytes\nSHA256: ${sha(v1)} → ${sha(v2)}\n` + "-".repeat(80) + "\n",
    );
    expect(readFileSync(join(w.dest, "a.bin"))).toEqual(Buffer.from(v2));
  });

  test("sizes 0 B to several write chunks arrive byte for byte, with their mode and mtime (whole seconds)", async () => {
    const w = world();
    const big = fakeBinary(9 * 1024 * 1024 + 3, 11); // > 32 writes of 255 KiB: the multi-chunk path
    writeTree(w.src, { "empty.bin": "", "one.bin": "x", "chunk.bin": fakeBinary(261_120, 12), "big.bin": big });
    chmodSync(join(w.src, "one.bin"), 0o640);
    chmodSync(join(w.src, "big.bin"), 0o755);
    const mtime = Math.floor(Date.now() / 1000) - 86_400;
    utimesSync(join(w.src, "big.bin"), mtime, mtime + 0.5);
    const r = await runRrdsync(["--once", "--config", w.writeConfig()]);
    expect({ code: r.code, err: r.stderr }).toEqual({ code: 0, err: "" });
    expect(readTree(w.dest)).toEqual(readTree(w.src));
    expect(statSync(join(w.dest, "one.bin")).mode & 0o777).toBe(0o640);
    expect(statSync(join(w.dest, "big.bin")).mode & 0o777).toBe(0o755);
    expect(Math.floor(statSync(join(w.dest, "big.bin")).mtimeMs / 1000)).toBe(mtime);
  });

  test("a reader on the standby sees the old file or the new one whole, never half of one", async () => {
    const w = world();
    const v1 = fakeBinary(16 * 1024 * 1024, 21);
    const v2 = fakeBinary(16 * 1024 * 1024, 22);
    writeTree(w.src, { "big.bin": v1 });
    const cfg = w.writeConfig();
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    writeTree(w.src, { "big.bin": v2 });
    const run = runRrdsync(["--once", "--config", cfg]);
    let done = false;
    void run.then(() => {
      done = true;
    });
    const seen = new Set<string>();
    const a = Buffer.from(v1);
    const b = Buffer.from(v2);
    while (!done) {
      const now = readFileSync(join(w.dest, "big.bin"));
      seen.add(now.equals(a) ? "v1" : now.equals(b) ? "v2" : `torn (${now.length} B)`);
      await Bun.sleep(1);
    }
    expect((await run).code).toBe(0);
    expect([...seen].filter((s) => s.startsWith("torn"))).toEqual([]);
    expect(readFileSync(join(w.dest, "big.bin")).equals(b)).toBe(true);
    expect(readdirSync(w.dest)).toEqual(["big.bin"]); // no temporary file left behind
  });

  test("file names with spaces, newlines, quotes, a leading '-', backslashes and unicode arrive intact", async () => {
    const w = world();
    const names = ["with space.txt", "new\nline.txt", "quote\"d'.txt", "-rf.txt", "--delete.txt", "back\\slash\\#012.txt", "ünï 日本.txt", "dir with space/-x/ü.bin"];
    writeTree(w.src, Object.fromEntries(names.map((n, i) => [n, `content ${i}\n`])));
    const cfg = w.writeConfig();
    const r = await runRrdsync(["--once", "--config", cfg]);
    expect(r.code).toBe(0);
    expect(readTree(w.dest)).toEqual(readTree(w.src));
    expect(dbRows(w)).toBe(names.length);
    // an entry never spans a fake line: the newline name is quoted
    expect(w.changes()).toContain('File: "new\\nline.txt"\n');
  });

  test("symlinks are never followed out of the tree (nor at all)", async () => {
    const w = world();
    const outside = join(w.dir, "outside");
    mkdirSync(outside);
    writeFileSync(join(outside, "secret.txt"), "secret\n");
    writeTree(w.src, { "ok.txt": "ok\n" });
    symlinkSync(join(outside, "secret.txt"), join(w.src, "leak.txt"));
    symlinkSync(outside, join(w.src, "leakdir"));
    const cfg = w.writeConfig();
    const r = await runRrdsync(["--once", "--config", cfg]);
    expect(r.code).toBe(0);
    expect([...readTree(w.dest).keys()]).toEqual(["ok.txt"]);
    expect(w.changes()).not.toContain("secret");
    expect(existsSync(join(w.backupDir, "leakdir"))).toBe(false);
  });

  test("sshd down: exit 1, nothing advanced; after a restart the rerun syncs everything", async () => {
    const w = world();
    writeTree(w.src, { "a.txt": "a\n", "b/c.bin": fakeBinary(1000, 5) });
    const cfg = w.writeConfig();
    await suite.sshd().stop();
    const r1 = await runRrdsync(["--once", "--config", cfg]);
    expect(r1.code).toBe(1);
    expect(r1.stderr).toMatch(/cannot connect/);
    expect(r1.stderr).toMatch(/2 files stay pending/);
    expect(dbRows(w)).toBe(0);
    expect(w.changes()).toBe("");
    expect(readTree(w.dest).size).toBe(0);
    await suite.sshd().start();
    const r2 = await runRrdsync(["--once", "--config", cfg]);
    expect(r2.code).toBe(0);
    expect(readTree(w.dest)).toEqual(readTree(w.src));
    expect(dbRows(w)).toBe(2);
  });

  test("an unknown host key is refused: exit 1, nothing written, and the message says how to fix it", async () => {
    const w = world();
    writeTree(w.src, { "a.txt": "a\n" });
    const bad = await wrongKnownHosts(suite.sshd());
    const cfg = w.writeConfig({
      remote_sync: {
        remote_user: suite.sshd().user, remote_host: suite.sshd().host, port: suite.sshd().port, remote_dest_dir: w.dest,
        ssh_key_path: suite.sshd().clientKey, known_hosts_file: bad, transport: TRANSPORT,
      },
    });
    const r = await runRrdsync(["--once", "--config", cfg]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/host key/i);
    expect(r.stderr).toContain("ssh-keyscan");
    expect(readTree(w.dest).size).toBe(0);
    expect(dbRows(w)).toBe(0);
  });

  test("the seed's JSON state is imported (kept as a backup): synced files are not re-sent, newer ones are", async () => {
    const w = world();
    writeTree(w.src, { "old.bin": fakeBinary(100, 6), "changed.txt": "v2\n", "new.txt": "n\n" });
    const mtime = (p: string) => statSync(join(w.src, p)).mtimeMs / 1000; // what Python's os.path.getmtime gives
    mkdirSync(join(w.dir, "state"), { recursive: true });
    const seed = JSON.stringify({ "old.bin": mtime("old.bin"), "changed.txt": mtime("changed.txt") - 100 }, null, 4);
    writeFileSync(w.stateFile, seed);
    const cfg = w.writeConfig();
    const r = await runRrdsync(["--once", "--config", cfg]);
    expect(r.code).toBe(0);
    expect(readFileSync(`${w.stateFile}.seed.json`, "utf8")).toBe(seed);
    // old.bin was synced by the seed: adopted, not sent; the others were sent
    expect([...readTree(w.dest).keys()].sort()).toEqual(["changed.txt", "new.txt"]);
    expect(dbRows(w)).toBe(3);
    expect(r.stderr).toContain("imported 2 entries");
  });

  test("the lock is the kernel's: a pid left in the lock file never blocks, a running rrdsync does (exit 3 naming it), kill -9 frees it", async () => {
    const w = world();
    writeTree(w.src, { "a.txt": "a\n" });
    const cfg = w.writeConfig();
    mkdirSync(join(w.dir, "state"), { recursive: true });
    // After a reboot the pid in a dead run's lock file belongs to some other process: it must not count.
    const unrelated = Bun.spawn(["sleep", "30"]);
    try {
      writeFileSync(`${w.stateFile}.lock`, `${unrelated.pid}\n`);
      const st = await runRrdsync(["status", "--json", "--config", cfg]);
      expect(JSON.parse(st.stdout).running).toBe(null);
      const r = await runRrdsync(["--once", "--config", cfg]);
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
      expect(existsSync(`${w.stateFile}.lock`)).toBe(false); // released at the end
    } finally {
      unrelated.kill();
      await unrelated.exited;
    }
    const d = suite.daemon(["--config", w.writeConfig({ rescan_interval: 0 })]);
    await d.waitFor((e) => e.event === "pass", 30_000, "the daemon's initial pass");
    const held = await runRrdsync(["--once", "--config", cfg]);
    expect(held.code).toBe(3);
    expect(held.stderr).toContain(`another rrdsync (pid ${d.proc.pid}) is running`);
    const st = await runRrdsync(["status", "--config", cfg]);
    expect(st.stdout).toContain(`running       yes, pid ${d.proc.pid}`);
    await d.stop("SIGKILL");
    expect(readFileSync(`${w.stateFile}.lock`, "utf8")).toBe(`${d.proc.pid}\n`); // left behind, but no longer locked
    expect((await runRrdsync(["status", "--config", cfg])).stdout).toContain("no rrdsync running for this state file");
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
  });

  test("the log file is written in the seed's format", async () => {
    const w = world();
    writeTree(w.src, { "a.txt": "a\n" });
    const cfg = w.writeConfig();
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    const log = readFileSync(w.logFile, "utf8");
    expect(log).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - INFO - pass started: /m);
    expect(log).toMatch(/ - INFO - pass finished: 1 files/m);
  });
});

describe("first sync and rsync's quick check", () => {
  test("a settled tree goes as one whole-tree rsync run, confirmed without listing files", async () => {
    const w = world();
    const files: Record<string, Uint8Array | string> = { "ds.properties": "a=b\n" };
    for (let i = 0; i < 50; i++) files[`snmp/${i % 5}/if${i}.bin`] = fakeBinary(2000, i + 1);
    writeTree(w.src, files);
    await Bun.sleep(2200); // older than the ctime margin: the run's own walk surely saw them
    const r = await runRrdsync(["--once", "--config", w.writeConfig()]);
    expect(r.code).toBe(0);
    expect(readTree(w.dest)).toEqual(readTree(w.src));
    const log = readFileSync(w.logFile, "utf8");
    expect(log).toContain("(whole tree)");
    expect(log).not.toContain("resent in list batches");
    expect(dbRows(w)).toBe(51);
    expect(w.changes().match(/^File: /gm)?.length).toBe(51);
  });

  test("a file rewritten within the same second at the same size is still sent (rsync compares whole seconds)", async () => {
    const w = world();
    writeTree(w.src, { "x.bin": fakeBinary(1000, 1) });
    const p = join(w.src, "x.bin");
    const sec = Math.floor(Date.now() / 1000) - 10;
    utimesSync(p, sec, sec + 0.25);
    const cfg = w.writeConfig();
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    writeFileSync(p, fakeBinary(1000, 2));
    utimesSync(p, sec, sec + 0.5);
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    expect(readFileSync(join(w.dest, "x.bin")).equals(Buffer.from(fakeBinary(1000, 2)))).toBe(true);
  });
});

describe("config errors exit 2 with the key's path and nothing done", () => {
  test.each([
    ["port not a number", { remote_sync: { remote_host: "127.0.0.1", remote_dest_dir: "/tmp/x", port: "abc" } }, /remote_sync\.port: expected an integer 1–65535, got "abc"/],
    ["relative source_dir", { source_dir: "relative/dir" }, /source_dir: .*absolute/],
    ["missing remote_dest_dir", { remote_sync: { remote_host: "h" } }, /remote_sync\.remote_dest_dir/],
    ["boolean as string", { rsync_options: { archive: "true" } }, /rsync_options\.archive: expected true or false, got "true"/],
    ["bad log level", { logging: { log_level: "LOUD" } }, /logging\.log_level/],
  ])("%s", async (_name, over, want) => {
    const w = world();
    const cfg = w.writeConfig(over);
    const r = await runRrdsync(["--once", "--config", cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(want);
    expect(r.stderr).not.toContain("    at "); // no stack trace for a user error
    expect(existsSync(w.stateFile)).toBe(false);
  });

  test("missing source_dir, invalid JSON, missing config file, unknown option", async () => {
    const w = world();
    writeFileSync(w.configPath, JSON.stringify({ remote_sync: { remote_dest_dir: w.dest } }));
    let r = await runRrdsync(["--once", "--config", w.configPath]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("source_dir");
    writeFileSync(w.configPath, '{\n  "source_dir": "/tmp",\n}\n');
    r = await runRrdsync(["--once", "--config", w.configPath]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/config\.json:\d+:\d+: invalid JSON/);
    r = await runRrdsync(["--once", "--config", join(w.dir, "nope.json")]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("nope.json");
    r = await runRrdsync(["--once", "--frobnicate"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("frobnicate");
  });

  test("an unknown key warns with its path and the run goes on", async () => {
    const w = world();
    writeTree(w.src, { "a.txt": "a\n" });
    const cfg = w.writeConfig({ debounce_tme: 3 });
    const r = await runRrdsync(["--once", "--config", cfg]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/debounce_tme: unknown key.*debounce_time/);
  });

  test("the seed's own sample config (with its # comment) loads verbatim", async () => {
    const w = world();
    const sample = readFileSync(join(import.meta.dir, "../../fixtures/seed-config.json"), "utf8");
    const text = sample.replaceAll("/opt/opennms/rrd_data_move/snmp/1/opennms-jvm/", `${w.src}/`).replaceAll("/opt/opennms/rrd_data_move/", `${w.dir}/`)
      .replace('"192.168.29.153"', '""');
    writeFileSync(w.configPath, text);
    writeTree(w.src, { "a.txt": "a\n" });
    const r = await runRrdsync(["--once", "--config", w.configPath]);
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
  });
});

describe("cli", () => {
  test("--help lists the options and the exit-code table; --version prints the version", async () => {
    const h = await runRrdsync(["--help"]);
    expect(h.code).toBe(0);
    for (const s of ["--once", "--config", "--source", "--dest", "Exit codes", "another rrdsync"]) expect(h.stdout).toContain(s);
    const v = await runRrdsync(["--version"]);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/\d+\.\d+\.\d+/);
  });

  test("--source/--dest with a local destination need no config and no server", async () => {
    const w = world();
    writeTree(w.src, { "a.rrd": makeRrd(["x"], "GAUGE", 1700000000, seededRandom(9), [["AVERAGE", 1, 10]]), "d/b.txt": "b\n" });
    const r = await runRrdsync(["--once", "--source", w.src, "--dest", w.dest, "--state", w.stateFile]);
    expect(r.code).toBe(0);
    expect(readTree(w.dest)).toEqual(readTree(w.src));
  });

  test("a file that fails on the destination stays pending (exit 1, named); the others advance", async () => {
    const w = world();
    writeTree(w.src, { "good.txt": "g\n", "bad.txt": "b\n" });
    // a non-empty directory where the file must go: the receiver cannot replace it
    writeTree(w.dest, { "bad.txt/keep": "x" });
    const cfg = w.writeConfig();
    const r = await runRrdsync(["--once", "--config", cfg]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("bad.txt");
    expect(readFileSync(join(w.dest, "good.txt"), "utf8")).toBe("g\n");
    expect(dbRows(w)).toBe(1);
    chmodSync(w.dest, 0o755);
  });
});
