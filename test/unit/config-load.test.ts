import { expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseDest } from "../../src/config/dest.ts";
import { loadConfig } from "../../src/config/load.ts";
import { parseConfigText, stripJsonComments } from "../../src/config/read.ts";
import { ExitCode, UserError } from "../../src/errors.ts";

function sandbox() {
  const dir = mkdtempSync(join(tmpdir(), "rrdsync-cfg-"));
  const src = join(dir, "src");
  mkdirSync(src);
  const write = (obj: unknown) => {
    writeFileSync(join(dir, "config.json"), typeof obj === "string" ? obj : JSON.stringify(obj));
    return join(dir, "config.json");
  };
  const load = (obj: unknown, extra: Record<string, string> = {}) =>
    loadConfig({ configPath: write(obj), env: {}, cwd: dir, home: dir, ...extra });
  return { dir, src, write, load };
}

const message = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(UserError);
    expect((e as UserError).exitCode).toBe(ExitCode.Usage);
    return (e as Error).message;
  }
  throw new Error("expected an error");
};

test("comments: # and // outside strings are blanked, inside strings kept; positions stay", () => {
  const text = '{\n  "a": "x # y", # note\n  "b": "//z" // note\n}';
  const clean = stripJsonComments(text);
  expect(clean.length).toBe(text.length);
  expect(JSON.parse(clean)).toEqual({ a: "x # y", b: "//z" });
  expect(message(() => parseConfigText('{\n  "a": 1,\n}\n', "config.json"))).toMatch(/^config\.json:3:1: invalid JSON: trailing comma before \}/);
});

test("the seed's own sample config loads verbatim (with its # comment) and keeps its values", () => {
  const s = sandbox();
  const sample = readFileSync(join(import.meta.dir, "../fixtures/seed-config.json"), "utf8")
    .replaceAll("/opt/opennms/rrd_data_move/snmp/1/opennms-jvm/", `${s.src}/`)
    .replaceAll("/opt/opennms/rrd_data_move/", `${s.dir}/`)
    .replace('"192.168.29.153"', '""');
  const { config, warnings } = s.load(sample);
  expect(warnings).toEqual([]);
  expect(config.sourceDir).toBe(s.src);
  expect(config.stateFile).toBe(join(s.dir, "rrd_sync_new.json"));
  expect(config.rsync).toMatchObject({ compress: true, checksum: true, bwlimit: 1000, itemizeChanges: true });
  expect(config.debounceTime).toBe(5);
  expect(config.maxDelay).toBe(15);
  expect(config.monitoredExtensions).toEqual([".rrd", ".txt"]);
  expect(config.target.host).toBe("");
});

test("defaults: port 22, archive only, OpenNMS extensions; state DB, backups and change log all named by the (source, destination) pair", () => {
  const s = sandbox();
  const { config } = s.load({ source_dir: s.src, remote_sync: { remote_host: "standby", remote_dest_dir: "/rrd" } });
  expect(config.target).toMatchObject({ host: "standby", port: 22, knownHostsFile: join(s.dir, ".ssh/known_hosts") });
  expect(config.rsync).toMatchObject({ archive: true, compress: false, update: false, checksum: false, partial: false });
  expect(config.monitoredExtensions).toEqual([".rrd", ".jrb", ".txt", ".properties", ".meta"]);
  const id = /state-([0-9a-f]{12})\.db$/.exec(config.stateFile)?.[1];
  expect(config.stateFile).toBe(join(s.dir, `.local/state/rrdsync/state-${id}.db`));
  expect(config.changeTracking.backupDir).toBe(join(s.dir, `.local/state/rrdsync/backup-${id}`));
  expect(config.changeTracking.changeLogFile).toBe(join(s.dir, `.local/state/rrdsync/change_log-${id}.txt`));
  // another tree to the same standby: nothing of the first one's is shared
  const other = join(s.dir, "src2");
  mkdirSync(other);
  const c2 = s.load({ source_dir: other, remote_sync: { remote_host: "standby", remote_dest_dir: "/rrd" } }).config;
  for (const k of ["backupDir", "changeLogFile"] as const) expect(c2.changeTracking[k]).not.toBe(config.changeTracking[k]);
  expect(c2.stateFile).not.toBe(config.stateFile);
  // an explicit state_file keeps the documented layout beside it
  const c3 = s.load({ source_dir: s.src, state_file: join(s.dir, "st/state.db"), remote_sync: { remote_dest_dir: join(s.dir, "d") } }).config;
  expect([c3.changeTracking.backupDir, c3.changeTracking.changeLogFile]).toEqual([join(s.dir, "st/backup"), join(s.dir, "st/change_log.txt")]);
  expect(config.rescanInterval).toBe(3600);
});

