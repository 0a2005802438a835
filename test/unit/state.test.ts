// The state DB's layout (schema v2): rows round-trip exactly, RRD layouts are shared, history queries are indexed
// and streamed, first-sync slices commit or roll back whole, backups live in the DB, and v1 DBs are upgraded on open.
import { afterEach, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SCHEMA, SCHEMA_VERSION } from "../../src/store/schema.ts";
import { type ChangeRow, type FileState, StateStore } from "../../src/store/state.ts";
import { decodeBackup, encodeBackup } from "../../src/track/backup.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function dbPath(): string {
  const d = mkdtempSync(join(tmpdir(), "rrdsync-state-"));
  dirs.push(d);
  return join(d, "state.db");
}

const summary = (last: number, v: string, ds = "ifHCInOctets") =>
  JSON.stringify({ step: 300, ds: [[ds, "COUNTER", 600]], rra: [["AVERAGE", 96, 1], ["MAX", 14, 288]], last, lastDs: [v] });
const rrdState = (ino: string, last: number): Omit<FileState, "seedMtime"> => ({ size: 2904, mtimeNs: "1700000000123456789", ino, sha256: null, rrd: summary(last, "123") });
const textState = (ino: string): Omit<FileState, "seedMtime"> => ({ size: 95, mtimeNs: "1700000001000000001", ino, sha256: "ab".repeat(32), rrd: null });
const change = (path: string, time: number, kind = "rrd created"): ChangeRow => ({ time, path, kind, summary: "s", details: `d ${path}`, added: 0, removed: 0 });

test("rows round-trip exactly: 64-bit inodes and nanosecond mtimes, hashes, RRD summaries (their layout shared)", () => {
  const { store } = StateStore.open(dbPath());
  const big = "18446744073709551557"; // above 2^63: kept as text, still exact
  store.commit([
    { path: "snmp/1/a/ifHCInOctets.rrd", state: rrdState("9007199254740993", 1700000000.25) },
    { path: "snmp/1/b/ifHCInOctets.rrd", state: rrdState(big, 1700000300) },
    { path: "snmp/1/a/strings.properties", state: textState("42") },
    { path: "top.txt", state: { size: 0, mtimeNs: "-5", ino: "1", sha256: "not-hex", rrd: "{not json" } },
  ], []);
  expect(store.get("snmp/1/a/ifHCInOctets.rrd")).toEqual({ ...rrdState("9007199254740993", 1700000000.25), seedMtime: null });
  expect(JSON.parse(store.get("snmp/1/b/ifHCInOctets.rrd")?.rrd as string)).toEqual(JSON.parse(summary(1700000300, "123")));
  expect(store.get("snmp/1/b/ifHCInOctets.rrd")?.ino).toBe(big);
  expect(store.get("snmp/1/a/strings.properties")).toEqual({ ...textState("42"), seedMtime: null });
  expect(store.get("top.txt")).toEqual({ size: 0, mtimeNs: "-5", ino: "1", sha256: "not-hex", rrd: "{not json", seedMtime: null });
  expect(store.get("snmp/1/a/nothing.rrd")).toBeNull();
  expect(store.get("snmp/9/x.rrd")).toBeNull();
  store.close();
  const db = new Database(join(dirs[0] as string, "state.db"));
  expect((db.query("SELECT count(*) AS n FROM rrd_layouts").get() as { n: number }).n).toBe(1);
  db.close();
});

