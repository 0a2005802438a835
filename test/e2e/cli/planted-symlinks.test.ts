// End to end (issue 24, items 4 and 5), run as root as the service runs: every file rrdsync writes locally is opened
// so that it cannot be redirected. A directory of its own files that another user can write is refused (that user
// could plant any name there); in its own directory a symlink planted at any name it writes (the lock, the log, the
// change log and its rotation, SQLite's -wal/-shm, the metrics file and its temporary name, restore --to) is
// refused or replaced, never followed. Canary files stand for /etc/shadow: none may change.
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeWorld, readTree, runRrdsync, type World, writeTree } from "../../helpers/world.ts";

setDefaultTimeout(90_000);
const worlds: World[] = [];
afterEach(() => {
  for (const w of worlds.splice(0)) w.cleanup();
});

const asRoot = process.getuid?.() === 0;
const NOBODY = 65534;

/** A synced world (local destination: the transport plays no part) and a canary that nothing may touch. */
async function world(over: Record<string, unknown> = {}): Promise<{ w: World; cfg: string; canary: string }> {
  const w = makeWorld(null, "plant");
  worlds.push(w);
  writeTree(w.src, { "a.txt": "a\n", "d/b.txt": "b\n" });
  const canary = join(w.dir, "canary");
  writeFileSync(canary, "precious\n", { mode: 0o600 });
  const cfg = w.writeConfig(over);
  return { w, cfg, canary };
}

const intact = (canary: string) => expect({ canary: readFileSync(canary, "utf8"), link: lstatSync(canary).isSymbolicLink() }).toEqual({ canary: "precious\n", link: false });

describe.if(asRoot)("a directory of rrdsync's own files that another user can write is refused", () => {
  test("the state directory is another user's (install --user made it theirs): every command refuses it, with the fix; the planted lock is never followed", async () => {
    const { w, cfg, canary } = await world();
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    const state = join(w.dir, "state");
    chownSync(state, NOBODY, NOBODY);
    chmodSync(state, 0o750);
    symlinkSync(canary, join(state, "state.db.lock")); // what that user could do
    for (const args of [["--once"], ["verify", "--repair"], ["verify"], ["status"], ["log"], ["restore", "a.txt"]]) {
      const r = await runRrdsync([...args, "--config", cfg]);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toContain(`state_file: ${state}: ${state} belongs to nobody (uid ${NOBODY}), not to the user rrdsync runs as (root (uid 0))`);
      expect(r.stderr).toContain("hint: run rrdsync as that user (sudo -u nobody rrdsync …), or make it this user's: chown 0:0");
      intact(canary);
    }
    const check = await runRrdsync(["check", "--config", cfg]);
    expect(check.code).toBe(1);
    expect(check.stdout).toContain("✗ own directories: ");
  });

  test("a log directory writable by everyone (no sticky bit), or a state directory writable by its group: refused", async () => {
    const { w, cfg } = await world({ logging: { log_file: "" } });
    const logs = join(w.dir, "logs");
    mkdirSync(logs);
    chmodSync(logs, 0o777);
    w.writeConfig({ logging: { log_file: join(logs, "rrdsync.log") } });
    let r = await runRrdsync(["--once", "--config", cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`logging.log_file: ${logs}: ${logs} is writable by every user (mode 0777)`);
    expect(existsSync(join(logs, "rrdsync.log"))).toBe(false);
    w.writeConfig();
    mkdirSync(join(w.dir, "state"));
    chownSync(join(w.dir, "state"), 0, 4242);
    chmodSync(join(w.dir, "state"), 0o770);
    r = await runRrdsync(["--once", "--config", cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("is writable by the members of group 4242 (mode 0770)");
  });
});

describe.if(asRoot)("a symlink planted at a name rrdsync writes is never followed", () => {
  test("the lock file, the log file, the state DB, its -wal and -shm: exit 2 naming it, the canary intact", async () => {
    for (const name of ["state.db.lock", "rrdsync.log", "state.db", "state.db-wal", "state.db-shm"]) {
      const { w, cfg, canary } = await world();
      if (name.includes("-")) expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0); // the DB exists
      const at = join(w.dir, "state", name);
      mkdirSync(join(w.dir, "state"), { recursive: true });
      Bun.spawnSync(["rm", "-f", at]);
      symlinkSync(canary, at);
      for (const args of [["--once"], ["status"]]) {
        if ((name === "rrdsync.log" || name === "state.db.lock") && args[0] === "status") continue; // status neither logs nor locks
        const r = await runRrdsync([...args, "--config", cfg]);
        expect({ name, args, code: r.code }).toEqual({ name, args, code: 2 });
        expect(r.stderr + r.stdout).toMatch(/symlink/);
        expect(r.stderr).not.toContain("    at ");
        intact(canary);
      }
    }
  });

  test("the state DB's name pointing at an empty file elsewhere: refused, the file stays empty (SQLite would make its DB there)", async () => {
    const { w, cfg } = await world();
    const empty = join(w.dir, "empty-root-file");
    writeFileSync(empty, "");
    mkdirSync(join(w.dir, "state"), { recursive: true });
    symlinkSync(empty, w.stateFile);
    const r = await runRrdsync(["--once", "--config", cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("it is a symlink");
    expect(readFileSync(empty).length).toBe(0);
  });

  test("the change log and its rotation's temporary name: the entries are an audit gap (exit 1), the canary intact; replication goes on", async () => {
    const { w, cfg, canary } = await world();
    mkdirSync(join(w.dir, "state"), { recursive: true });
    symlinkSync(canary, w.changeLog);
    const r = await runRrdsync(["--once", "--config", cfg]);
    expect(r.code).toBe(1);
    intact(canary);
    expect(readTree(w.dest)).toEqual(readTree(w.src));
    // rotation: the gzip's temporary name was fixed (change_log.txt.1.gz.tmp) and opened through symlinks
    Bun.spawnSync(["rm", "-f", w.changeLog]);
    w.writeConfig({ change_tracking: { backup_dir: w.backupDir, change_log_file: w.changeLog, max_log_bytes: 10 } });
    symlinkSync(canary, `${w.changeLog}.1.gz.tmp`);
    writeTree(w.src, { "a.txt": "a, changed\n" });
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    expect(existsSync(`${w.changeLog}.1.gz`)).toBe(true);
    intact(canary);
  });

  test("metrics_file: a symlink at the file itself is replaced, one at the old fixed temporary name is ignored; the canary intact", async () => {
    const { w, cfg, canary } = await world();
    const prom = join(w.dir, "collector", "rrdsync.prom");
    mkdirSync(join(w.dir, "collector"));
    chmodSync(join(w.dir, "collector"), 0o1777); // a textfile directory others share
    w.writeConfig({ metrics_file: prom });
    symlinkSync(canary, `${prom}.tmp`);
    symlinkSync(canary, prom);
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    intact(canary);
    expect(lstatSync(prom).isFile()).toBe(true);
    expect(readFileSync(prom, "utf8")).toContain("rrdsync_files_transferred_total");
  });

  test("restore --to --force over a symlink replaces the link; the canary intact", async () => {
    const { w, cfg, canary } = await world();
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    const to = join(w.dir, "restored.txt");
    symlinkSync(canary, to);
    const r = await runRrdsync(["restore", "a.txt", "--to", to, "--force", "--config", cfg]);
    expect(r.code).toBe(0);
    intact(canary);
    expect(readFileSync(to, "utf8")).toBe("a\n");
    expect(lstatSync(to).isSymbolicLink()).toBe(false);
  });
});
