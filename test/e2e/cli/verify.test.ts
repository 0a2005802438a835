// End to end, `rrdsync verify` against the real sshd with the transport under test (the suite runs once with
// rsync, once with SFTP): drift with the same size and mtime found and repaired, missing, extra and newer files,
// a clean replica, what rrdsync already knows of (~), PATH/GLOB, --sample, two targets (one a local directory),
// no file data sent for an unchanged tree (bytes counted on the wire), beside a daemon, `| head`.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync, rmSync, statSync, unlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Daemon } from "../../helpers/daemon.ts";
import { countingRelay } from "../../helpers/relay.ts";
import { e2eSuite } from "../../helpers/suite.ts";
import { fakeBinary, readTree, runRrdsync, TRANSPORT, type World, writeTree } from "../../helpers/world.ts";

setDefaultTimeout(120_000);

const suite = e2eSuite("verify");

const verify = (cfg: string, ...args: string[]) => runRrdsync(["verify", "--config", cfg, ...args]);
/** The report's lines (stdout), sorted: "MARKER PATH". */
const lines = (out: string) => out.split("\n").filter(Boolean).sort();

/** Same size and the same mtime as before, other bytes: what a quick check (size + mtime) can never see. */
function tamper(w: World, rel: string): void {
  const dest = join(w.dest, rel);
  const b = readFileSync(dest);
  const i = Math.floor(b.length / 2);
  b[i] = (b[i] as number) ^ 0xff;
  const st = statSync(dest);
  writeFileSync(dest, b);
  utimesSync(dest, st.atime, st.mtime);
  expect(statSync(dest).size).toBe(st.size);
  expect(Math.floor(statSync(dest).mtimeMs / 1000)).toBe(Math.floor(st.mtimeMs / 1000));
}

async function synced(w: World, files: Record<string, string | Uint8Array>, over: Record<string, unknown> = {}): Promise<string> {
  writeTree(w.src, files);
  const cfg = w.writeConfig(over);
  expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
  await Bun.sleep(150); // the source's last write lies before the check (a file written during it is no drift)
  return cfg;
}