test("a directory's tracked versions (size, mtime seconds and ns, inode); inode lookups, paths, renames", () => {
  const { store } = StateStore.open(dbPath());
  store.commit([
    { path: "d/x.rrd", state: rrdState("7", 1) },
    { path: "d/y.txt", state: textState("8") },
    { path: "d/sub/z.txt", state: textState("9") },
    { path: "d0/w.txt", state: textState("10") },
  ], []);
  const tracked = store.trackedIn("d");
  expect([...tracked.keys()].sort()).toEqual(["x.rrd", "y.txt"]);
  expect(tracked.get("x.rrd")).toEqual([2904, 1700000000, 123456789, 7]);
  expect(store.trackedIn("nowhere").size).toBe(0);
  // all of a directory's subdirectories at once (not deeper ones), or null past the limit
  store.commit([{ path: "d/sub/deeper/q.txt", state: textState("11") }, { path: "é/😀/x.txt", state: textState("12") }], []);
  expect([...(store.trackedChildren("d", 100) ?? new Map()).keys()]).toEqual(["d/sub"]);
  expect([...(store.trackedChildren("", 100) ?? new Map()).keys()].sort()).toEqual(["d", "d0"]);
  expect(store.trackedChildren("é", 100)?.get("é/😀")?.has("x.txt")).toBe(true);
  expect(store.trackedChildren("d", 0)).toBeNull();
  expect(store.byInode("8").map((r) => r.path)).toEqual(["d/y.txt"]);
  expect([...store.pathsUnder("d")].sort()).toEqual(["d/sub/deeper/q.txt", "d/sub/z.txt", "d/x.rrd", "d/y.txt"]);
  expect([...store.paths()].length).toBe(6);
  store.commitRenames([{ from: "d/y.txt", to: "e/y2.txt" }], [change("e/y2.txt", 5, "file renamed")]);
  expect(store.get("d/y.txt")).toBeNull();
  expect(store.get("e/y2.txt")?.ino).toBe("8");
  expect(store.countFiles()).toBe(6);
  store.close();
});

test("history: streamed oldest first, by file or directory (indexed), glob, kind and time", () => {
  const { store } = StateStore.open(dbPath());
  store.commit([], [change("snmp/1/a.rrd", 10), change("snmp/10/b.rrd", 20), change("snmp/1/x/c.txt", 30, "text modified"), change("snmp/1", 40, "text created"), change("top.txt", 50)]);
  const paths = (q: Parameters<StateStore["changes"]>[0]) => [...store.changes(q)].map((c) => c.path);
  expect(paths({})).toEqual(["snmp/1/a.rrd", "snmp/10/b.rrd", "snmp/1/x/c.txt", "snmp/1", "top.txt"]);
  expect(paths({ under: "snmp/1" })).toEqual(["snmp/1/a.rrd", "snmp/1/x/c.txt", "snmp/1"]);
  expect(paths({ under: "snmp/1/" })).toEqual(["snmp/1/a.rrd", "snmp/1/x/c.txt", "snmp/1"]);
  expect(paths({ under: "snmp/1/a.rrd" })).toEqual(["snmp/1/a.rrd"]);
  expect(paths({ under: "top.txt" })).toEqual(["top.txt"]);
  expect(paths({ glob: "*.rrd" })).toEqual(["snmp/1/a.rrd", "snmp/10/b.rrd"]);
  expect(paths({ kinds: ["modified"] })).toEqual(["snmp/1/x/c.txt"]);
  expect(paths({ since: 20, until: 40 })).toEqual(["snmp/10/b.rrd", "snmp/1/x/c.txt", "snmp/1"]);
  const it = store.changes({});
  expect(it.next().value?.details).toBe("d snmp/1/a.rrd");
  it.return(undefined); // a reader that stops early (log | head) leaves no statement busy
  store.commit([], [change("late.txt", 60)]);
  store.close();
});

test("a first-sync slice: written ahead in one transaction, a file not vouched for taken out, committed or rolled back whole", () => {
  const { store } = StateStore.open(dbPath());
  const after = store.beginSlice();
  const copy = encodeBackup(Buffer.from("ifAlias=x\n".repeat(100)));
  store.writeAhead({ path: "new/a.rrd", state: rrdState("1", 1) }, change("new/a.rrd", 1), null);
  store.writeAhead({ path: "new/s.properties", state: textState("2") }, change("new/s.properties", 1, "text created"), { path: "new/s.properties", syncedAt: 1000, size: 100, stored: null, ...copy });
  store.writeAhead({ path: "new/b.rrd", state: rrdState("3", 1) }, change("new/b.rrd", 1), null);
  store.unwriteAhead("new/b.rrd", after, 0);
  expect([...store.changesSince(after)].map((c) => c.path)).toEqual(["new/a.rrd", "new/s.properties"]);
  store.commitSlice();
  expect(store.countFiles()).toBe(2);
  const row = store.backupOf("new/s.properties");
  expect(decodeBackup(row?.data as Uint8Array, row?.codec as number).toString()).toBe("ifAlias=x\n".repeat(100));
  expect(row?.data?.length).toBeLessThan(1000); // deflated
  // a slice that is rolled back leaves nothing, and the directory ids it made are not reused from a cache
  store.beginSlice();
  store.writeAhead({ path: "other/c.rrd", state: rrdState("4", 1) }, change("other/c.rrd", 2), null);
  store.abortSlice();
  expect(store.get("other/c.rrd")).toBeNull();
  store.commit([{ path: "other/c.rrd", state: rrdState("4", 1) }], [change("other/c.rrd", 3)]);
  expect(store.get("other/c.rrd")?.ino).toBe("4");
  expect([...store.changes({ under: "other" })].map((c) => c.time)).toEqual([3]);
  store.close();
});

