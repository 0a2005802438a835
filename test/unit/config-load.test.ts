import { expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
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

test("defaults: port 22, archive only, OpenNMS extensions, a per-pair state file with backups beside it", () => {
  const s = sandbox();
  const { config } = s.load({ source_dir: s.src, remote_sync: { remote_host: "standby", remote_dest_dir: "/rrd" } });
  expect(config.target).toMatchObject({ host: "standby", port: 22, knownHostsFile: join(s.dir, ".ssh/known_hosts") });
  expect(config.rsync).toMatchObject({ archive: true, compress: false, update: false, checksum: false, partial: false });
  expect(config.monitoredExtensions).toEqual([".rrd", ".jrb", ".txt", ".properties", ".meta"]);
  expect(config.stateFile).toMatch(new RegExp(`^${s.dir}/\\.local/state/rrdsync/state-[0-9a-f]{12}\\.db$`));
  expect(config.changeTracking.backupDir).toBe(join(s.dir, ".local/state/rrdsync/backup"));
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
