// `rrdsync install` / `uninstall` of the compiled binary in a temp root: a dry run writes nothing, uninstall removes
// exactly what install wrote (a file changed since, and anything that was there before, stay), --purge also the
// config, state and logs install created, --user makes the daemon that user's, and bad input is a clear exit 2.
// (The full path from the lone binary through install, check and --once to uninstall is in test/e2e/cli/operator.test.ts.)
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { appendFileSync, chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { benchUser } from "../../scripts/bench/user.ts";
import { compiledBinary } from "../helpers/binary.ts";

setDefaultTimeout(60_000);

const REPO = resolve(import.meta.dir, "../..");
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function run(argv: string[], o: { cwd?: string } = {}): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe", stdin: "ignore", cwd: o.cwd, env: { ...process.env, NO_COLOR: "1" } });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out, err };
}

/** A temp dir with the binary alone in it, world-readable (so another user can run it too), and a root to install into. */
function setup(): { dir: string; exe: string; root: string; args: string[] } {
  const dir = mkdtempSync(join(tmpdir(), "rrdsync-install-"));
  dirs.push(dir);
  chmodSync(dir, 0o755);
  const exe = join(dir, "rrdsync-0.2.0-linux-x64");
  copyFileSync(compiledBinary(), exe);
  chmodSync(exe, 0o755);
  const root = join(dir, "root");
  mkdirSync(root, { mode: 0o755 });
  return { dir, exe, root, args: ["--root", root] };
}

/** Every path under root with its type, mode, owner and content: what "nothing else changed" is checked against. */
function snapshot(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const r = `${rel}/${name}`;
      const st = lstatSync(join(root, r));
      const what = st.isDirectory() ? "dir" : st.isFile() ? readFileSync(join(root, r)).toString("base64").slice(0, 64) : "other";
      out.set(r, `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${what}`);
      if (st.isDirectory()) walk(r);
    }
  };
  walk("");
  return out;
}