test("backups: versions newest first; retention by bytes picks the oldest superseded copies", () => {
  const { store } = StateStore.open(dbPath());
  const v = (path: string, at: number) => ({ path, syncedAt: at, size: 100, stored: null, ...encodeBackup(Buffer.from(`${path}@${at}`)) });
  store.commit([], [], [v("a.txt", 1), v("b.txt", 2), v("a.txt", 3), v("b.txt", 4), v("a.txt", 5)]);
  expect(store.versionsOf("a.txt").map((x) => x.syncedAt)).toEqual([5, 3, 1]);
  expect(store.supersededOverLimit(1000)).toEqual([]);
  // superseded: a@1, b@2, a@3 (300 bytes); 150 allowed: the two oldest go
  expect(store.supersededOverLimit(150).map((x) => `${x.path}@${x.syncedAt}`)).toEqual(["a.txt@1", "b.txt@2"]);
  store.forgetVersions(store.supersededOverLimit(150));
  expect(store.versionsOf("a.txt").map((x) => x.syncedAt)).toEqual([5, 3]);
  store.close();
});

const V1 = `
CREATE TABLE files (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns TEXT NOT NULL, ino TEXT NOT NULL, sha256 TEXT, rrd TEXT, seed_mtime REAL, synced_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE changes (id INTEGER PRIMARY KEY, time INTEGER NOT NULL, path TEXT NOT NULL, kind TEXT NOT NULL, summary TEXT NOT NULL, details TEXT NOT NULL DEFAULT '', added INTEGER NOT NULL DEFAULT 0, removed INTEGER NOT NULL DEFAULT 0);
CREATE INDEX changes_path ON changes(path);
CREATE INDEX files_ino ON files(ino);
CREATE INDEX changes_time ON changes(time);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE versions (path TEXT NOT NULL, synced_at INTEGER NOT NULL, size INTEGER NOT NULL, stored TEXT NOT NULL, PRIMARY KEY (path, synced_at)) WITHOUT ROWID;
`;

