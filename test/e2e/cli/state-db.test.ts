// The state DB under real damage, and the audit trail of trees run without a config: what docs/troubleshooting.md's "When
// things go wrong" promises. Local destinations: the transport plays no part here.
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { Database } from "bun:sqlite";
import { copyFileSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, truncateSync, writeFileSync, writeSync, closeSync, statSync } from "node:fs";
import { join } from "node:path";
import { makeWorld, readTree, runRrdsync, type World, writeTree } from "../../helpers/world.ts";

setDefaultTimeout(60_000);

const worlds: World[] = [];
afterEach(() => {
  for (const w of worlds.splice(0)) w.cleanup();
});
function world(): World {
  const w = makeWorld(null, "db");
  worlds.push(w);
  return w;
}

/** A synced world with enough files for a DB of many pages, one of them then changed. */
async function synced(): Promise<{ w: World; cfg: string }> {
  const w = world();
  const files: Record<string, string> = {};
  for (let i = 0; i < 300; i++) files[`n${i % 10}/f${i}.txt`] = `value ${i}\n`;
  writeTree(w.src, files);
  const cfg = w.writeConfig();
  expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
  writeTree(w.src, { "n1/f1.txt": "value 1, changed\n" });
  return { w, cfg };
}

/** Overwrites one page of the DB with random bytes (a bad sector, a torn write). */
function smashPage(file: string, page: number): void {
  const fd = openSync(file, "r+");
  writeSync(fd, crypto.getRandomValues(new Uint8Array(4096)), 0, 4096, page * 4096);
  closeSync(fd);
}

const corruptCopies = (w: World) => readdirSync(join(w.dir, "state")).filter((n) => n.includes(".corrupt-"));

/** What the run says it recorded, the entries it added to the change log, and the rows in the DB agree. */
function expectConsistent(r: { stdout: string }, w: World, logBefore: string): void {
  const recorded = Number(/(\d+) changes? recorded/.exec(r.stdout)?.[1]);
  const added = w.changes().slice(logBefore.length).match(/^File: /gm)?.length ?? 0;
  const db = new Database(w.stateFile, { readonly: true });
  const rows = (db.query("SELECT count(*) AS n FROM changes").get() as { n: number }).n;
  expect((db.query("PRAGMA integrity_check").get() as { integrity_check: string }).integrity_check).toBe("ok");
  db.close();
  expect({ recorded, added, rows }).toEqual({ recorded: added, added, rows: added });
}

