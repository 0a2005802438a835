// The state DB (bun:sqlite, WAL): what each file looked like when the destination last confirmed it, and the change history.
import { Database } from "bun:sqlite";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, renameSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { ExitCode, UserError } from "../errors.ts";
import { describeFsError } from "../log.ts";
import type { StatusRecord, StatusUpdate } from "./status.ts";

export interface FileState {
  size: number;
  /** nanoseconds as a decimal string: exceeds 2^53 */
  mtimeNs: string;
  ino: string;
  sha256: string | null;
  /** RRD files: the header summary as last synced (JSON), instead of a hash */
  rrd: string | null;
  /** the mtime (seconds) the seed script recorded, for rows imported from its JSON state and not yet seen */
  seedMtime: number | null;
}

export interface ChangeRow {
  time: number;
  path: string;
  /** "<text|binary|rrd> <created|modified>" */
  kind: string;
  summary: string;
  /** the change-log body (diff, RRD note), so `rrdsync log` can show it without the change-log file */
  details: string;
  added: number;
  removed: number;
}

/** A kept backup version of a text file: its content as synced at `syncedAt`, stored under the backup dir. */
export interface BackupVersion {
  path: string;
  syncedAt: number;
  size: number;
  /** relative to the backup dir */
  stored: string;
}