test("a v1 DB (paths, text mtimes and inodes, hex hashes, JSON summaries, versions) is upgraded on open, exactly", () => {
  const path = dbPath();
  const db = new Database(path);
  db.exec(V1);
  const put = db.query("INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, 0)");
  put.run("snmp/1/a/ifHCInOctets.rrd", 2904, "1700000000123456789", "9007199254740993", null, summary(1700000000.5, "U"), null);
  put.run("snmp/1/b/ifHCInOctets.rrd", 2904, "1700000000123456789", "18446744073709551557", null, summary(1700000300, "7"), null);
  put.run("snmp/1/a/strings.properties", 95, "1700000001000000001", "42", "cd".repeat(32), null, null);
  put.run("seeded.txt", -1, "", "", null, null, 1699999999.5);
  put.run("odd.rrd", 10, "5", "6", null, "{broken", null);
  const ch = db.query("INSERT INTO changes (id, time, path, kind, summary, details) VALUES (?, ?, ?, ?, 's', ?)");
  ch.run(7, 100, "snmp/1/a/ifHCInOctets.rrd", "rrd created", "body a");
  ch.run(9, 200, "top.txt", "text modified", "body t");
  db.query("INSERT INTO versions VALUES ('snmp/1/a/strings.properties', 1234, 95, 'snmp/1/a/strings.properties')").run();
  db.query("INSERT INTO meta VALUES ('status.pending', '0')").run();
  db.close();

  const opened = StateStore.open(path);
  expect(opened.upgraded).toBe(true);
  const s = opened.store;
  expect(s.get("snmp/1/a/ifHCInOctets.rrd")).toEqual({ size: 2904, mtimeNs: "1700000000123456789", ino: "9007199254740993", sha256: null, rrd: summary(1700000000.5, "U"), seedMtime: null });
  expect(s.get("snmp/1/b/ifHCInOctets.rrd")?.ino).toBe("18446744073709551557");
  expect(s.get("snmp/1/a/strings.properties")?.sha256).toBe("cd".repeat(32));
  expect(s.get("seeded.txt")).toEqual({ size: -1, mtimeNs: "", ino: "", sha256: null, rrd: null, seedMtime: 1699999999.5 });
  expect(s.get("odd.rrd")?.rrd).toBe("{broken");
  expect([...s.changes({})].map((c) => [c.path, c.details])).toEqual([["snmp/1/a/ifHCInOctets.rrd", "body a"], ["top.txt", "body t"]]);
  expect(s.versionsOf("snmp/1/a/strings.properties")).toEqual([{ path: "snmp/1/a/strings.properties", syncedAt: 1234, size: 95, stored: "snmp/1/a/strings.properties" }]);
  expect(s.status().pending).toBe(0);
  // new rows after the upgrade continue the history, in time order
  s.commit([], [change("top.txt", 300)]);
  expect([...s.changes({})].map((c) => c.time)).toEqual([100, 200, 300]);
  expect([...s.changes({ since: 150 })].map((c) => c.time)).toEqual([200, 300]);
  s.close();
  const again = StateStore.open(path);
  expect(again.upgraded).toBe(false);
  again.store.close();
  const raw = new Database(path);
  expect((raw.query("PRAGMA user_version").get() as { user_version: number }).user_version).toBe(SCHEMA_VERSION);
  expect((raw.query("PRAGMA integrity_check").get() as { integrity_check: string }).integrity_check).toBe("ok");
  raw.close();
});

test("a read-side command upgrades a v1 DB only while no rrdsync holds it", () => {
  const path = dbPath();
  const db = new Database(path);
  db.exec(V1);
  db.query("INSERT INTO files VALUES ('a.txt', 1, '5', '6', NULL, NULL, NULL, 0)").run();
  db.close();
  const older = Bun.spawn(["bash", "-c", "exec -a rrdsync-0.1 sleep 30"]); // an older rrdsync (a pid file, no flock), still running with this state file
  try {
    // until it has exec'd sleep, /proc shows the test runner's command line, then bash's (which names rrdsync too,
    // and while bash execs, /proc may read empty: a CI run read it in that moment); wait for the exec'd argv[0]
    const isOlder = () => readFileSync(`/proc/${older.pid}/cmdline`, "latin1").startsWith("rrdsync-0.1\0");
    for (let i = 0; i < 2000 && !isOlder(); i++) Bun.sleepSync(5); // a loaded CI machine took over a second
    expect(isOlder()).toBe(true);
    writeFileSync(`${path}.lock`, `${older.pid}\n`);
    expect(() => StateStore.openExisting(path)).toThrow(/made by an earlier rrdsync, which is running \(pid \d+\)/);
    const raw = new Database(path, { readonly: true });
    expect((raw.query("PRAGMA user_version").get() as { user_version: number }).user_version).toBe(0); // untouched
    raw.close();
  } finally {
    older.kill();
  }
  rmSync(`${path}.lock`);
  const store = StateStore.openExisting(path) as StateStore;
  expect(store.get("a.txt")?.mtimeNs).toBe("5");
  store.close();
});