describe(`verify (${TRANSPORT})`, () => {
  test("a clean replica: exit 0, nothing listed; --combined lists every file as =", async () => {
    const w = suite.world();
    const cfg = await synced(w, { "a.txt": "a\n", "n/b.bin": fakeBinary(70_000, 1), "n/m/c.properties": "x=1\n" });
    const r = await verify(cfg);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/✓ verify .*: 3 files checked in [\d.]+ s.*: the replica matches/);
    const all = await verify(cfg, "--combined");
    expect(lines(all.stdout)).toEqual(["= a.txt", "= n/b.bin", "= n/m/c.properties"]);
    const js = JSON.parse((await verify(cfg, "--json")).stdout);
    expect([js.ok, js.checked, js.same, js.files]).toEqual([true, 3, 3, []]);
  });

  test("a replica file changed behind rrdsync's back with the same size and mtime is found (exit 1, named) and repaired", async () => {
    const w = suite.world();
    const odd = "n/sp ace é\nline.txt"; // a name with a newline: JSON-quoted in the report, as in the change log
    const cfg = await synced(w, { "a.txt": "alpha\n", "n/b.bin": fakeBinary(300_000, 2), "n/c.txt": "gamma\n", [odd]: "odd name\n" });
    tamper(w, "n/b.bin");
    tamper(w, "a.txt");
    tamper(w, odd);
    // An ordinary pass does not see it: the source did not change.
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    expect(readFileSync(join(w.dest, "n/b.bin")).equals(readFileSync(join(w.src, "n/b.bin")))).toBe(false);

    const r = await verify(cfg);
    expect(r.code).toBe(1);
    expect(lines(r.stdout)).toEqual([`* ${JSON.stringify(odd)}`, "* a.txt", "* n/b.bin"]);
    expect(r.stderr).toMatch(/✗ verify .*: 4 files checked .*: 3 differ \(\*\), rrdsync verify --repair sends them again/);
    expect(JSON.parse((await verify(cfg, "--json")).stdout).files.map((f: { path: string }) => f.path)).toContain(odd);

    const fix = await verify(cfg, "--repair");
    expect(fix.code).toBe(0);
    expect(fix.stderr).toContain("3 repaired");
    expect(readTree(w.dest)).toEqual(readTree(w.src));
    expect((await verify(cfg)).code).toBe(0);

    const log = await runRrdsync(["log", "--kind", "repaired", "--json", "--config", cfg]);
    const entries = log.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(entries.map((e) => `${e.kind} ${e.path}`).sort()).toEqual(["file repaired a.txt", "file repaired n/b.bin", `file repaired ${odd}`]);
    expect(entries[0].details).toMatch(/^Repaired: the replica's copy had other content; sent again \(\d+ bytes\)\./);
    expect(w.changes()).toContain("Repaired: the replica's copy had other content; sent again (300000 bytes).");
    const st = JSON.parse((await runRrdsync(["status", "--json", "--config", cfg])).stdout);
    expect([st.lastVerify.checked, st.lastVerify.differs, st.lastVerify.repaired]).toEqual([4, 0, 0]); // the last run: clean
    const check = await runRrdsync(["check", "--config", cfg]);
    expect(check.stdout).toMatch(/✓ last verify: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d: 4 files in [\d.]+ s: the replica matches\n/);
  });

  test("missing, extra and newer files; --repair sends the missing one, a newer one (a conflict) only with --overwrite, never deletes the extra", async () => {
    const w = suite.world();
    const cfg = await synced(w, { "a.txt": "a\n", "d/b.txt": "b\n", "d/c.txt": "c\n", "keep.dat": "k\n" }, { monitored_extensions: [".txt"] });
    unlinkSync(join(w.dest, "d/b.txt"));
    writeTree(w.dest, { "d/extra.txt": "not in the source\n", "other.log": "not monitored: never an extra\n" });
    writeFileSync(join(w.dest, "d/c.txt"), "written on the standby\n");
    const future = new Date(Date.now() + 3600_000);
    utimesSync(join(w.dest, "d/c.txt"), future, future);
    const r = await verify(cfg);
    expect(r.code).toBe(1);
    expect(lines(r.stdout)).toEqual(["+ d/extra.txt", "- d/b.txt", "> d/c.txt"]);
    const js = JSON.parse((await verify(cfg, "--json")).stdout);
    expect([js.missing, js.extra, js.newer, js.differs, js.ok]).toEqual([1, 1, 1, 0, false]);

    expect(r.stderr).toContain("changed on the standby: newer there than ours (>: conflicts, never overwritten but by --repair --overwrite)");

    const fix = await verify(cfg, "--repair");
    expect(fix.code).toBe(1); // the extra file and the conflict are still there
    expect(lines(fix.stdout)).toEqual(["+ d/extra.txt", "- d/b.txt", "> d/c.txt"]);
    expect(fix.stderr).toContain("1 repaired");
    expect(fix.stderr).toContain("rrdsync verify --repair --overwrite keeps the standby's copies of the 1 conflicts");
    expect(fix.stderr).toContain("extra files are never deleted by rrdsync");
    expect(readFileSync(join(w.dest, "d/b.txt"), "utf8")).toBe("b\n");
    expect(readFileSync(join(w.dest, "d/c.txt"), "utf8")).toBe("written on the standby\n");
    const over = await verify(cfg, "--repair", "--overwrite");
    expect(over.code).toBe(1); // the extra file
    expect(over.stderr).toContain("1 repaired");
    expect(readFileSync(join(w.dest, "d/c.txt"), "utf8")).toBe("c\n");
    const kept = readTree(join(w.dest, ".rrdsync-kept"));
    expect([...kept.entries()].map(([k, v]) => `${k.replace(/^[^/]+\//, "")}: ${v}`)).toEqual(["d/c.txt: written on the standby\n"]);
    expect(readFileSync(join(w.dest, "d/extra.txt"), "utf8")).toBe("not in the source\n");
    const log = (await runRrdsync(["log", "--kind", "repaired", "--stat", "--config", cfg])).stdout;
    expect(log).toContain("repaired: it was missing on the replica");
    expect(log).toContain("repaired: the replica's copy was newer (changed on the standby; --overwrite)");
    const again = await verify(cfg);
    expect([again.code, lines(again.stdout)]).toEqual([1, ["+ d/extra.txt"]]);
    rmSync(join(w.dest, "d/extra.txt"));
    expect((await verify(cfg)).code).toBe(0);
  });

  test("what rrdsync already knows of is listed with ~ and is no failure: changed since the last sync, not synced yet, deleted and kept", async () => {
    const w = suite.world();
    const cfg = await synced(w, { "a.txt": "a\n", "gone.txt": "g\n", "same.txt": "s\n" });
    writeTree(w.src, { "a.txt": "a, changed\n", "new.txt": "n\n" });
    unlinkSync(join(w.src, "gone.txt")); // delete is off: the replica keeps it
    const r = await verify(cfg);
    expect(r.code).toBe(0);
    expect(lines(r.stdout)).toEqual(["~ a.txt", "~ gone.txt", "~ new.txt"]);
    expect(r.stderr).toContain("no drift, 3 pending or kept (~: rrdsync knows of them)");
    const js = JSON.parse((await verify(cfg, "--json")).stdout);
    expect(js.files.map((f: { path: string; known: string }) => `${f.path}: ${f.known}`).sort()).toEqual([
      "a.txt: changed since the last sync", "gone.txt: deleted from the source; kept on the replica (delete is off)", "new.txt: not synced yet",
    ]);
    const fix = await verify(cfg, "--repair"); // nothing to repair: the next pass sends them
    expect(fix.code).toBe(0);
    expect(readFileSync(join(w.dest, "a.txt"), "utf8")).toBe("a\n");
  });

  test("PATH and GLOB narrow the check (extras too); --sample checks a random share and says which", async () => {
    const w = suite.world();
    const files: Record<string, string> = { "n1/a.txt": "1a\n", "n1/b.txt": "1b\n", "n2/a.txt": "2a\n" };
    for (let i = 0; i < 40; i++) files[`many/f${i}.txt`] = `${i}\n`;
    const cfg = await synced(w, files);
    tamper(w, "n1/a.txt");
    tamper(w, "n2/a.txt");
    writeTree(w.dest, { "n1/x.txt": "x\n", "n2/y.txt": "y\n" });
    const logins = suite.sshd().logins();
    const glob = await verify(cfg, "n1/*");
    expect([glob.code, lines(glob.stdout)]).toEqual([1, ["* n1/a.txt", "+ n1/x.txt"]]);
    await Bun.sleep(200); // sshd's log line for the login
    expect(suite.sshd().logins() - logins).toBe(1); // the comparison and the listing for extras share one login
    const dir = await verify(cfg, "n2/");
    expect([dir.code, lines(dir.stdout)]).toEqual([1, ["* n2/a.txt", "+ n2/y.txt"]]);
    const file = await verify(cfg, join(w.src, "n1/b.txt")); // absolute inside source_dir works too
    expect([file.code, file.stdout]).toEqual([0, ""]);
    const across = await verify(cfg, "*/a.txt"); // * crosses '/', as in `log`
    expect(lines(across.stdout)).toEqual(["* n1/a.txt", "* n2/a.txt"]);
    expect((await verify(cfg, "../etc")).code).toBe(2);
    expect((await verify(cfg, "--sample", "0%")).code).toBe(2);

    const s = await verify(cfg, "many", "--sample", "50%", "--json");
    const js = JSON.parse(s.stdout);
    expect(js.sample.percent).toBe(50);
    expect(js.sample.of).toBe(40);
    expect(js.checked).toBe(js.sample.files);
    expect(js.sample.files).toBeGreaterThan(0);
    expect(js.sample.files).toBeLessThan(40);
    expect(js.extrasChecked).toBe(false);
    const text = await verify(cfg, "many", "--sample", "50%");
    expect(text.stderr).toMatch(/a random 50% sample: \d+ of 40 files matching "many" checked .*extra files not looked for \(--sample\)/);
  });

  test("two targets (the second a local directory): each verified and reported under its own heading", async () => {
    const w = suite.world();
    const local = join(w.dir, "dest-local");
    const cfg = await synced(w, { "a.txt": "a\n", "b.txt": "b\n" }, { targets: [{ name: "local", remote_dest_dir: local, state_file: join(w.dir, "state", "local.db") }] });
    unlinkSync(join(local, "b.txt"));
    const r = await verify(cfg);
    expect(r.code).toBe(1);
    const out = r.stdout.split("\n").filter(Boolean);
    expect(out[0]).toMatch(/^# .*127\.0\.0\.1/);
    expect(out.slice(1)).toEqual([`# ${local}`, "- b.txt"]);
    expect((await verify(cfg, "--repair")).code).toBe(0);
    expect(readFileSync(join(local, "b.txt"), "utf8")).toBe("b\n");
  });

  test("an unchanged tree: no file data goes to the standby (bytes counted on the wire), nothing there is touched", async () => {
    const w = suite.world();
    const sshd = suite.sshd();
    const relay = await countingRelay(sshd.port);
    try {
      const known = join(w.dir, "relay_known_hosts");
      writeFileSync(known, `[127.0.0.1]:${relay.port} ${sshd.hostKeys.ed25519}\n`);
      const files: Record<string, Uint8Array> = {};
      for (let i = 0; i < 20; i++) files[`d${i % 4}/f${i}.bin`] = fakeBinary(64 * 1024, 100 + i);
      const treeBytes = 20 * 64 * 1024;
      writeTree(w.src, files);
      const cfg = w.writeConfig({
        remote_sync: { remote_user: sshd.user, remote_host: "127.0.0.1", port: relay.port, remote_dest_dir: w.dest, ssh_key_path: sshd.clientKey, known_hosts_file: known, transport: TRANSPORT },
      });
      expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
      expect(relay.toStandby).toBeGreaterThan(treeBytes); // the relay sees a real transfer
      const before = new Map([...readTree(w.dest).keys()].map((p) => [p, statSync(join(w.dest, p), { bigint: true })]));
      await Bun.sleep(150);
      relay.reset();
      const r = await verify(cfg);
      expect(r.code).toBe(0);
      expect(relay.toStandby).toBeLessThan(32 * 1024); // login, the file list and checksums (rsync) or read requests (SFTP)
      if (TRANSPORT === "rsync") expect(relay.fromStandby).toBeLessThan(32 * 1024); // the standby hashed its own copies
      else expect(relay.fromStandby).toBeGreaterThanOrEqual(treeBytes); // SFTP reads every same-size file back: its cost
      for (const [p, st] of before) {
        const now = statSync(join(w.dest, p), { bigint: true });
        expect([now.ino, now.mtimeNs, now.ctimeNs]).toEqual([st.ino, st.mtimeNs, st.ctimeNs]);
      }
    } finally {
      relay.close();
    }
  });

  test("beside a running daemon: a plain verify runs (no lock), --repair is refused with exit 3", async () => {
    const w = suite.world();
    const cfg = await synced(w, { "a.txt": "a\n" });
    const d: Daemon = suite.daemon(["--config", cfg]);
    await d.waitFor((e) => e.event === "pass", 30_000, "the initial pass");
    const r = await verify(cfg);
    expect(r.code).toBe(0);
    const fix = await verify(cfg, "--repair");
    expect(fix.code).toBe(3);
    expect(fix.stderr).toContain("another rrdsync");
    expect(await d.stop()).toBe(0);
  });

  test("| head: a reader that goes away ends the report, not the run", async () => {
    const w = suite.world();
    const files: Record<string, string> = {};
    for (let i = 0; i < 3000; i++) files[`d/file-with-a-long-name-${i}.txt`] = `${i}\n`;
    const cfg = await synced(w, files);
    const { rrdsyncCommand } = await import("../../helpers/world.ts");
    const p = Bun.spawn(["bash", "-c", `"$@" verify --combined --config ${cfg} | head -1; echo "rc=\${PIPESTATUS[0]}" >&2`, "sh", ...rrdsyncCommand()], { stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } });
    const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    expect(out).toMatch(/^= d\/file-with-a-long-name-\d+\.txt\n$/);
    expect(err).toContain("rc=0");
    expect(err).not.toContain("internal error");
  });
});