test("errors name the file, the key path, what was found and what is expected", () => {
  const s = sandbox();
  const base = { source_dir: s.src, remote_sync: { remote_dest_dir: "/x" } };
  expect(message(() => s.load({ ...base, remote_sync: { remote_dest_dir: "/x", port: "abc" } }))).toContain(
    'remote_sync.port: expected an integer 1–65535, got "abc"',
  );
  expect(message(() => s.load({ ...base, rsync_options: { archive: "true" } }))).toContain('rsync_options.archive: expected true or false, got "true"');
  expect(message(() => s.load({ ...base, source_dir: "rel/dir" }))).toMatch(/source_dir: expected an absolute path, got "rel\/dir"/);
  expect(message(() => s.load({ ...base, source_dir: join(s.dir, "nope") }))).toMatch(/source_dir: .*does not exist/);
  expect(message(() => s.load({ ...base, remote_sync: { remote_host: "-oProxyCommand=x", remote_dest_dir: "/x" } }))).toMatch(/remote_host/);
  expect(message(() => s.load({ ...base, max_delay: 1, debounce_time: 5 }))).toMatch(/max_delay/);
  expect(message(() => loadConfig({ env: {}, cwd: s.dir, home: s.dir }))).toMatch(/no config file/);
});

test("unknown keys warn with their path and a suggestion; values are normalised", () => {
  const s = sandbox();
  const { config, warnings } = s.load({
    source_dir: `${s.src}/`, debounce_tme: 3, remote_sync: { remote_dest_dir: "~/replica/", prot: 2 },
    logging: { log_level: "warn" }, monitored_extensions: ["rrd", ".txt"],
  });
  expect(warnings).toEqual([
    expect.stringMatching(/debounce_tme: unknown key, ignored \(did you mean "debounce_time"\?\)/),
    expect.stringMatching(/remote_sync\.prot: unknown key, ignored \(did you mean "port"\?\)/),
  ]);
  expect(config.sourceDir).toBe(s.src);
  expect(config.target.destDir).toBe(join(s.dir, "replica"));
  expect(config.logging.logLevel).toBe("WARNING");
  expect(config.monitoredExtensions).toEqual([".rrd", ".txt"]);
});

test("--source/--dest need no config file; --dest forms", () => {
  const s = sandbox();
  const { config } = loadConfig({ source: s.src, dest: "rrd@standby:/opt/rrd", env: {}, cwd: s.dir, home: s.dir });
  expect(config.target).toMatchObject({ user: "rrd", host: "standby", destDir: "/opt/rrd" });
  expect(parseDest("[::1]:/p")).toEqual({ user: "", host: "::1", destDir: "/p" });
  expect(parseDest("/local/dir")).toEqual({ user: "", host: "", destDir: "/local/dir" });
  expect(message(() => parseDest("host:relative"))).toMatch(/must be absolute/);
});

test("targets never share state: duplicate names, state files or destinations, and unnamed twins on one standby, are exit 2 naming both", () => {
  const s = sandbox();
  const base = { source_dir: s.src, state_file: join(s.dir, "state.db"), remote_sync: { remote_host: "a", remote_dest_dir: "/rrd" } };
  // two unnamed targets on the same host and port would derive the same state DB
  expect(message(() => s.load({ ...base, targets: [{ remote_host: "b", remote_dest_dir: "/one" }, { remote_host: "b", remote_dest_dir: "/two" }] })))
    .toBe(`config.json: targets[0] and targets[1]: would share the state DB ${join(s.dir, "state.b_22.db")}`.replace("config.json", join(s.dir, "config.json")));
  // …with names they are apart
  const { config } = s.load({ ...base, targets: [{ name: "one", remote_host: "b", remote_dest_dir: "/one" }, { name: "two", remote_host: "b", remote_dest_dir: "/two" }] });
  expect(config.extraTargets.map((t) => t.stateFile)).toEqual([join(s.dir, "state.one.db"), join(s.dir, "state.two.db")]);
  expect(message(() => s.load({ ...base, targets: [{ name: "x", remote_host: "b", remote_dest_dir: "/1" }, { name: "x", remote_host: "c", remote_dest_dir: "/2" }] })))
    .toMatch(/targets\[0\]\.name and targets\[1\]\.name: are both "x"/);
  expect(message(() => s.load({ ...base, targets: [{ state_file: join(s.dir, "state.db"), remote_host: "b", remote_dest_dir: "/1" }] })))
    .toMatch(/remote_sync and targets\[0\]: would share the state DB/);
  // names that differ only in what a file name cannot hold end at one slug: caught the same way
  expect(message(() => s.load({ ...base, targets: [{ name: "dc 1", remote_host: "b", remote_dest_dir: "/1" }, { name: "dc/1", remote_host: "c", remote_dest_dir: "/2" }] })))
    .toMatch(/would share the state DB .*state\.dc_1\.db/);
  expect(message(() => s.load({ ...base, targets: [{ remote_host: "A", remote_dest_dir: "/rrd" }] }))).toMatch(/remote_sync and targets\[0\]: both replicate to @a:22:\/rrd/);
});

