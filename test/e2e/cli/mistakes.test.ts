// A user's mistakes and the CLI's own output, end to end on a local destination (what is tested here does not
// depend on the transport): each mistake is a clear message and a documented exit code, never a stack trace;
// output survives `| head` and slow pipes; what files hold never reaches a terminal raw.
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { Database } from "bun:sqlite";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeWorld, rrdsyncCommand, runRrdsync, type World, writeTree } from "../../helpers/world.ts";
import { kindValue } from "../../../src/store/schema.ts";

setDefaultTimeout(60_000);

const worlds: World[] = [];
const attrs: string[] = [];
afterEach(() => {
  for (const p of attrs.splice(0)) Bun.spawnSync(["chattr", "-i", p]);
  for (const w of worlds.splice(0)) w.cleanup();
});
function world(): World {
  const w = makeWorld(null, "mis");
  worlds.push(w);
  return w;
}

/** chattr +i (root ignores permissions, but not the immutable flag); false where the file system has no such flag. */
function immutable(path: string): boolean {
  const ok = Bun.spawnSync(["chattr", "+i", path]).exitCode === 0;
  if (ok) attrs.push(path);
  return ok;
}

/** `rrdsync ARGS | READER` in bash: rrdsync's exit code and stderr, and what the reader printed. */
async function piped(args: string[], reader: string, prefix: string[] = []): Promise<{ code: number; stderr: string; out: string }> {
  const errFile = join(worlds[0]?.dir ?? "/tmp", `stderr-${Math.random().toString(36).slice(2)}`);
  const p = Bun.spawn(["bash", "-c", `"$@" 2>${errFile} | ${reader}; exit "\${PIPESTATUS[0]}"`, "bash", ...prefix, ...rrdsyncCommand(), ...args], {
    stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" },
  });
  const [out, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
  return { code, out, stderr: readFileSync(errFile, "utf8") };
}

const noStack = (s: string) => expect(s).not.toMatch(/internal error|\n\s+at /);

describe("mistakes are exit 2 (or 1) with the path and the fix, never an internal error", () => {
  test("logging.log_file: a directory, or in a directory that cannot be written", async () => {
    const w = world();
    writeTree(w.src, { "a.txt": "a\n" });
    const r = await runRrdsync(["--once", "--config", w.writeConfig({ logging: { log_file: w.dir } })]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`logging.log_file: ${w.dir} is a directory, not a file`);
    noStack(r.stderr);
    const logDir = join(w.dir, "logs");
    mkdirSync(logDir);
    if (!immutable(logDir)) return;
    const r2 = await runRrdsync(["--once", "--config", w.writeConfig({ logging: { log_file: join(logDir, "rrdsync.log") } })]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toContain(`logging.log_file ${join(logDir, "rrdsync.log")}: cannot be opened: operation not permitted`);
    noStack(r2.stderr);
    expect(existsSync(join(w.dest, "a.txt"))).toBe(false); // nothing was done
  });

  test("a read-only state DB (or state directory) is refused before the transfer, not at the commit after it", async () => {
    const w = world();
    writeTree(w.src, { "a.txt": "v1\n" });
    const cfg = w.writeConfig();
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    writeTree(w.src, { "a.txt": "v2\n" });
    if (!immutable(w.stateFile)) return;
    const r = await runRrdsync(["--once", "--config", cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`state_file ${w.stateFile}: the state DB cannot be written`);
    noStack(r.stderr);
    expect(readFileSync(join(w.dest, "a.txt"), "utf8")).toBe("v1\n"); // nothing sent that could not be recorded
    Bun.spawnSync(["chattr", "-i", w.stateFile]);
    const stateDir = join(w.dir, "state");
    immutable(stateDir);
    const r2 = await runRrdsync(["--once", "--config", cfg]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toContain(`cannot create the lock file ${w.stateFile}.lock: operation not permitted`);
    noStack(r2.stderr);
    expect(readFileSync(join(w.dest, "a.txt"), "utf8")).toBe("v1\n");
  });

  test("--state at a directory or under a file, or given twice", async () => {
    const w = world();
    writeTree(w.src, { "a.txt": "a\n" });
    const base = ["--once", "--source", w.src, "--dest", w.dest];
    const dir = await runRrdsync([...base, "--state", w.dir]);
    expect({ code: dir.code, err: dir.stderr }).toEqual({ code: 2, err: expect.stringContaining(`--state: ${w.dir} is a directory, not a file`) });
    const file = join(w.dir, "afile");
    writeFileSync(file, "x\n");
    const under = await runRrdsync([...base, "--state", join(file, "state.db")]);
    expect({ code: under.code, err: under.stderr }).toEqual({ code: 2, err: expect.stringContaining(`--state: ${file} is a file, so ${join(file, "state.db")} cannot be made there`) });
    const twice = await runRrdsync([...base, "--state", join(w.dir, "a.db"), "--state", join(w.dir, "b.db")]);
    expect({ code: twice.code, err: twice.stderr }).toEqual({ code: 2, err: expect.stringContaining("--state is given 2 times") });
    for (const r of [dir, under, twice]) noStack(r.stderr);
    expect(existsSync(join(w.dest, "a.txt"))).toBe(false);
  });

  test("a destination that overlaps the source, or is /, named by the flag that gave it", async () => {
    const w = world();
    for (const [dest, says] of [[join(w.src, "replica"), "is inside source_dir"], [w.src, "is source_dir itself"], ["/", "is the root directory"]] as const) {
      const r = await runRrdsync(["--once", "--source", w.src, "--dest", dest]);
      expect({ code: r.code, err: r.stderr }).toEqual({ code: 2, err: expect.stringContaining(`rrdsync: --dest: ${dest} ${says}`) });
      expect(r.stderr).not.toContain("built-in defaults");
    }
    const check = await runRrdsync(["check", "--source", w.src, "--dest", w.dest]);
    expect(check.stdout.split("\n")[0]).toBe("✓ config: no config file: --source, --dest and the built-in defaults");
  });

  test("restore: a path with .., and --to over an existing file (only with --force)", async () => {
    const w = world();
    writeTree(w.src, { "a.txt": "synced\n" });
    const cfg = w.writeConfig();
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    writeFileSync(join(w.dir, "secret"), "not in the tree\n");
    for (const p of ["a.txt/../../secret", "../secret", `${w.src}/../secret`]) {
      const r = await runRrdsync(["restore", p, "--config", cfg]);
      expect({ code: r.code, out: r.stdout }).toEqual({ code: 2, out: "" });
      noStack(r.stderr);
    }
    const to = join(w.dir, "restored.txt");
    writeFileSync(to, "precious\n");
    const r = await runRrdsync(["restore", "a.txt", "--to", to, "--config", cfg]);
    expect({ code: r.code, err: r.stderr }).toEqual({ code: 2, err: expect.stringContaining(`${to} exists; not overwritten`) });
    expect(readFileSync(to, "utf8")).toBe("precious\n");
    expect((await runRrdsync(["restore", "a.txt", "--to", to, "--force", "--config", cfg])).code).toBe(0);
    expect(readFileSync(to, "utf8")).toBe("synced\n");
    const fresh = join(w.dir, "fresh.txt");
    expect((await runRrdsync(["restore", "./a.txt", "--to", fresh, "--config", cfg])).code).toBe(0);
    expect(readFileSync(fresh, "utf8")).toBe("synced\n");
  });

  test("log --since: a date that does not exist is exit 2; -5d is an age (5 days ago), not options", async () => {
    const w = world();
    writeTree(w.src, { "a.txt": "a\n" });
    const cfg = w.writeConfig();
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    const bad = await runRrdsync(["log", "--since", "2024-13-45", "--config", cfg]);
    expect({ code: bad.code, out: bad.stdout, err: bad.stderr }).toEqual({ code: 2, out: "", err: expect.stringContaining('--since "2024-13-45": no such date or time') });
    for (const args of [["--since", "-5d"], ["--since=-5d"]]) {
      const r = await runRrdsync(["log", ...args, "--config", cfg]);
      expect({ code: r.code, out: r.stdout }).toEqual({ code: 0, out: expect.stringContaining("File: a.txt") });
    }
    const future = await runRrdsync(["log", "--until", "-5d", "--config", cfg]);
    expect({ code: future.code, out: future.stdout }).toEqual({ code: 0, out: "" });
    const number = await runRrdsync(["log", "--since", "30", "--config", cfg]); // mri hands over the number 30
    expect({ code: number.code, err: number.stderr }).toEqual({ code: 2, err: expect.stringContaining('--since "30": not a time') });
  });
});

describe("stdout: | head ends quietly, a slow reader gets every byte", () => {
  test("log, log --stat, log --json, status, restore, --help into a closed pipe: exit 0, nothing on stderr", async () => {
    const w = world();
    const files: Record<string, string> = {};
    for (let i = 0; i < 600; i++) files[`d/f${i}.txt`] = `line ${i}\n`.repeat(40);
    writeTree(w.src, files);
    const cfg = w.writeConfig();
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    for (const args of [["log"], ["log", "--stat"], ["log", "--json"], ["status"], ["restore", "d/f1.txt"], ["--help"]]) {
      const r = await piped([...args, "--config", cfg], "head -c 10 >/dev/null");
      expect({ args, code: r.code, stderr: r.stderr }).toEqual({ args, code: 0, stderr: "" });
    }
    // the log is ~600 entries: far more than a pipe holds, so a reader that starts late still gets all of it
    const full = (await runRrdsync(["log", "--config", cfg])).stdout;
    const slow = await piped(["log", "--config", cfg], "(sleep 1; wc -c)");
    expect(Number(slow.out.trim())).toBe(Buffer.byteLength(full));
    const big = "x".repeat(999_999) + "\n";
    writeTree(w.src, { "big.txt": big });
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    const restored = await piped(["restore", "big.txt", "--config", cfg], "(sleep 1; wc -c)");
    expect({ code: restored.code, bytes: Number(restored.out.trim()) }).toEqual({ code: 0, bytes: big.length });
  });

  test("--watch into a pipe whose reader quits: the daemon stops as on SIGTERM, exit 0, no stack", async () => {
    const w = world();
    writeTree(w.src, { "a.txt": "a\n" });
    const cfg = w.writeConfig({ rescan_interval: 0, debounce_time: 0.2 });
    const t0 = Date.now();
    // `timeout`: a daemon that never noticed would otherwise keep the test waiting forever
    const run = piped(["--watch", "--config", cfg], "head -1 >/dev/null", ["timeout", "30"]);
    // Its first lines may all fit in the pipe before head quits: changes make it print again until it notices.
    let done = false;
    void run.finally(() => {
      done = true;
    });
    for (let i = 0; !done && i < 50; i++) {
      await Bun.sleep(300);
      writeTree(w.src, { "a.txt": `a${i}\n` });
    }
    const r = await run;
    expect({ code: r.code, stack: /internal error|\n\s+at /.test(r.stderr) }).toEqual({ code: 0, stack: false });
    expect(Date.now() - t0).toBeLessThan(25_000);
    expect(readFileSync(w.logFile, "utf8")).toContain("stdout was closed by its reader: stopping");
  });

  test("--help lists the commands without a blank row for the default one", async () => {
    const r = await runRrdsync(["--help"]);
    const commands = r.stdout.split("Commands:\n")[1]?.split("\n\n")[0] ?? "";
    expect(commands.split("\n").filter((l) => l.trim() === "")).toEqual([]);
    expect(commands).toMatch(/^ {2}\[--once \| --watch\] +Replicate/m);
  });
});

describe("what files hold never drives the terminal: escaped on output, exact in the state DB", () => {
  test("escape sequences in a file's content and in names (ESC, DEL, U+009B, a newline)", async () => {
    const w = world();
    const alias = "ifAlias=\x1b]0;owned\x07\x1b[2J\x9b31mred\x7f\r\n";
    const names = ["esc\x1b[31m.txt", "del\x7f.txt", "csi\u009b2J.txt", "nl\nx.txt"];
    writeTree(w.src, { "ds.properties": "ifAlias=core\n", ...Object.fromEntries(names.map((n) => [n, "x\n"])) });
    const cfg = w.writeConfig();
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    writeTree(w.src, { "ds.properties": alias });
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    const raw = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/; // any control but \t and \n (a CR before LF is allowed too)
    const shown = [w.changes(), (await runRrdsync(["log", "--config", cfg])).stdout, (await runRrdsync(["log", "--stat", "--config", cfg])).stdout,
      (await runRrdsync(["log", "--json", "--config", cfg])).stdout, readFileSync(w.logFile, "utf8")];
    for (const text of shown) expect(text.replace(/\r\n/g, "\n")).not.toMatch(raw);
    expect(w.changes()).toContain("+ifAlias=\\x1b]0;owned\\x07\\x1b[2J\\u009b31mred\\x7f\r\n");
    expect(w.changes()).toContain('File: "esc\\u001b[31m.txt"');
    expect(w.changes()).toContain('File: "del\\u007f.txt"');
    expect(w.changes()).toContain('File: "csi\\u009b2J.txt"');
    // --json gives the exact text back, and the state DB keeps it exact
    const rows = (await runRrdsync(["log", "--json", "--config", cfg])).stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(rows.map((r) => r.path).sort()).toEqual(["ds.properties", "ds.properties", ...names].sort());
    expect(rows.find((r) => r.kind === "text modified")?.details).toContain(`+${alias.replace(/\n$/, "")}`);
    const db = new Database(w.stateFile, { readonly: true });
    const details = (db.query("SELECT details FROM changes WHERE kind = ?").get(kindValue("text modified")) as { details: string }).details;
    db.close();
    expect(details).toContain("\x1b]0;owned\x07");
  });
});