test("storage: at most 200 bytes per tracked file besides the change bodies (5,000 RRDs + 1,000 text files, OpenNMS names)", () => {
  const path = dbPath();
  const { store } = StateStore.open(path);
  const rows: Parameters<StateStore["commit"]>[0] = [];
  const changes: ChangeRow[] = [];
  const t0 = 1_764_000_000_000;
  for (let r = 0; r < 1000; r++) {
    const dir = `snmp/${1000 + Math.floor(r / 100)}/eth${r % 100}-0a1b2c3d${String(r).padStart(4, "0")}`;
    for (const ds of ["ifHCInOctets", "ifHCOutOctets", "ifInErrors", "ifOutErrors", "ifHighSpeed"]) {
      const p = `${dir}/${ds}.rrd`;
      rows.push({ path: p, state: { size: 2904, mtimeNs: `${1764000000000000000n + BigInt(r) * 7919n}`, ino: String(5_000_000 + rows.length), sha256: null, rrd: summary(1763999700 + r, String(123456789 + r), ds) } });
      // as describeCreatedRrd makes it: the definition (one per layout), then this file's last update and size
      const head = `RRD file created (format 0003): step 300 s, 1 data source, 5 archives\nDS ${ds} COUNTER heartbeat 600 min 0 max U\n${"RRA AVERAGE 96 rows × 1 step xff 0.5\n".repeat(5)}`;
      const details = `${head}Last update: 2025-11-24T16:0${r % 10}:00Z\nSize: 2904 bytes`;
      changes.push({ time: t0 + rows.length, path: p, kind: "rrd created", summary: "rrd created, 1 DS, step 300 s", details, added: 0, removed: 0, shared: head.length });
    }
    const p = `${dir}/strings.properties`;
    rows.push({ path: p, state: { size: 95, mtimeNs: `${1764000000000000000n + BigInt(r)}`, ino: String(5_000_000 + rows.length), sha256: "ef".repeat(32), rrd: null } });
    changes.push({ time: t0 + rows.length, path: p, kind: "text created", summary: "created, 5 lines", details: "New file created with 5 lines.", added: 5, removed: 0 });
  }
  store.commit(rows, changes);
  store.close();
  const db = new Database(path);
  db.exec("PRAGMA wal_checkpoint(TRUNCATE); VACUUM;");
  const pages = (db.query("SELECT sum(pgsize) AS n FROM dbstat").get() as { n: number }).n;
  // the bodies: each change's own part of its text, and the texts changes share
  const bodies = (db.query("SELECT (SELECT sum(length(details)) FROM changes) + (SELECT coalesce(sum(length(text)), 0) FROM texts) AS n").get() as { n: number }).n;
  if (process.env.SHOW_STORAGE) console.log(db.query("SELECT name, sum(pgsize) AS bytes, sum(payload) AS payload, sum(unused) AS unused FROM dbstat GROUP BY name ORDER BY bytes DESC").all(), pages, bodies);
  db.close();
  if (process.env.SHOW_STORAGE) console.log("per file", pages / rows.length, (pages - bodies) / rows.length);
  expect((pages - bodies) / rows.length).toBeLessThanOrEqual(200);
});

test("a DB whose making was cut short (this version's tables, no version stamp yet: kill -9 in between) opens as this version", () => {
  const path = dbPath();
  const db = new Database(path);
  db.exec(SCHEMA);
  db.close();
  const { store } = StateStore.open(path);
  expect(store.countFiles()).toBe(0);
  store.close();
  const raw = new Database(path, { readonly: true });
  expect((raw.query("PRAGMA user_version").get() as { user_version: number }).user_version).toBe(SCHEMA_VERSION);
  raw.close();
});

test("a delivery forgets the versions noted for its files, rolled-up routine RRD updates too (the table stays empty in steady state)", () => {
  const { store } = StateStore.open(dbPath());
  store.commit([{ path: "a.rrd", state: rrdState("1", 1700000000) }, { path: "b.txt", state: textState("2") }], []);
  for (let round = 0; round < 3; round++) {
    store.replicaVersions.note([{ path: "a.rrd", size: 2904, mtimeNs: `17000000${round}0000000000` }, { path: "b.txt", size: 95, mtimeNs: `17000000${round}1000000000` }], "sent");
    store.commit([{ path: "b.txt", state: textState("2") }], [], [], {
      rows: [{ path: "a.rrd", state: rrdState("1", 1700000300 + round * 300) }], period: 1, ledger: {},
    });
    expect(store.replicaVersions.of(["a.rrd", "b.txt"]).size).toBe(0);
  }
  store.close();
});
