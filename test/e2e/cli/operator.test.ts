// End to end, the operator's commands against the sshd fixture: install (from the lone binary), init, check (healthy and broken),
// status, log (filters, --json, --stat), retention (backup versions, change-log rotation) and restore.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { Database } from "bun:sqlite";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { compiledBinary } from "../../helpers/binary.ts";
import { e2eSuite } from "../../helpers/suite.ts";
import { rrdsyncCommand, runRrdsync, TRANSPORT, type World, writeTree } from "../../helpers/world.ts";

setDefaultTimeout(120_000);

const suite = e2eSuite("ops");

async function run(bin: string, args: string[], env: Record<string, string> = {}, cwd?: string): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn([bin, ...args], { stdout: "pipe", stderr: "pipe", stdin: "ignore", cwd, env: { ...process.env, NO_COLOR: "1", ...env } });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out, err };
}

const stamp = () => new Date().toISOString().replace("T", " ").slice(0, 23) + "Z"; // what --at accepts, in UTC

describe("a new user, from the README: install, init, check, --once, status, log, restore", () => {
  test("each step works with the installed binary", async () => {
    const w = suite.world();
    const sshd = suite.sshd();
    const root = join(w.dir, "root");
    // A machine with only the binary: it alone in an empty directory, run from there, no Bun on the PATH.
    const lone = join(w.dir, "download");
    mkdirSync(lone);
    const exe = join(lone, "rrdsync-0.2.0-linux-x64");
    copyFileSync(compiledBinary(), exe);
    const onlyBinary = { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" };
    const paths = [
      "--prefix", `${root}/usr/local`, "--etc", `${root}/etc/rrdsync`, "--state-dir", `${root}/var/lib/rrdsync`,
      "--log-dir", `${root}/var/log/rrdsync`, "--systemd-dir", `${root}/systemd`, "--logrotate-dir", `${root}/logrotate.d`,
    ];
    const bin = `${root}/usr/local/bin/rrdsync`;
    const config = `${root}/etc/rrdsync/config.json`;
    const dry = await run(exe, ["install", "--dry-run", ...paths], onlyBinary, lone);
    expect(dry.code).toBe(0);
    expect(dry.out).toContain(`would install ${bin} (rrdsync 0.2.0 (`);
    expect(existsSync(root)).toBe(false); // a dry run writes nothing
    const inst = await run(exe, ["install", ...paths, "--source", w.src, "--dest", `${sshd.user}@127.0.0.1:${w.dest}`], onlyBinary, lone);
    expect({ code: inst.code, err: inst.err }).toEqual({ code: 0, err: "" });
    expect(inst.out).toContain(`*/5 * * * * root ${bin} --once --quiet --config ${config}`);
    expect(inst.out).toContain(`${bin} check --config ${config}`);
    expect(inst.out).toContain("systemctl enable --now rrdsync");
    const unit = readFileSync(`${root}/systemd/rrdsync.service`, "utf8");
    expect(unit).toContain(`\nExecStart=${bin} --watch --config ${config}\n`);
    expect(unit).toContain(`\nReadWritePaths=${root}/var/lib/rrdsync ${root}/var/log/rrdsync\n`);
    expect(readFileSync(`${root}/logrotate.d/rrdsync`, "utf8")).toContain(`${root}/var/log/rrdsync/rrdsync.log ${root}/var/log/rrdsync/change_log.txt {`);
    expect((await run(bin, ["--version"])).out).toBe((await run(exe, ["--version"])).out);

    // install wrote a starter config with the source and standby given; init never writes over it
    expect((await run(bin, ["init", "--config", config])).code).toBe(2);
    expect(readFileSync(config, "utf8")).toContain(`"state_file": "${root}/var/lib/rrdsync/state.db"`);
    // the user edits remote_sync (port, key, known_hosts) as the starter config's comments say; its comments stay
    const text = readFileSync(config, "utf8")
      .replace('"port": 22', `"port": ${sshd.port}`)
      .replace(/"ssh_key_path": "[^"]*"/, `"ssh_key_path": ${JSON.stringify(sshd.clientKey)}`)
      .replace(/"known_hosts_file": "[^"]*"/, `"known_hosts_file": ${JSON.stringify(sshd.knownHosts)}`)
      .replace('"transport": "rsync"', `"transport": "${TRANSPORT}"`);
    writeFileSync(config, text);
    expect(text).toContain("# Host keys are always verified");

    const check = await run(bin, ["check", "--config", config]);
    expect({ code: check.code, out: check.out }).toEqual({ code: 0, out: expect.stringContaining("all checks passed") });
    const rsyncOnly = ["rsync (here)", "rsync (standby)"];
    for (const label of ["config", "source", "ssh key", "host key", "ssh login", "transport", "destination", "inotify", ...rsyncOnly]) {
      if (TRANSPORT === "sftp" && rsyncOnly.includes(label)) expect(check.out).not.toContain(`${label}: `);
      else expect(check.out).toContain(`✓ ${label}: `);
    }
    expect(check.out).toContain(`✓ transport: ${TRANSPORT}`);

    writeTree(w.src, { "snmp/1/ds.properties": "ifAlias=uplink\n", "snmp/1/if.txt": "one\n" });
    expect((await run(bin, ["--once", "--config", config])).code).toBe(0);
    const first = stamp();
    await Bun.sleep(20);
    writeTree(w.src, { "snmp/1/ds.properties": "ifAlias=core uplink\n" });
    expect((await run(bin, ["--once", "--config", config])).code).toBe(0);
    expect(readFileSync(join(w.dest, "snmp/1/ds.properties"), "utf8")).toBe("ifAlias=core uplink\n");

    const status = await run(bin, ["status", "--config", config]);
    expect(status.code).toBe(0);
    expect(status.out).toMatch(/files tracked +2\n/);
    expect(status.out).toMatch(/pending +0\n/);
    expect(status.out).toContain("reachable");
    const js = JSON.parse((await run(bin, ["status", "--json", "--config", config])).out);
    expect([js.files, js.pending, js.reachable, js.running, js.lastPass.sent]).toEqual([2, 0, true, null, 1]);

    const log = await run(bin, ["log", "snmp/1/ds.properties", "--config", config]);
    expect(log.out).toContain('ifAlias: "uplink" → "core uplink"\n--- before\n+++ after\n@@ -1,1 +1,1 @@\n-ifAlias=uplink\n+ifAlias=core uplink\n');

    const restored = await run(bin, ["restore", "snmp/1/ds.properties", "--at", first, "--config", config]);
    expect({ code: restored.code, out: restored.out }).toEqual({ code: 0, out: "ifAlias=uplink\n" });

    // uninstall removes the binary, the unit and the snippet; the config, the state and the logs stay
    const un = await run(bin, ["uninstall", "--etc", `${root}/etc/rrdsync`], onlyBinary);
    expect({ code: un.code, err: un.err }).toEqual({ code: 0, err: "" });
    for (const gone of [bin, `${root}/systemd/rrdsync.service`, `${root}/logrotate.d/rrdsync`]) expect(existsSync(gone)).toBe(false);
    for (const kept of [config, `${root}/var/lib/rrdsync`, `${root}/var/log/rrdsync`]) expect(existsSync(kept)).toBe(true);
  });
});

describe("rrdsync check on broken setups: the ✗ line and its fix", () => {
  async function check(w: World, over: Record<string, unknown> = {}) {
    const r = await runRrdsync(["check", "--config", w.writeConfig(over)]);
    return { ...r, fails: r.stdout.split("\n").filter((l) => l.startsWith("✗")) };
  }
  const remote = (w: World, extra: Record<string, unknown>) => {
    const s = suite.sshd();
    return { remote_sync: { remote_user: s.user, remote_host: s.host, port: s.port, remote_dest_dir: w.dest, ssh_key_path: s.clientKey, known_hosts_file: s.knownHosts, transport: TRANSPORT, ...extra } };
  };

  test("a key readable by others", async () => {
    const w = suite.world();
    const key = join(w.dir, "loose_key");
    copyFileSync(suite.sshd().clientKey, key);
    chmodSync(key, 0o644);
    const r = await check(w, remote(w, { ssh_key_path: key }));
    expect(r.stdout).toContain(`fix: chmod 600 ${key}`);
    if (TRANSPORT === "sftp") {
      // the built-in client still logs in with it: a warning, not a failure
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`! ssh key: ${key} is accessible by others (mode 644)`);
      return;
    }
    expect(r.code).toBe(1);
    // …and therefore the login fails too, pointing back at the key
    expect(r.fails).toEqual([`✗ ssh key: ${key} is accessible by others (mode 644): ssh refuses such keys`, `✗ ssh login: ${suite.sshd().user}@127.0.0.1: Permission denied (publickey).`]);
    expect(r.stdout).toContain(`fix: chmod 600 ${key}`);
    expect(r.stdout).toContain("fix: fix the ssh key first (above)");
  });

  test("a host key missing from known_hosts", async () => {
    const w = suite.world();
    const empty = join(w.dir, "known_hosts");
    writeFileSync(empty, "");
    const r = await check(w, remote(w, { known_hosts_file: empty }));
    expect(r.code).toBe(1);
    expect(r.fails).toEqual([`✗ host key: [127.0.0.1]:${suite.sshd().port} is not in ${empty} (host keys are never accepted blindly)`]);
    expect(r.stdout).toContain(`fix: ssh-keyscan -p ${suite.sshd().port} 127.0.0.1 >> ${empty}`);
  });

  test("sshd down", async () => {
    const w = suite.world();
    await suite.sshd().stop();
    const r = await check(w);
    expect(r.code).toBe(1);
    expect(r.fails.length).toBe(1);
    expect(r.fails[0]).toMatch(/^✗ ssh login: .*Connection refused/);
    expect(r.stdout).toContain("is sshd running on 127.0.0.1");
  });

  test("a destination that cannot be created", async () => {
    const w = suite.world();
    writeFileSync(join(w.dir, "a-file"), "x");
    const r = await check(w, remote(w, { remote_dest_dir: join(w.dir, "a-file", "dest") }));
    expect(r.code).toBe(1);
    expect(r.fails).toHaveLength(1);
    expect(r.fails[0]).toStartWith(`✗ destination: ${join(w.dir, "a-file", "dest")} on the standby is not writable: ${TRANSPORT === "sftp" ? "" : "mkdir:"}`);
    expect(r.stdout).toContain("fix: on the standby: mkdir -p");
  });

  test("a destination that refuses writes says why (immutable, read-only mount), not mkdir/chown", async () => {
    const w = suite.world();
    if (Bun.spawnSync(["chattr", "+i", w.dest]).exitCode !== 0) return; // no immutable flag on this file system
    try {
      const r = await check(w, remote(w, {}));
      expect(r.code).toBe(1);
      expect(r.fails).toEqual([expect.stringMatching(new RegExp(`^✗ destination: ${w.dest} on the standby is not writable: .*(operation not permitted|permission denied)`, "i"))]);
      // SFTP says "permission denied" for an immutable directory too: it names both causes
      expect(r.stdout).toContain(TRANSPORT === "sftp" ? `lsattr -d ${w.dest}` : `fix: on the standby: ${w.dest} (or a directory above it) is immutable or append-only: lsattr -d ${w.dest}`);
    } finally {
      Bun.spawnSync(["chattr", "-i", w.dest]);
    }
    const ro = join(w.dir, "ro");
    mkdirSync(ro);
    if (Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", ro]).exitCode !== 0) return; // not allowed here
    try {
      const r = await check(w, remote(w, { remote_dest_dir: ro }));
      expect(r.code).toBe(1);
      expect(r.fails).toEqual([expect.stringMatching(new RegExp(`^✗ destination: ${ro} on the standby is not writable`))]);
      // SFTP names the cause as the server words it ("a read-only file system", or its errno text); the fix is the same
      if (TRANSPORT === "sftp") expect(r.stdout).toMatch(/read-only file system/i);
      else expect(r.stdout).toContain(`the file system holding ${ro} is mounted read-only: remount it read-write`);
      expect(r.stdout).not.toContain("chown");
    } finally {
      Bun.spawnSync(["umount", ro]);
    }
  });
});

describe("status, log and retention", () => {
  test("the change history's retention: keep_history prunes old entries, log says where the kept history begins, status and check show it; restore still works", async () => {
    const w = suite.world();
    writeTree(w.src, { "a.txt": "a\n", "b.txt": "b\n" });
    const ct = { backup_dir: w.backupDir, change_log_file: w.changeLog };
    const cfg = w.writeConfig({ change_tracking: { ...ct, keep_history: 0.00002 } }); // 1.7 s
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    await Bun.sleep(2000);
    writeTree(w.src, { "a.txt": "a\nmore\n" });
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0); // prunes the first run's entries at its end
    const log = await runRrdsync(["log", "--stat", "--config", cfg]);
    expect(log.code).toBe(0);
    expect(log.stdout.trim().split("\n")).toHaveLength(1);
    expect(log.stdout).toContain("text modified    a.txt");
    expect(log.stderr).toMatch(/^rrdsync: the history kept begins at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d; older changes were pruned \(keep_history 0.00002 days, max_history_bytes 1.0 GiB\)\n$/);
    expect((await runRrdsync(["log", "--json", "--config", cfg])).stderr).toBe(""); // --json: the entries only
    const st = await runRrdsync(["status", "--config", cfg]);
    expect(st.stdout).toMatch(/history +\d+ B, from \d{4}-\d\d-\d\d \d\d:\d\d:\d\d to \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(older pruned\); state DB [\d.]+ KiB/);
    const json = JSON.parse((await runRrdsync(["status", "--json", "--config", cfg])).stdout);
    expect(json.history.prunedBefore).not.toBeNull();
    const check = await runRrdsync(["check", "--config", cfg]);
    expect(check.stdout).toMatch(/✓ history: \d+ B, from .* \(keep_history 0.00002 d, max_history_bytes 1.0 GiB\)/);
    // the backups are not the history: b.txt's copy (its entry pruned) is still restorable
    expect((await runRrdsync(["restore", "b.txt", "--config", cfg])).stdout).toBe("b\n");
  });

  test("status after the standby went down: exit 1, down since, the last error, the pending files", async () => {
    const w = suite.world();
    writeTree(w.src, { "a.txt": "a\n" });
    const cfg = w.writeConfig();
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    writeTree(w.src, { "a.txt": "a2\n", "b.txt": "b\n" });
    await suite.sshd().stop();
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(1);
    const r = await runRrdsync(["status", "--config", cfg]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/target +DOWN since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\n/);
    expect(r.stdout).toMatch(/pending +2: "a.txt" \(\d+ s\), "b.txt" \(\d+ s\)\n/);
    expect(r.stdout).toMatch(/last error +.*cannot connect/);
    await suite.sshd().start();
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    const ok = JSON.parse((await runRrdsync(["status", "--json", "--config", cfg])).stdout);
    expect([ok.pending, ok.reachable, ok.downSince, ok.files]).toEqual([0, true, null, 2]);
  });

  test("log: path, glob, --kind, --since/--until, --json, --stat", async () => {
    const w = suite.world();
    writeTree(w.src, { "n1/strings.properties": "a=1\n", "n1/x.txt": "x\n", "n2/strings.properties": "a=1\n" });
    const cfg = w.writeConfig();
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    await Bun.sleep(1100);
    const mid = new Date(Date.now() - 500).toISOString();
    writeTree(w.src, { "n1/strings.properties": "a=2\n" });
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    const paths = async (...args: string[]) => (await runRrdsync(["log", "--json", "--config", cfg, ...args])).stdout.trim().split("\n").filter(Boolean).map((l) => {
      const e = JSON.parse(l);
      return `${e.kind} ${e.path}`;
    });
    expect(await paths()).toEqual(["text created n1/strings.properties", "text created n1/x.txt", "text created n2/strings.properties", "text modified n1/strings.properties"]);
    expect(await paths("n1")).toEqual(["text created n1/strings.properties", "text created n1/x.txt", "text modified n1/strings.properties"]);
    expect(await paths("*/strings.properties", "--kind", "created")).toEqual(["text created n1/strings.properties", "text created n2/strings.properties"]);
    expect(await paths("--since", mid)).toEqual(["text modified n1/strings.properties"]);
    expect(await paths("--until", mid)).toHaveLength(3);
    const one = JSON.parse((await runRrdsync(["log", "--json", "--kind", "modified", "--config", cfg])).stdout);
    expect(one).toMatchObject({ path: "n1/strings.properties", added: 1, removed: 1, summary: "+1 −1 lines, 1 key changed" });
    expect(one.details).toContain('a: "1" → "2"');
    const stat = await runRrdsync(["log", "--stat", "--kind", "modified", "--config", cfg]);
    expect(stat.stdout).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +\+1 +−1 +text modified +n1\/strings\.properties +\+1 −1 lines, 1 key changed\n$/);
    const bad = await runRrdsync(["log", "--kind", "moved", "--config", cfg]);
    expect([bad.code, bad.stderr]).toEqual([2, 'rrdsync: --kind "moved": not a kind of change\n  hint: use one of created, modified, deleted, renamed, repaired, summary, stale, resumed, conflict, overwritten, kept, merged\n']);
  });

  test("log streams: `log | head -1` on a history of 300,000 changes exits 0 at once, in bounded memory", async () => {
    const w = suite.world();
    const files: Record<string, string> = {};
    for (let i = 0; i < 300; i++) files[`snmp/${i % 30}/r${i}/strings.properties`] = `ifAlias=${i}\n`;
    writeTree(w.src, files);
    const cfg = w.writeConfig({ change_tracking: { backup_dir: w.backupDir, change_log_file: w.changeLog, first_sync_entries: "summary" } });
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    // a long history: the first sync's 300 rows, copied 1,000 times over (later ids, same files)
    const db = new Database(w.stateFile);
    db.exec("CREATE TEMP TABLE one AS SELECT * FROM changes");
    const span = (db.query("SELECT max(id) - min(id) + 1 AS n FROM changes").get() as { n: number }).n;
    const copy = db.query("INSERT INTO changes SELECT id + ?, dir, name, kind, summary, details, added, removed, head FROM temp.one");
    db.transaction(() => {
      for (let k = 1; k < 1000; k++) copy.run(k * span);
    })();
    expect((db.query("SELECT count(*) AS n FROM changes").get() as { n: number }).n).toBe(300_000);
    db.close();
    const out = join(w.dir, "time.txt");
    const time = existsSync("/usr/bin/time"); // GNU time reads the peak RSS; without it only the time is checked
    const t0 = performance.now();
    const script = `cfg=$1 out=$2; shift 2; ${time ? '/usr/bin/time -f "%M" -o "$out" ' : ""}"$@" log --config "$cfg" | head -1; echo "exit \${PIPESTATUS[0]}"`;
    const r = Bun.spawnSync(["bash", "-c", script, "bash", cfg, out, ...rrdsyncCommand()], { env: { ...process.env, NO_COLOR: "1" } });
    const seconds = (performance.now() - t0) / 1000;
    expect(r.stdout.toString()).toMatch(/^Timestamp: .*\nexit 0\n$/);
    expect(r.stderr.toString()).toBe("");
    expect(seconds).toBeLessThan(2); // loading the whole history took 3.5 s and 600 MB here
    if (time) expect(Number(readFileSync(out, "utf8").trim().split("\n").at(-1)) / 1024).toBeLessThan(150); // MiB
    // and a query by directory is an index lookup, not a scan of the history
    const t1 = performance.now();
    const dirLog = await runRrdsync(["log", "--stat", "snmp/7/r7", "--config", cfg]);
    expect(dirLog.stdout.trim().split("\n")).toHaveLength(1000);
    expect((performance.now() - t1) / 1000).toBeLessThan(2);
  });

  test("backup versions: keep_versions per file, restore of each kept version byte for byte, --list", async () => {
    const w = suite.world();
    const cfg = w.writeConfig({ change_tracking: { backup_dir: w.backupDir, change_log_file: w.changeLog, keep_versions: 3 } });
    const at: string[] = [];
    for (let v = 1; v <= 5; v++) {
      writeTree(w.src, { "n/ds.properties": `v=${v}\n${"x".repeat(v)}\n` });
      expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
      at.push(new Date().toISOString());
      await Bun.sleep(15);
    }
    const list = await runRrdsync(["restore", "n/ds.properties", "--list", "--config", cfg]);
    expect(list.stdout.trim().split("\n")).toHaveLength(3);
    expect(list.stdout.split("\n")[0]).toContain("(current)");
    // small copies are kept in the state DB, not as files of a 4 KiB block each
    expect(existsSync(w.backupDir) ? readdirSync(w.backupDir).filter((n) => !n.startsWith(".rrdsync-")) : []).toEqual([]);
    for (const v of [3, 4, 5]) {
      const r = await runRrdsync(["restore", "n/ds.properties", "--at", at[v - 1] as string, "--config", cfg]);
      expect(r.stdout).toBe(`v=${v}\n${"x".repeat(v)}\n`);
    }
    const gone = await runRrdsync(["restore", "n/ds.properties", "--at", at[0] as string, "--config", cfg]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain("n/ds.properties: no version as of");
    const out = join(w.dir, "restored.properties");
    const r = await runRrdsync(["restore", join(w.src, "n/ds.properties"), "--at", at[3] as string, "--to", out, "--config", cfg]);
    expect(r.code).toBe(0);
    expect(readFileSync(out, "utf8")).toBe("v=4\nxxxx\n");
  });

  test("max_backup_bytes drops the oldest versions across files; the current copies stay", async () => {
    const w = suite.world();
    const cfg = w.writeConfig({ change_tracking: { backup_dir: w.backupDir, change_log_file: w.changeLog, keep_versions: 100, max_backup_bytes: 250 } });
    const at: string[] = [];
    for (let v = 1; v <= 4; v++) {
      writeTree(w.src, { "a.txt": `${v}${"a".repeat(99)}`, "b.txt": `${v}${"b".repeat(99)}` });
      expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
      at.push(new Date().toISOString());
      await Bun.sleep(5);
    }
    // 6 superseded copies of 100 bytes, 250 allowed: the newest two stay (one per file), beside the current ones
    for (const f of ["a.txt", "b.txt"]) {
      const list = await runRrdsync(["restore", f, "--list", "--config", cfg]);
      expect(list.stdout.trim().split("\n")).toHaveLength(2);
      expect((await runRrdsync(["restore", f, "--at", at[2] as string, "--config", cfg])).stdout).toBe(`3${f[0]?.repeat(99)}`);
      expect((await runRrdsync(["restore", f, "--at", at[1] as string, "--config", cfg])).code).toBe(1);
    }
    expect((await runRrdsync(["restore", "a.txt", "--config", cfg])).stdout).toBe(`4${"a".repeat(99)}`);
  });

  test("change-log rotation: past max_log_bytes it becomes .1.gz (keep_logs kept), also beside an external logrotate", async () => {
    const w = suite.world();
    const cfg = w.writeConfig({ change_tracking: { backup_dir: w.backupDir, change_log_file: w.changeLog, max_log_bytes: 300, keep_logs: 2 } });
    for (let v = 1; v <= 5; v++) {
      writeTree(w.src, { [`f${v}.txt`]: `${v}\n` });
      expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    }
    const dir = join(w.dir, "state");
    const logs = readdirSync(dir).filter((n) => n.startsWith("change_log.txt")).sort();
    expect(logs).toEqual(["change_log.txt.1.gz", "change_log.txt.2.gz"].concat(existsSync(w.changeLog) ? ["change_log.txt"] : []).sort());
    for (const gz of ["change_log.txt.1.gz", "change_log.txt.2.gz"]) {
      const text = gunzipSync(readFileSync(join(dir, gz))).toString("utf8");
      expect(text).toMatch(/^Timestamp: /);
      expect(text.endsWith(`${"-".repeat(80)}\n`)).toBe(true);
    }
    // an external logrotate moved the file away: the next entries go to a new file, its copy is left alone
    if (existsSync(w.changeLog)) renameSync(w.changeLog, `${w.changeLog}.logrotate`);
    else writeFileSync(`${w.changeLog}.logrotate`, "");
    mkdirSync(dir, { recursive: true });
    writeTree(w.src, { "late.txt": "late\n" });
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    expect(readFileSync(w.changeLog, "utf8")).toContain("File: late.txt");
  });
});