export interface ChangeQuery {
  /** SQLite GLOB on the path (`*` also crosses `/`) */
  glob?: string;
  since?: number;
  until?: number;
  /** created, modified, deleted, renamed: matched against the kind's last word */
  kinds?: string[];
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS files (
  path TEXT PRIMARY KEY,
  size INTEGER NOT NULL,
  mtime_ns TEXT NOT NULL,
  ino TEXT NOT NULL,
  sha256 TEXT,
  rrd TEXT,
  seed_mtime REAL,
  synced_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changes (
  id INTEGER PRIMARY KEY,
  time INTEGER NOT NULL,
  path TEXT NOT NULL,
  kind TEXT NOT NULL,
  summary TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_path ON changes(path);
CREATE INDEX IF NOT EXISTS files_ino ON files(ino);
CREATE INDEX IF NOT EXISTS changes_time ON changes(time);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS versions (
  path TEXT NOT NULL,
  synced_at INTEGER NOT NULL,
  size INTEGER NOT NULL,
  stored TEXT NOT NULL,
  PRIMARY KEY (path, synced_at)
) WITHOUT ROWID;
`;

const SQLITE_MAGIC = "SQLite format 3\0";

export class StateStore {
  private readonly getStmt;
  private readonly putStmt;
  private readonly changeStmt;
  /** what was written ahead per path: the very objects, so settling compares references, not contents */
  private ahead: Map<string, { state: Omit<FileState, "seedMtime">; changeId: number | null; change: ChangeRow | null }> | null = null;

  private constructor(private readonly db: Database, readonly path: string) {
    this.getStmt = db.query<{ size: number; mtime_ns: string; ino: string; sha256: string | null; rrd: string | null; seed_mtime: number | null }, [string]>(
      "SELECT size, mtime_ns, ino, sha256, rrd, seed_mtime FROM files WHERE path = ?",
    );
    this.putStmt = db.query(
      "INSERT OR REPLACE INTO files (path, size, mtime_ns, ino, sha256, rrd, seed_mtime, synced_at) VALUES (?, ?, ?, ?, ?, ?, NULL, ?)",
    );
    this.changeStmt = db.query("INSERT INTO changes (time, path, kind, summary, details, added, removed) VALUES (?, ?, ?, ?, ?, ?, ?)");
  }

  /**
   * Opens (creating) the DB for a run. What is at `path` decides (see classifyStateFile): a seed JSON state is moved
   * aside and imported; another program's file is left alone (exit 2); a damaged DB of ours is kept aside as
   * `.corrupt-<time>` and a fresh one made. The DB must also take writes: a read-only one is refused here, before
   * anything is transferred, not at the first commit.
   */
  static open(path: string): { store: StateStore; imported: number; seedBackup: string | null; corruptCopy: string | null } {
    mkdirSync(dirname(path), { recursive: true });
    const seedBackup = `${path}.seed.json`;
    let seedJson: string | null = null;
    let corruptCopy: string | null = null;
    const found = classifyStateFile(path);
    if (found.kind === "foreign") throw notOurs(path, found.why);
    if (found.kind === "seed") {
      // The seed's JSON state: keep it (renamed, never deleted) and import it into a fresh DB.
      seedJson = found.text;
      renameSync(path, seedBackup);
    } else if (found.kind === "damaged") {
      corruptCopy = StateStore.moveAside(path);
    } else if (found.kind === "absent" && existsSync(seedBackup)) {
      // A crash after the rename but before the import committed: import again from the kept copy.
      seedJson = readFileSync(seedBackup, "utf8");
    }
    let db: Database;
    try {
      db = openDb(path, true);
    } catch (e) {
      if (e instanceof UserError) throw e;
      if (!isCorruption(e)) throw cannotOpen(path, e);
      corruptCopy = StateStore.moveAside(path);
      db = openDb(path, true);
    }
    const store = new StateStore(db, path);
    let imported = 0;
    if (seedJson !== null && store.countFiles() === 0) imported = store.importSeed(parseSeedState(seedJson, seedBackup));
    return { store, imported, seedBackup: seedJson !== null ? seedBackup : null, corruptCopy };
  }

  /**
   * A damaged DB is kept aside (never deleted) for a post-mortem; a fresh one is rebuilt by one full compare
   * pass, in which rsync's own quick check skips what the replica already has. Returns the copy's path.
   */
  static moveAside(path: string): string {
    const copy = `${path}.corrupt-${new Date().toISOString().replace(/[:.]/g, "-")}`;
    renameSync(path, copy);
    for (const side of ["-wal", "-shm"]) if (existsSync(path + side)) renameSync(path + side, copy + side);
    return copy;
  }

  /**
   * For the read-side commands (status, log, restore), which run beside a daemon and so never move or rebuild
   * anything: the DB if rrdsync has made one at `path`, null if there is none yet. Another program's file (exit 2)
   * or a damaged DB (exit 1: the next run rebuilds it) is an error saying so.
   */
  static openExisting(path: string): StateStore | null {
    const found = classifyStateFile(path);
    if (found.kind === "foreign") throw notOurs(path, found.why);
    if (found.kind === "damaged") throw damagedError(path, found.why);
    if (found.kind !== "sqlite") return null;
    try {
      return new StateStore(openDb(path, false), path);
    } catch (e) {
      if (e instanceof UserError) throw e;
      if (isCorruption(e)) throw damagedError(path, (e as Error).message);
      throw cannotOpen(path, e);
    }
  }

  get(path: string): FileState | null {
    const r = this.getStmt.get(path);
    if (!r) return null;
    return { size: r.size, mtimeNs: r.mtime_ns, ino: r.ino, sha256: r.sha256, rrd: r.rrd, seedMtime: r.seed_mtime };
  }

  /**
   * Every row's version key ("size:mtime_ns:ino") in one query, for a pass to compare 20,000 files in ~20 ms
   * instead of 20,000 lookups (~200 ms). null above `limit` rows: then per-file lookups keep memory bounded.
   */
  versionKeys(limit: number): Map<string, string> | null {
    if (this.countFiles() > limit) return null;
    const out = new Map<string, string>();
    // The key is built by SQLite (in C): half the cost of building 20,000 strings in JS.
    for (const r of this.db.query("SELECT path, size || ':' || mtime_ns || ':' || ino FROM files").values() as Array<[string, string]>) {
      out.set(r[0], r[1]);
    }
    return out;
  }

  /** Every tracked file's version key, in path order (≈ directory order): what the stat sweep compares against. */
  *trackedKeys(): Generator<{ rel: string; key: string }> {
    // Pages by key, not one long-lived statement: the caller may yield between rows while batches commit on this
    // connection, and a million rows never sit in memory together.
    const page = this.db.query<{ rel: string; key: string }, [string]>(
      "SELECT path AS rel, size || ':' || mtime_ns || ':' || ino AS key FROM files WHERE path > ? AND size >= 0 ORDER BY path LIMIT 4096",
    );
    for (let after = ""; ;) {
      const rows = page.all(after);
      yield* rows;
      if (rows.length < 4096) return;
      after = (rows.at(-1) as { rel: string }).rel;
    }
  }

  countFiles(): number {
    return (this.db.query("SELECT count(*) AS n FROM files").get() as { n: number }).n;
  }

  /**
   * One transaction per batch: rows advance together with the changes they explain and the backup versions
   * published for them, or not at all.
   */
  commit(rows: Array<{ path: string; state: Omit<FileState, "seedMtime"> }>, changes: ChangeRow[], versions: BackupVersion[] = []): void {
    const now = Date.now();
    const version = this.db.query("INSERT OR REPLACE INTO versions (path, synced_at, size, stored) VALUES (?, ?, ?, ?)");
    this.db.transaction(() => {
      for (const r of rows) this.putStmt.run(r.path, r.state.size, r.state.mtimeNs, r.state.ino, r.state.sha256, r.state.rrd, now);
      for (const c of changes) this.changeStmt.run(c.time, c.path, c.kind, c.summary, c.details, c.added, c.removed);
      for (const v of versions) version.run(v.path, v.syncedAt, v.size, v.stored);
    })();
  }

  /**
   * Write-ahead for a first sync (empty state): rows and change rows are written inside one open transaction as
   * each file is described, while the transfer runs, so confirming 20,000 files costs a COMMIT instead of 40,000
   * inserts after it. settleAhead() makes the DB exactly what commit() would have made of the final rows (rows
   * and changes that are the very objects written ahead stay; any other is written; the rest is removed); a crash
   * before it rolls everything back (nothing was committed).
   */
  beginAhead(): void {
    if (this.countFiles() !== 0) throw new Error("write-ahead is only for an empty state");
    this.db.exec("BEGIN");
    this.ahead = new Map();
  }

  writeAhead(path: string, state: Omit<FileState, "seedMtime">, change: ChangeRow | null): void {
    if (this.ahead === null) throw new Error("no write-ahead transaction");
    this.putStmt.run(path, state.size, state.mtimeNs, state.ino, state.sha256, state.rrd, Date.now());
    const changeId = change === null ? null : Number(this.changeStmt.run(change.time, change.path, change.kind, change.summary, change.details, change.added, change.removed).lastInsertRowid);
    this.ahead.set(path, { state, changeId, change });
  }

  get writingAhead(): boolean {
    return this.ahead !== null;
  }

  settleAhead(rows: Array<{ path: string; state: Omit<FileState, "seedMtime"> }>, changes: ChangeRow[], versions: BackupVersion[]): void {
    const ahead = this.ahead;
    if (ahead === null) throw new Error("no write-ahead transaction");
    const finalRows = new Map(rows.map((r) => [r.path, r]));
    const finalChanges = new Map(changes.map((c) => [c.path, c]));
    const delRow = this.db.query("DELETE FROM files WHERE path = ?");
    const delChange = this.db.query("DELETE FROM changes WHERE id = ?");
    for (const [path, w] of ahead) {
      const r = finalRows.get(path);
      if (r === undefined) delRow.run(path);
      else if (r.state === w.state) finalRows.delete(path);
      if (w.changeId === null) continue;
      if (finalChanges.get(path) === w.change) finalChanges.delete(path);
      else delChange.run(w.changeId);
    }
    const now = Date.now();
    const version = this.db.query("INSERT OR REPLACE INTO versions (path, synced_at, size, stored) VALUES (?, ?, ?, ?)");
    for (const r of finalRows.values()) this.putStmt.run(r.path, r.state.size, r.state.mtimeNs, r.state.ino, r.state.sha256, r.state.rrd, now);
    for (const c of changes) if (finalChanges.has(c.path)) this.changeStmt.run(c.time, c.path, c.kind, c.summary, c.details, c.added, c.removed);
    for (const v of versions) version.run(v.path, v.syncedAt, v.size, v.stored);
    this.db.exec("COMMIT");
    this.ahead = null;
  }

  abortAhead(): void {
    if (this.ahead === null) return;
    this.ahead = null;
    this.db.exec("ROLLBACK");
  }

  /** Tracked files with this inode: a new path with a tracked file's inode, size and mtime is that file renamed. */
  byInode(ino: string): Array<{ path: string; state: FileState }> {
    return this.db
      .query<{ path: string; size: number; mtime_ns: string; ino: string; sha256: string | null; rrd: string | null; seed_mtime: number | null }, [string]>(
        "SELECT path, size, mtime_ns, ino, sha256, rrd, seed_mtime FROM files WHERE ino = ?",
      )
      .all(ino)
      .map((r) => ({ path: r.path, state: { size: r.size, mtimeNs: r.mtime_ns, ino: r.ino, sha256: r.sha256, rrd: r.rrd, seedMtime: r.seed_mtime } }));
  }

  /** Renames done on the replica: each row moves to its new path, its backup versions follow, the change is recorded. */
  commitRenames(moves: Array<{ from: string; to: string }>, changes: ChangeRow[]): void {
    const move = this.db.query("UPDATE files SET path = ?, synced_at = ? WHERE path = ?");
    const drop = this.db.query("DELETE FROM files WHERE path = ?");
    const versions = this.db.query("UPDATE versions SET path = ?, stored = CASE WHEN stored = ? THEN ? ELSE stored END WHERE path = ?");
    const now = Date.now();
    this.db.transaction(() => {
      for (const m of moves) {
        drop.run(m.to); // a stale row for the new name (its file was gone) gives way
        move.run(m.to, now, m.from);
        versions.run(m.to, m.from, m.to, m.from);
      }
      for (const c of changes) this.changeStmt.run(c.time, c.path, c.kind, c.summary, c.details, c.added, c.removed);
    })();
  }

  /**
   * Every tracked RRD with its identity and the last update its header had when the replica confirmed it (replica
   * lag: src/engine/lag.ts). Streams; the JSON is read by SQLite, not parsed here.
   */
  *syncedRrds(): Generator<{ path: string; size: number; mtimeNs: string; ino: string; last: number }> {
    const q = this.db.query<{ path: string; size: number; mtimeNs: string; ino: string; last: number | null }, []>(
      "SELECT path, size, mtime_ns AS mtimeNs, ino, json_extract(rrd, '$.last') AS last FROM files WHERE rrd IS NOT NULL",
    );
    for (const r of q.iterate()) if (typeof r.last === "number") yield r as { path: string; size: number; mtimeNs: string; ino: string; last: number };
  }

  countRrds(): number {
    return (this.db.query("SELECT count(*) AS n FROM files WHERE rrd IS NOT NULL").get() as { n: number }).n;
  }

  /** Every tracked path (a pass looks for the ones gone from the source). */
  *paths(): Generator<string> {
    for (const r of this.db.query<{ path: string }, []>("SELECT path FROM files").iterate()) yield r.path;
  }

  /** The tracked paths under a directory (a directory that vanished takes them along). */
  *pathsUnder(dir: string): Generator<string> {
    // A range on the primary key: "dir/" ≤ path < "dir0" ('0' follows '/'), without LIKE's wildcards in names.
    const q = this.db.query<{ path: string }, [string, string]>("SELECT path FROM files WHERE path >= ? AND path < ?");
    for (const r of q.iterate(`${dir}/`, `${dir}0`)) yield r.path;
  }

  /** Deletes confirmed on the replica: their rows go, their change rows and moved backups are recorded. */
  commitDeletes(paths: string[], changes: ChangeRow[], versions: BackupVersion[]): void {
    const del = this.db.query("DELETE FROM files WHERE path = ?");
    const version = this.db.query("INSERT OR REPLACE INTO versions (path, synced_at, size, stored) VALUES (?, ?, ?, ?)");
    this.db.transaction(() => {
      for (const p of paths) del.run(p);
      for (const c of changes) this.changeStmt.run(c.time, c.path, c.kind, c.summary, c.details, c.added, c.removed);
      for (const v of versions) version.run(v.path, v.syncedAt, v.size, v.stored);
    })();
  }

  /** The change history, oldest first, filtered as `rrdsync log` asks. */
  changes(q: ChangeQuery = {}): ChangeRow[] {
    const where: string[] = [];
    const args: Array<string | number> = [];
    if (q.glob) {
      where.push("path GLOB ?");
      args.push(q.glob);
    }
    if (q.since !== undefined) {
      where.push("time >= ?");
      args.push(q.since);
    }
    if (q.until !== undefined) {
      where.push("time <= ?");
      args.push(q.until);
    }
    if (q.kinds && q.kinds.length > 0) {
      where.push(`(${q.kinds.map(() => "kind LIKE ?").join(" OR ")})`);
      for (const k of q.kinds) args.push(`%${k}`);
    }
    const sql = `SELECT time, path, kind, summary, details, added, removed FROM changes${where.length ? ` WHERE ${where.join(" AND ")}` : ""} ORDER BY id`;
    return this.db.query<ChangeRow, Array<string | number>>(sql).all(...args);
  }

  /** A text file's kept backup versions, newest first. */
  versionsOf(path: string): BackupVersion[] {
    return this.db
      .query<BackupVersion, [string]>("SELECT path, synced_at AS syncedAt, size, stored FROM versions WHERE path = ? ORDER BY synced_at DESC")
      .all(path);
  }

  /** Every kept version, oldest first, with the total: for retention by bytes. */
  allVersions(): BackupVersion[] {
    return this.db.query<BackupVersion, []>("SELECT path, synced_at AS syncedAt, size, stored FROM versions ORDER BY synced_at").all();
  }

  forgetVersions(vs: BackupVersion[]): void {
    const del = this.db.query("DELETE FROM versions WHERE path = ? AND synced_at = ?");
    this.db.transaction(() => {
      for (const v of vs) del.run(v.path, v.syncedAt);
    })();
  }

  /** Small facts for `rrdsync status` (last batch, last error, down since, pending), JSON-encoded; null removes one. */
  setStatus(values: StatusUpdate): void {
    const put = this.db.query("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)");
    const del = this.db.query("DELETE FROM meta WHERE key = ?");
    this.db.transaction(() => {
      for (const [k, v] of Object.entries(values)) {
        if (v === undefined) continue;
        if (v === null) del.run(`status.${k}`);
        else put.run(`status.${k}`, JSON.stringify(v));
      }
    })();
  }

  status(): StatusRecord {
    const out: Record<string, unknown> = {};
    for (const r of this.db.query<{ key: string; value: string }, []>("SELECT key, value FROM meta WHERE key LIKE 'status.%'").all()) {
      out[r.key.slice(7)] = JSON.parse(r.value);
    }
    return out as StatusRecord;
  }

  private importSeed(entries: Array<[string, number]>): number {
    const stmt = this.db.query(
      "INSERT OR IGNORE INTO files (path, size, mtime_ns, ino, sha256, seed_mtime, synced_at) VALUES (?, -1, '', '', NULL, ?, 0)",
    );
    this.db.transaction(() => {
      for (const [p, m] of entries) stmt.run(p, m);
    })();
    return entries.length;
  }

  close(): void {
    this.db.close();
  }
}

/** Past this size a whole quick_check costs a cron run too much (~1.5 ms per MiB measured): see checkDb. */
const FULL_CHECK_MAX_BYTES = 64 * 1024 ** 2;

/**
 * Opens the DB and brings its schema up to date. A SQLite DB without our tables is another program's: refused
 * before anything is written to it. Damage anywhere is looked for here (checkDb), so a run notices it before it
 * sends or logs anything; `forWriting` also proves the DB takes writes (see probeWrites).
 */
function openDb(path: string, forWriting: boolean): Database {
  const db = new Database(path, { create: forWriting, readwrite: true, strict: true });
  try {
    db.exec("PRAGMA busy_timeout = 5000;");
    const tables = (db.query("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Array<{ name: string }>).map((t) => t.name);
    if (tables.length > 0 && !tables.includes("files")) {
      throw notOurs(path, `a SQLite database of another program (its tables: ${tables.slice(0, 5).join(", ")}${tables.length > 5 ? ", …" : ""})`);
    }
    db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
    db.exec(SCHEMA);
    // DBs made before the rrd column existed get it (NULL: the next update of such an RRD says "no earlier header").
    const cols = (t: string) => (db.query(`PRAGMA table_info(${t})`).all() as Array<{ name: string }>).map((c) => c.name);
    if (!cols("files").includes("rrd")) db.exec("ALTER TABLE files ADD COLUMN rrd TEXT");
    // …and the change rows of older DBs get empty details (their bodies are in the change-log file).
    if (!cols("changes").includes("details")) {
      db.exec("ALTER TABLE changes ADD COLUMN details TEXT NOT NULL DEFAULT ''; ALTER TABLE changes ADD COLUMN added INTEGER NOT NULL DEFAULT 0; ALTER TABLE changes ADD COLUMN removed INTEGER NOT NULL DEFAULT 0;");
    }
    checkDb(db, path);
    if (forWriting) probeWrites(db, path);
    return db;
  } catch (e) {
    db.close();
    throw e;
  }
}

/**
 * SQLite's quick_check: every page of the DB while it is small; above FULL_CHECK_MAX_BYTES, the tables that say
 * what the replica has (files, meta, versions, each with its indices), which stay as small as the tree, while the
 * change history, which only grows, is left to probeWrites and to the commit (damage met there is handled by the
 * run: the DB is kept aside and a second pass rebuilds it).
 */
function checkDb(db: Database, path: string): void {
  let size = 0;
  try {
    size = statSync(path).size;
  } catch {
    size = 0;
  }
  const scopes = size <= FULL_CHECK_MAX_BYTES ? [""] : ["files", "meta", "versions"];
  for (const scope of scopes) {
    const rows = db.query(`PRAGMA quick_check${scope ? `(${scope})` : ""}`).values() as Array<[string]>;
    const problems = rows.map((r) => r[0]).filter((r) => r !== "ok");
    if (problems.length > 0) throw Object.assign(new Error(`quick_check: ${problems.slice(0, 3).join("; ")}`), { code: "SQLITE_CORRUPT" });
  }
}

/**
 * One row into each table a run writes, rolled back: a read-only DB (file, directory or mount; chattr +i) is
 * refused before the transfer instead of failing at the first commit after it, and the pages an insert walks are
 * read, so damage there shows now too.
 */
function probeWrites(db: Database, path: string): void {
  try {
    db.exec("BEGIN IMMEDIATE");
    try {
      db.query("INSERT OR REPLACE INTO meta (key, value) VALUES ('probe', '1')").run();
      db.query("INSERT INTO changes (time, path, kind, summary) VALUES (?, '', 'probe', '')").run(Date.now());
      db.query("INSERT OR REPLACE INTO files (path, size, mtime_ns, ino, synced_at) VALUES ('', 0, '', '', 0)").run();
    } finally {
      db.exec("ROLLBACK");
    }
  } catch (e) {
    const code = (e as { code?: string }).code ?? "";
    if (isCorruption(e)) throw e;
    if (code.startsWith("SQLITE_READONLY") || code.startsWith("SQLITE_CANTOPEN") || code.startsWith("SQLITE_PERM") || code.startsWith("SQLITE_IOERR") || code === "SQLITE_FULL") {
      throw new UserError(`state_file ${path}: the state DB cannot be written (${(e as Error).message})`, ExitCode.Usage,
        `make ${path} and its directory writable for this user (a read-only mount? chattr +i? lsattr -d ${dirname(path)}), free some space, or point state_file (--state) elsewhere`);
    }
    throw e;
  }
}

export function isCorruption(e: unknown): boolean {
  const code = (e as { code?: string }).code ?? "";
  return code.startsWith("SQLITE_CORRUPT") || code === "SQLITE_NOTADB";
}

export type StateFileKind =
  | { kind: "absent" }
  | { kind: "empty" }
  | { kind: "sqlite" }
  | { kind: "seed"; text: string }
  | { kind: "foreign"; why: string }
  | { kind: "damaged"; why: string };

/** Magic numbers of formats a state DB never is: such a file is clearly another program's. */
const FOREIGN_MAGIC: Array<[string, string]> = [
  ["7f454c46", "an ELF executable"], ["1f8b", "gzip data"], ["504b0304", "a zip archive"], ["89504e47", "a PNG image"],
  ["25504446", "a PDF document"], ["425a68", "bzip2 data"], ["fd377a585a00", "xz data"], ["28b52ffd", "zstd data"],
  ["ffd8ff", "a JPEG image"], ["377abcaf271c", "a 7-zip archive"], ["cafebabe", "a Java class file"],
];

/**
 * What is at the state_file path, by content, never by name:
 * - nothing, or an empty file (SQLite makes a DB of it): "absent" / "empty";
 * - SQLite's header: "sqlite" (openDb then tells another program's DB, by its tables, from ours, and damage);
 * - text: the seed script's JSON state ("seed") if it parses as its object; "damaged" if it starts like one but
 *   does not parse (the seed rewrote it in place: a kill mid-write cuts it short); else "foreign" (a config, a
 *   script, a log: somebody's file, not ours to move);
 * - a known other format (ELF, gzip, …): "foreign";
 * - any other bytes: "damaged". A DB whose first page was overwritten, or a file filled with garbage at our
 *   path, is most likely ours; moving it aside loses nothing (it is kept, renamed), whereas refusing would stop
 *   replication until someone came by.
 * A directory or another non-file is refused as "foreign".
 */
export function classifyStateFile(path: string): StateFileKind {
  let st;
  try {
    st = statSync(path);
  } catch {
    return { kind: "absent" };
  }
  if (st.isDirectory()) return { kind: "foreign", why: "it is a directory" };
  if (!st.isFile()) return { kind: "foreign", why: "it is not a regular file" };
  if (st.size === 0) return { kind: "empty" }; // a DB SQLite will initialise
  let head: Buffer;
  try {
    const fd = openSync(path, "r");
    try {
      head = Buffer.alloc(Math.min(st.size, 64 * 1024));
      head = head.subarray(0, readSync(fd, head, 0, head.length, 0));
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    throw new UserError(`state_file ${path} cannot be read: ${describeFsError(e)}`, ExitCode.Usage, "run rrdsync as the user that owns it, or fix its permissions");
  }
  if (head.subarray(0, 16).toString("latin1") === SQLITE_MAGIC) return { kind: "sqlite" };
  const hex = head.subarray(0, 8).toString("hex");
  const magic = FOREIGN_MAGIC.find(([m]) => hex.startsWith(m));
  if (magic) return { kind: "foreign", why: `it is ${magic[1]}` };
  // The seed's JSON holds a line per file (~100 bytes): 512 MiB is millions of files. A bigger text is not it.
  if (isText(head) && st.size <= 512 * 1024 ** 2) {
    const text = readFileSync(path, "utf8");
    try {
      parseSeedState(text, path);
      return { kind: "seed", text };
    } catch {
      // The seed script rewrote its JSON in place after every file: one killed mid-write left it cut short.
      if (/^\s*\{\s*("|$)/.test(text)) return { kind: "damaged", why: "the seed script's JSON state, cut short or damaged" };
      return { kind: "foreign", why: "it is a text file, and not the seed script's JSON state" };
    }
  }
  if (isText(head)) return { kind: "foreign", why: "it is a text file, and not the seed script's JSON state" };
  return { kind: "damaged", why: "it is neither a SQLite database nor any known format (overwritten or random bytes)" };
}

/** UTF-8 without NUL or other control bytes than whitespace: something a person or a program wrote as text. */
function isText(b: Buffer): boolean {
  if (b.includes(0)) return false;
  try {
    // A cut at the 64 KiB boundary may split a character: only whole characters are judged.
    const s = new TextDecoder("utf-8", { fatal: true }).decode(b.subarray(0, b.length - (b.length === 64 * 1024 ? 3 : 0)));
    return !/[\x00-\x08\x0e-\x1f\x7f]/.test(s);
  } catch {
    return false;
  }
}

function notOurs(path: string, why: string): UserError {
  return new UserError(`state_file ${path} is not an rrdsync state DB: ${why}; it is left as it is`, ExitCode.Usage,
    "point state_file (--state) at another path, or move this file away if nothing needs it");
}

function damagedError(path: string, why: string): UserError {
  return new UserError(`state_file ${path}: the state DB is damaged (${why})`, ExitCode.Pending,
    "the next rrdsync --once or --watch keeps it as <state_file>.corrupt-<time> and rebuilds it with one full compare pass");
}

function cannotOpen(path: string, e: unknown): UserError {
  return new UserError(`state_file ${path}: cannot open the state DB: ${(e as Error).message}`, ExitCode.Usage,
    "check the path's permissions and free space, or point state_file (--state) elsewhere");
}

/** The seed's state: {"relative/path": mtime-seconds, …}. */
export function parseSeedState(text: string, where: string): Array<[string, number]> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new UserError(`state_file ${where}: neither an rrdsync state DB nor the seed script's JSON state`, ExitCode.Usage,
      "point state_file at a new path, or move this file aside");
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new UserError(`state_file ${where}: expected the seed's JSON object {"path": mtime, …}`, ExitCode.Usage,
      "point state_file at a new path, or move this file aside");
  }
  const out: Array<[string, number]> = [];
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v === "number" && Number.isFinite(v) && k !== "" && !k.split("/").includes("..")) out.push([k.replace(/^\.\//, ""), v]);
  }
  return out;
}