describe("ours and damaged: kept as .corrupt-<time>, rebuilt in the same run, noticed before anything is sent or logged", () => {
  test("a page of the change history overwritten (damage a write would only meet at the commit)", async () => {
    const { w, cfg } = await synced();
    const db = new Database(w.stateFile, { readonly: true });
    // the last page of the change history: where this run's new change row would go
    const page = (db.query("SELECT max(pageno) AS p FROM dbstat WHERE name = 'changes'").get() as { p: number }).p - 1;
    db.close();
    smashPage(w.stateFile, page);
    const before = w.changes();
    const r = await runRrdsync(["--once", "--config", cfg]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("the state DB was damaged; it is kept as");
    expect(r.stderr).not.toContain("turned out damaged"); // found at the open, not after the transfer
    expect(corruptCopies(w)).toHaveLength(1);
    expectConsistent(r, w, before);
    expect(readTree(w.dest)).toEqual(readTree(w.src));
  });

  test("random bytes, a truncated DB, a zeroed header, the seed's JSON cut short: each kept aside and rebuilt", async () => {
    for (const damage of ["random", "truncated", "header", "seed"] as const) {
      const { w, cfg } = await synced();
      if (damage === "random") writeFileSync(w.stateFile, crypto.getRandomValues(new Uint8Array(50_000)));
      if (damage === "truncated") truncateSync(w.stateFile, Math.floor(statSync(w.stateFile).size / 2));
      if (damage === "header") smashPage(w.stateFile, 0);
      if (damage === "seed") writeFileSync(w.stateFile, '{\n    "n0/f0.txt": 1732000000.25,\n    "n1/f'); // the seed, killed mid-rewrite
      const kept = readFileSync(w.stateFile);
      const status = await runRrdsync(["status", "--config", cfg]);
      expect({ damage, code: status.code }).toEqual({ damage, code: 1 });
      expect(status.stdout).toMatch(/state DB +.*\(the state DB is damaged/);
      expect(status.stdout).not.toContain("not created yet");
      const before = w.changes();
      const r = await runRrdsync(["--once", "--config", cfg]);
      expect({ damage, code: r.code }).toEqual({ damage, code: 0 });
      expect(r.stderr).toContain("the state DB was damaged; it is kept as");
      const copies = corruptCopies(w);
      expect(copies).toHaveLength(1);
      expect(readFileSync(join(w.dir, "state", copies[0] as string)).equals(kept)).toBe(true); // kept as it was
      expectConsistent(r, w, before);
      expect(readTree(w.dest)).toEqual(readTree(w.src));
      expect((await runRrdsync(["status", "--config", cfg])).code).toBe(0);
    }
  });
});

describe("not ours: left alone, exit 2", () => {
  test("another program's SQLite DB, a text file, an executable; status says what it is", async () => {
    const w = world();
    writeTree(w.src, { "a.txt": "a\n" });
    mkdirSync(join(w.dir, "state"));
    const other = new Database(w.stateFile);
    other.exec("CREATE TABLE users (id INTEGER, name TEXT); INSERT INTO users VALUES (1, 'x');");
    other.close();
    const files: Array<[string, () => void]> = [
      ["a SQLite database of another program (its tables: users)", () => undefined],
      ["a text file, and not the seed script's JSON state", () => writeFileSync(w.stateFile, "[general]\nkey = value\n")],
      ["an ELF executable", () => copyFileSync("/bin/true", w.stateFile)],
    ];
    for (const [what, make] of files) {
      make();
      const bytes = readFileSync(w.stateFile);
      const cfg = w.writeConfig();
      const r = await runRrdsync(["--once", "--config", cfg]);
      expect({ what, code: r.code, err: r.stderr }).toEqual({ what, code: 2, err: expect.stringContaining(`state_file ${w.stateFile} is not an rrdsync state DB: it is ${what}`.replace("it is a SQLite", "a SQLite")) });
      expect(readFileSync(w.stateFile).equals(bytes)).toBe(true);
      expect(corruptCopies(w)).toEqual([]);
      expect(existsSync(join(w.dest, "a.txt"))).toBe(false);
      const st = await runRrdsync(["status", "--config", cfg]);
      expect({ what, code: st.code }).toEqual({ what, code: 2 });
      expect(st.stdout).toContain("is not an rrdsync state DB");
      expect(st.stdout).not.toContain("not created yet");
    }
  });
});

describe("no config (--source/--dest only): each tree's audit trail is its own", () => {
  test("tree B's first sync is 'created', not a modification of tree A's file; restore gives B's content", async () => {
    const w = world();
    const xdg = join(w.dir, "xdg");
    const env = { XDG_STATE_HOME: xdg };
    const [a, b] = [join(w.dir, "tree-a"), join(w.dir, "tree-b")];
    writeTree(a, { "snmp/1/ds.properties": "ifAlias=tree A\n" });
    writeTree(b, { "snmp/1/ds.properties": "ifAlias=tree B\n" });
    const run = (src: string, ...args: string[]) => runRrdsync([...args, "--source", src, "--dest", `${src}-replica`], { env });
    expect((await run(a, "--once")).code).toBe(0);
    expect((await run(b, "--once")).code).toBe(0);
    const logB = (await run(b, "log", "--json")).stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(logB.map((e) => e.kind)).toEqual(["text created"]);
    expect((await run(b, "restore", "snmp/1/ds.properties")).stdout).toBe("ifAlias=tree B\n");
    expect((await run(a, "restore", "snmp/1/ds.properties")).stdout).toBe("ifAlias=tree A\n");
    const kept = readdirSync(join(xdg, "rrdsync")).sort();
    // small text copies live in each tree's own state DB (a backup-<key> directory holds only large ones)
    expect(kept.filter((n) => /^state-[0-9a-f]{12}\.db$/.test(n))).toHaveLength(2);
    expect(kept.filter((n) => /^change_log-[0-9a-f]{12}\.txt$/.test(n))).toHaveLength(2);
  });
});