test("validation: destination vs source, extensions, bwlimit, ciphers, host names", () => {
  const s = sandbox();
  const base = { source_dir: s.src, remote_sync: { remote_dest_dir: join(s.dir, "dest") } };
  const local = (dest: string, src = s.src) => message(() => s.load({ ...base, source_dir: src, remote_sync: { remote_dest_dir: dest } }));
  expect(local(s.src)).toMatch(/remote_sync\.remote_dest_dir: .* is source_dir itself/);
  expect(local(join(s.src, "sub"))).toMatch(/is inside source_dir/);
  expect(local(s.dir)).toMatch(/holds source_dir/);
  expect(local("/")).toMatch(/is the root directory/);
  expect(local(join(s.dir, "x"), "/")).toMatch(/source_dir: "\/" is the whole file system/); // refused before any destination is compared
  // through a symlink too
  symlinkSync(s.src, join(s.dir, "link"));
  expect(local(join(s.dir, "link", "replica"))).toMatch(/is inside source_dir/);
  // a remote "/" may be an SFTP chroot: allowed with the SFTP transport only (rsync sees the standby's real root)
  expect(s.load({ ...base, remote_sync: { remote_host: "h", remote_dest_dir: "/", transport: "sftp" } }).config.target.destDir).toBe("/");
  expect(message(() => s.load({ ...base, remote_sync: { remote_host: "h", remote_dest_dir: "/" } }))).toMatch(/remote_dest_dir: "\/" is the standby's root directory/);
  for (const bad of ["*", ".", "a/b", ".rr\nd", "x\u0000", "*.rrd"]) {
    expect(message(() => s.load({ ...base, monitored_extensions: [".txt", bad] }))).toMatch(/monitored_extensions\[1\]: /);
  }
  try {
    s.load({ ...base, monitored_extensions: ["*.rrd"] });
  } catch (e) {
    expect((e as UserError).hint).toContain('write ".rrd"');
  }
  expect(s.load({ ...base, rsync_options: { bwlimit: 2147483647 } }).config.rsync.bwlimit).toBe(2147483647);
  expect(message(() => s.load({ ...base, rsync_options: { bwlimit: 2147483648 } }))).toMatch(/rsync_options\.bwlimit: expected an integer 0–2147483647/);
  for (const ok of ["", "aes128-ctr", "aes128-gcm@openssh.com,aes256-ctr", "+aes128-cbc", "^aes128-ctr"]) {
    expect(s.load({ ...base, remote_sync: { remote_host: "h", remote_dest_dir: "/r", ssh_ciphers: ok } }).config.target.sshCiphers).toBe(ok);
  }
  for (const bad of ["aes128-ctr, aes256-ctr", "aes128-ctr;x", "-oProxyCommand=x y", ","]) {
    expect(message(() => s.load({ ...base, remote_sync: { remote_host: "h", remote_dest_dir: "/r", ssh_ciphers: bad } }))).toMatch(/remote_sync\.ssh_ciphers: expected a comma-separated list/);
  }
  for (const ok of ["standby", "standby-1.example.org", "10.0.0.1", "::1", "[::1]", "fe80::1%eth0", "my_alias"]) {
    expect(s.load({ ...base, remote_sync: { remote_host: ok, remote_dest_dir: "/r" } }).config.target.host).toBe(ok.replace(/^\[|\]$/g, ""));
  }
  for (const bad of ["a/b", "h`id`", "h;x", "a b", "-oProxyCommand=x", "h\tx", "höst"]) {
    expect(message(() => s.load({ ...base, remote_sync: { remote_host: bad, remote_dest_dir: "/r" } }))).toMatch(/remote_sync\.remote_host: /);
  }
  expect(message(() => s.load({ ...base, remote_sync: { remote_host: "h", remote_user: "a:b", remote_dest_dir: "/r" } }))).toMatch(/remote_sync\.remote_user: "a:b" contains ":"/);
  expect(message(() => parseDest("h;x:/p"))).toMatch(/^--dest: host "h;x" contains ";"/);
  expect(parseDest("user@ad.example@standby:/p")).toEqual({ user: "user@ad.example", host: "standby", destDir: "/p" });
});

test("values from flags are named by the flag, not by the config or 'built-in defaults'", () => {
  const s = sandbox();
  const flags = (dest: string, source = s.src) => message(() => loadConfig({ source, dest, env: {}, cwd: s.dir, home: s.dir }));
  expect(flags(join(s.src, "in"))).toMatch(/^--dest: .* is inside source_dir/);
  expect(flags("/", s.src)).toMatch(/^--dest: \/ is the root directory/);
  expect(flags("/x", join(s.dir, "nope"))).toMatch(/^--source: .* does not exist/);
  writeFileSync(join(s.dir, "afile"), "");
  expect(message(() => loadConfig({ source: s.src, dest: "/x", stateFile: s.dir, env: {}, cwd: s.dir, home: s.dir }))).toMatch(/^--state: .* is a directory, not a file/);
  expect(message(() => loadConfig({ source: s.src, dest: "/x", stateFile: join(s.dir, "afile/st.db"), env: {}, cwd: s.dir, home: s.dir }))).toMatch(/^--state: .*afile is a file, so .* cannot be made there/);
});

test("a state_file or log_file that is a directory (or under a file) is exit 2 naming the key", () => {
  const s = sandbox();
  writeFileSync(join(s.dir, "afile"), "");
  const base = { source_dir: s.src, state_file: join(s.dir, "st/state.db"), remote_sync: { remote_dest_dir: join(s.dir, "dest") } };
  expect(message(() => s.load({ ...base, logging: { log_file: s.dir } }))).toMatch(/logging\.log_file: .* is a directory, not a file/);
  expect(message(() => s.load({ ...base, logging: { log_file: join(s.dir, "afile/x.log") } }))).toMatch(/logging\.log_file: .*afile is a file/);
  expect(message(() => s.load({ ...base, state_file: s.dir }))).toMatch(/state_file: .* is a directory/);
});

test("metrics_listen and metrics_file: off by default; HOST:PORT checked; the file absolute, warned about without .prom, never replicated", async () => {
  const { src, load } = sandbox();
  const base = { source_dir: src, remote_sync: { remote_dest_dir: "/r" } };
  const d = load(base).config;
  expect([d.metricsListen, d.metricsFile]).toEqual([null, ""]);
  expect(load({ ...base, metrics_listen: "127.0.0.1:9717" }).config.metricsListen).toEqual({ host: "127.0.0.1", port: 9717 });
  expect(load({ ...base, metrics_listen: "[::1]:9717" }).config.metricsListen).toEqual({ host: "::1", port: 9717 });
  expect(load({ ...base, metrics_listen: "" }).config.metricsListen).toBeNull();
  for (const bad of ["9717", ":9717", "localhost:0", "localhost:70000", "a b:1", "http://x:1"]) {
    expect(message(() => load({ ...base, metrics_listen: bad }))).toContain('metrics_listen: expected "HOST:PORT" like "127.0.0.1:9717"');
  }
  expect(message(() => load({ ...base, metrics_file: "rrdsync.prom" }))).toContain("metrics_file: expected an absolute path");
  const inTree = load({ ...base, metrics_file: `${src}/rrdsync.txt` });
  expect(inTree.warnings.join("\n")).toContain("does not end in .prom");
  const { ownFiles } = await import("../../src/source/own-files.ts");
  expect(ownFiles(inTree.config).has(`${src}/rrdsync.txt`)).toBe(true);
  expect(ownFiles(inTree.config).has(`${src}/rrdsync.txt.tmp`)).toBe(true);
});