describe("rrdsync install / uninstall in a temp root", () => {
  test("--dry-run lists every step and writes nothing", async () => {
    const { exe, root, args } = setup();
    const before = snapshot(root);
    const r = await run([exe, "install", "--dry-run", ...args]);
    expect(r.code).toBe(0);
    for (const p of ["/usr/local/bin/rrdsync", "/etc/systemd/system/rrdsync.service", "/etc/logrotate.d/rrdsync", "/etc/rrdsync/config.json", "/etc/rrdsync/install-manifest.json"]) {
      expect(r.out).toContain(`would ${p.endsWith("/rrdsync") && p.includes("/bin/") ? "install" : "write  "} ${root}${p}`);
    }
    expect(r.out).toContain(`would create  ${root}/var/lib/rrdsync (0750)`);
    expect(snapshot(root)).toEqual(before);
  });

  test("uninstall --purge leaves the tree exactly as it was; without --purge the config, state and logs stay", async () => {
    const { exe, root, args } = setup();
    // what was there before: another unit, another tool, a log directory with someone else's log, our state dir
    const pre = { "/etc/systemd/system/other.service": "[Unit]\n", "/usr/local/bin/other-tool": "#!/bin/sh\n", "/var/log/syslog": "x\n", "/var/lib/rrdsync/keep-me": "mine\n" };
    for (const [p, text] of Object.entries(pre)) {
      mkdirSync(join(root, p, ".."), { recursive: true });
      writeFileSync(join(root, p), text);
    }
    const before = snapshot(root);

    const first = await run([exe, "install", ...args]);
    expect({ code: first.code, err: first.err }).toEqual({ code: 0, err: "" });
    expect(first.out).toContain(`exists  ${root}/var/lib/rrdsync`);
    // a second install (an upgrade) changes nothing that matters and keeps the record of what the first created
    const again = await run([exe, "install", ...args]);
    expect(again.code).toBe(0);
    expect(again.out).not.toContain("restart it"); // the same binary: nothing to restart
    expect(again.out).toContain(`same    ${root}/etc/systemd/system/rrdsync.service`);
    expect(again.out).toContain(`keep    ${root}/etc/rrdsync/config.json (exists)`);
    const installed = snapshot(root);
    expect(statSync(join(root, "var/log/rrdsync")).mode & 0o7777).toBe(0o750);
    expect(statSync(join(root, "usr/local/bin/rrdsync")).mode & 0o7777).toBe(0o755);
    expect(readFileSync(join(root, "usr/local/bin/rrdsync")).equals(readFileSync(exe))).toBe(true);
    const unit = readFileSync(join(root, "etc/systemd/system/rrdsync.service"), "utf8");
    expect(unit).toContain("\nExecStart=/usr/local/bin/rrdsync --watch --config /etc/rrdsync/config.json\n"); // the final paths, not the root's
    expect(unit).toContain("\nCapabilityBoundingSet=CAP_DAC_READ_SEARCH\n");
    expect(unit).not.toContain("User=");

    const dry = await run([exe, "uninstall", "--purge", "--dry-run", ...args]);
    expect(dry.code).toBe(0);
    expect(snapshot(root)).toEqual(installed);

    const un = await run([join(root, "usr/local/bin/rrdsync"), "uninstall", "--purge", ...args]);
    expect({ code: un.code, err: un.err }).toEqual({ code: 0, err: "" });
    expect(snapshot(root)).toEqual(before);
  });

  test("without --purge: config, state and logs stay; a unit changed since install stays too", async () => {
    const { exe, root, args } = setup();
    expect((await run([exe, "install", ...args])).code).toBe(0);
    // an upgrade over an older binary says the daemon must be restarted to run the new one
    appendFileSync(join(root, "usr/local/bin/rrdsync"), "older");
    expect((await run([exe, "install", ...args])).out).toContain("restart it (systemctl restart rrdsync) to run this one");
    writeFileSync(join(root, "var/lib/rrdsync/state.db"), "state");
    appendFileSync(join(root, "etc/systemd/system/rrdsync.service"), "# the admin's line\n");
    const un = await run([exe, "uninstall", ...args]);
    expect(un.code).toBe(0);
    expect(un.out).toContain(`keep    ${root}/etc/systemd/system/rrdsync.service (changed since install)`);
    expect(un.out).toContain("rrdsync uninstall --purge removes them");
    for (const kept of ["etc/systemd/system/rrdsync.service", "etc/rrdsync/config.json", "var/lib/rrdsync/state.db", "var/log/rrdsync"]) expect(existsSync(join(root, kept))).toBe(true);
    for (const gone of ["usr/local/bin/rrdsync", "etc/logrotate.d/rrdsync", "etc/rrdsync/install-manifest.json", "usr/local"]) expect(existsSync(join(root, gone))).toBe(false);
    // nothing is known to be installed any more: a second uninstall says so
    const again = await run([exe, "uninstall", ...args]);
    expect(again.code).toBe(2);
    expect(again.err).toContain("no install manifest at ");
  });

  test("the manual page: installed where man finds it, recorded in the manifest, removed by uninstall; an admin's own is kept and put back", async () => {
    const { exe, root, args } = setup();
    const page = join(root, "usr/local/share/man/man1/rrdsync.1");
    expect((await run([exe, "install", "--dry-run", ...args])).out).toContain(`would write   ${page}`);
    expect((await run([exe, "install", ...args])).code).toBe(0);
    // the page the binary carries is docs/rrdsync.1 as generated (test/unit/docs.test.ts keeps that current)
    expect(readFileSync(page, "utf8")).toBe(readFileSync(join(REPO, "docs/rrdsync.1"), "utf8"));
    expect(statSync(page).mode & 0o7777).toBe(0o644);
    const manifest = JSON.parse(readFileSync(join(root, "etc/rrdsync/install-manifest.json"), "utf8"));
    expect(manifest.files.map((f: { path: string }) => f.path)).toContain("/usr/local/share/man/man1/rrdsync.1");
    // `man rrdsync` finds it in PREFIX/share/man (MANPATH stands for the system's manpath, which lists /usr/local/share/man)
    const man = Bun.spawnSync(["man", "rrdsync"], { env: { ...process.env, MANPATH: join(root, "usr/local/share/man"), MANPAGER: "cat", PAGER: "cat", MANWIDTH: "80" }, stderr: "pipe" });
    expect(man.exitCode).toBe(0);
    expect(man.stdout.toString()).toMatch(/^NAME\n\s+rrdsync\s+-\s+replicate\s+an\s+OpenNMS/m);
    expect(man.stdout.toString()).toContain("EXIT STATUS");
    const un = await run([exe, "uninstall", ...args]);
    expect(un.out).toContain(`remove  ${page}`);
    expect(existsSync(join(root, "usr/local/share/man"))).toBe(false); // install made the directories, so they go too
    // a page that was there before install (the admin's, or a distribution's) is kept aside and put back
    mkdirSync(join(root, "usr/local/share/man/man1"), { recursive: true });
    writeFileSync(page, ".TH OTHER 1\n");
    const again = await run([exe, "install", ...args]);
    expect(again.out).toContain(`write   ${page} (the one there is kept as ${root}/etc/rrdsync/man1-rrdsync.1.rrdsync-orig)`);
    expect((await run([exe, "uninstall", "--purge", ...args])).code).toBe(0);
    expect(readFileSync(page, "utf8")).toBe(".TH OTHER 1\n");
  });

  test("--without-systemd: no unit; the next steps give the cron line only", async () => {
    const { exe, root, args } = setup();
    const r = await run([exe, "install", "--without-systemd", ...args]);
    expect(r.code).toBe(0);
    expect(existsSync(join(root, "etc/systemd"))).toBe(false);
    expect(existsSync(join(root, "etc/logrotate.d/rrdsync"))).toBe(true);
    expect(r.out).toContain("5. cron (/etc/cron.d/rrdsync): */5 * * * * root /usr/local/bin/rrdsync --once --quiet --config /etc/rrdsync/config.json");
    expect(r.out).not.toContain("systemctl");
  });

  test.skipIf(process.getuid?.() !== 0)("--user NAME: the unit runs as NAME without capabilities; state and logs are NAME's, the rest root's", async () => {
    const user = benchUser();
    if (user === null) throw new Error("cannot create the test user");
    const home = (await run(["getent", "passwd", user.name])).out.split(":")[5] as string;
    const group = (await run(["getent", "group", String(user.gid)])).out.split(":")[0] as string;
    const { exe, root, args } = setup();
    const r = await run([exe, "install", "--user", user.name, ...args]);
    expect({ code: r.code, err: r.err }).toEqual({ code: 0, err: "" });
    const unit = readFileSync(join(root, "etc/systemd/system/rrdsync.service"), "utf8");
    expect(unit).toContain(`\nUser=${user.name}\nGroup=${group}\nCapabilityBoundingSet=\nRemoveIPC=yes\n`);
    expect(unit).not.toContain("CAP_DAC_READ_SEARCH\n");
    for (const d of ["var/lib/rrdsync", "var/log/rrdsync"]) {
      const st = statSync(join(root, d));
      expect([st.uid, st.gid, st.mode & 0o7777]).toEqual([user.uid, user.gid, 0o750]);
    }
    // the daemon's user may write its state and logs, but not the binary, the config or the manifest
    for (const f of ["usr/local/bin/rrdsync", "etc/rrdsync/config.json", "etc/rrdsync/install-manifest.json", "etc/rrdsync"]) expect(statSync(join(root, f)).uid).toBe(0);
    const config = readFileSync(join(root, "etc/rrdsync/config.json"), "utf8");
    expect(config).toContain(`"known_hosts_file": "${home}/.ssh/known_hosts"`);
    expect(readFileSync(join(root, "etc/logrotate.d/rrdsync"), "utf8")).toContain(`\n    su ${user.name} ${group}\n`);
    expect(r.out).toContain(`sudo -u ${user.name} /usr/local/bin/rrdsync check --config /etc/rrdsync/config.json`);
    expect(r.out).toContain(`*/5 * * * * ${user.name} /usr/local/bin/rrdsync --once`);
    // and the user can run the installed binary
    const v = await run(["setpriv", `--reuid=${user.uid}`, `--regid=${user.gid}`, "--clear-groups", "--", join(root, "usr/local/bin/rrdsync"), "--version"]);
    expect(v.out).toMatch(/^rrdsync 0\.2\.0 \(/);
  });

  test("bad input: a clear message and exit 2, nothing written", async () => {
    const { dir, exe, root, args } = setup();
    const before = snapshot(root);
    const cases: Array<[string[], string, string]> = [
      [[exe, "install", "--user", "no-such-user-rrdsync", ...args], "--user no-such-user-rrdsync: no such user", "useradd --system"],
      [[exe, "install", "--prefix", "/opt/my tools", ...args], "--prefix /opt/my tools: contains a space", "plain absolute path"],
      [[exe, "install", "--log-dir", "/var/log/%n", ...args], "--log-dir /var/log/%n: contains a space, quote, backslash, %", "plain absolute path"],
      [[exe, "uninstall", ...args], `no install manifest at ${root}/etc/rrdsync/install-manifest.json`, "--etc"],
      [[process.execPath, join(REPO, "src/main.ts"), "install", ...args], "rrdsync install copies the running binary, but this is Bun running the source", "bun run build"],
      // issue 24, items 9 and 10: everything is checked before anything is written
      [[exe, "install", "--dest", "x", ...args], '--dest: "x" is neither host:/path nor an absolute local path', "[user@]host:/absolute/path"],
      [[exe, "install", "--state-dir", "/", ...args], "--state-dir /: is the root directory", "--state-dir /var/lib/rrdsync"],
      [[exe, "install", "--state-dir", "/var/lib", ...args], "--state-dir /var/lib: is a directory of the system itself", "a directory of rrdsync's own"],
      [[exe, "install", "--log-dir", "/etc/rrdsync", ...args], "--log-dir /etc/rrdsync: is the config directory (/etc/rrdsync)", "--log-dir /var/log/rrdsync"],
      [[exe, "install", "--prefix", "relative/x", ...args], "--prefix relative/x: not an absolute path", `--prefix ${dir}/relative/x`],
      [[exe, "install", "--source", "src", ...args], "--source src: not an absolute path", "give it from the root"],
    ];
    for (const [argv, message, hint] of cases) {
      const r = await run(argv, { cwd: dir });
      expect({ argv: argv.slice(1), code: r.code }).toEqual({ argv: argv.slice(1), code: 2 });
      expect(r.err).toContain(message);
      expect(r.err).toContain(hint);
      expect(r.err).not.toContain("    at ");
    }
    expect(snapshot(root)).toEqual(before);

    // a user who may not write there is told so (and how), not shown a stack
    if (process.getuid?.() === 0) {
      const r = await run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", exe, "install", ...args], { cwd: dir });
      expect(r.code).toBe(2);
      expect(r.err).toContain(`cannot write ${root}/usr/local/bin: EACCES`);
      expect(r.err).toContain("hint: run it as root (sudo)");
      expect(snapshot(root)).toEqual(before);
    }
  });

  test("an admin's own unit and logrotate snippet are kept (not in logrotate.d), and put back by uninstall", async () => {
    const { exe, root, args } = setup();
    const own = { "/etc/systemd/system/rrdsync.service": "[Service]\nExecStart=/opt/old/rrdsync\n", "/etc/logrotate.d/rrdsync": "/var/log/rrdsync/*.log { daily }\n" };
    for (const [p, text] of Object.entries(own)) {
      mkdirSync(join(root, p, ".."), { recursive: true });
      writeFileSync(join(root, p), text, { mode: 0o640 });
    }
    const before = snapshot(root);
    const r = await run([exe, "install", ...args]);
    expect({ code: r.code, err: r.err }).toEqual({ code: 0, err: "" });
    expect(r.out).toContain(`write   ${root}/etc/systemd/system/rrdsync.service (the one there is kept as ${root}/etc/rrdsync/rrdsync.service.rrdsync-orig)`);
    expect(r.out).toContain(`(the one there is kept as ${root}/etc/rrdsync/logrotate.d-rrdsync.rrdsync-orig)`);
    expect(readFileSync(join(root, "etc/rrdsync/rrdsync.service.rrdsync-orig"), "utf8")).toBe(own["/etc/systemd/system/rrdsync.service"]);
    expect(readdirSync(join(root, "etc/logrotate.d"))).toEqual(["rrdsync"]); // logrotate would read a second snippet there
    expect(readFileSync(join(root, "etc/systemd/system/rrdsync.service"), "utf8")).toContain("Type=notify");
    // a reinstall replaces install's own files without keeping them again
    const again = await run([exe, "install", ...args]);
    expect(again.out).not.toContain("kept as");
    const un = await run([exe, "uninstall", "--purge", ...args]);
    expect({ code: un.code, err: un.err }).toEqual({ code: 0, err: "" });
    expect(un.out).toContain(`restore ${root}/etc/systemd/system/rrdsync.service`);
    expect(snapshot(root)).toEqual(before); // the admin's files back, as they were (mode and all)
  });

  test("an existing config's metrics_file directory (and other places it writes) are in ReadWritePaths=", async () => {
    const { exe, root, args } = setup();
    mkdirSync(join(root, "etc/rrdsync"), { recursive: true });
    writeFileSync(join(root, "etc/rrdsync/config.json"), JSON.stringify({
      source_dir: "/opt/opennms/share/rrd", metrics_file: "/var/lib/node_exporter/textfile_collector/rrdsync.prom",
      state_file: "/var/lib/rrdsync/state.db", remote_sync: { remote_host: "standby", remote_dest_dir: "/srv/rrd" },
      targets: [{ name: "local", remote_dest_dir: "/backup/rrd" }],
    }));
    expect((await run([exe, "install", ...args])).code).toBe(0);
    const unit = readFileSync(join(root, "etc/systemd/system/rrdsync.service"), "utf8");
    expect(unit).toContain("\nReadWritePaths=/var/lib/rrdsync /var/log/rrdsync /var/lib/node_exporter/textfile_collector /backup/rrd\n");
  });

  test("uninstall does not trust a manifest others could have written, nor one it cannot read", async () => {
    const { exe, root, args } = setup();
    expect((await run([exe, "install", ...args])).code).toBe(0);
    const manifest = join(root, "etc/rrdsync/install-manifest.json");
    chmodSync(manifest, 0o666);
    const installed = snapshot(root);
    const r = await run([exe, "uninstall", ...args]);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`${manifest} could have been written by another user`);
    expect(snapshot(root)).toEqual(installed);

    chmodSync(manifest, 0o644);
    for (const text of ["{ truncated", "null", '{"files": [{"path": "/"}], "dirs": [], "dataDirs": [], "config": null}']) {
      writeFileSync(manifest, text);
      const bad = await run([exe, "uninstall", ...args]);
      expect({ code: bad.code, err: bad.err }).toEqual({ code: 2, err: expect.stringContaining(`${manifest}: not a manifest written by rrdsync install`) });
      expect(bad.err).not.toContain("    at ");
    }
  });
});
