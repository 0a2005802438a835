// The state DB's layout, and the upgrade of DBs made by earlier versions (run once, on open, in one transaction).
//
// Sized for a million files (issue #16): a path is stored as a directory id and a name (directory paths once, in
// `dirs`), times and inodes as integers, hashes as 32-byte blobs, and an RRD's header summary as a shared layout
// (step, data sources, archives: a handful per install) plus the few per-file values (last update, last values).
import type { Database } from "bun:sqlite";

export const SCHEMA_VERSION = 2;

export const SCHEMA = `
CREATE TABLE IF NOT EXISTS dirs (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS files (
  dir INTEGER NOT NULL,
  name TEXT NOT NULL,
  size INTEGER NOT NULL,
  mtime_ns NOT NULL,
  ino NOT NULL,
  sha256 BLOB,
  layout INTEGER,
  rrd_last REAL,
  rrd_values TEXT,
  seed_mtime REAL,
  PRIMARY KEY (dir, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS files_ino ON files(ino);
CREATE TABLE IF NOT EXISTS rrd_layouts (id INTEGER PRIMARY KEY, def TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS changes (
  id INTEGER PRIMARY KEY,
  dir INTEGER NOT NULL,
  name TEXT NOT NULL,
  kind NOT NULL,
  summary TEXT NOT NULL,
  details TEXT NOT NULL DEFAULT '',
  added INTEGER NOT NULL DEFAULT 0,
  removed INTEGER NOT NULL DEFAULT 0,
  head INTEGER
);
CREATE INDEX IF NOT EXISTS changes_dir ON changes(dir);
CREATE TABLE IF NOT EXISTS texts (id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS backups (
  dir INTEGER NOT NULL,
  name TEXT NOT NULL,
  synced_at INTEGER NOT NULL,
  size INTEGER NOT NULL,
  data BLOB,
  codec INTEGER NOT NULL DEFAULT 0,
  stored TEXT,
  PRIMARY KEY (dir, name, synced_at)
) WITHOUT ROWID;
`;
// changes.id is the change's time in ms × 1024 plus a sequence (changeId): the history is in time order by its key,
// and --since/--until are ranges of it, with no time column or index. changes.kind is a code of KINDS (or the text
// of a kind not listed). changes.head: the summary and the first part of the details, when they are the same for
// many files (a new RRD's definition: one text per layout), in texts as "summary\0details-head". Lookups by file go through changes_dir (a directory's changes, then the name).
// files.mtime_ns and files.ino have no type on purpose: an INTEGER (nearly always), or the decimal text of a value
// beyond 63 bits, kept exactly (an INTEGER column would turn such text into a lossy REAL).
// backups: a kept copy of a text file as synced at synced_at; the newest per file is the current one (the diffs'
// "before"). Small copies live in `data` (codec 0 raw, 1 deflate); others are files under backup_dir at `stored`.

/**
 * Columns added after version 2 without a rewrite (ALTER TABLE ADD COLUMN only writes the schema; an older rrdsync
 * still reads and writes such a DB, ignoring them): files.updates counts the routine RRD updates rolled up into
 * the row (issue 25), files.period the roll-up period of the last one (the summary counts the RRDs updated in it),
 * files.stale when the RRD was logged as stopped updating (seconds; NULL: updating).
 */
const ADDED_COLUMNS: Array<[table: string, column: string, decl: string]> = [
  ["files", "updates", "INTEGER"],
  ["files", "period", "INTEGER"],
  ["files", "stale", "REAL"],
];

/** Adds the columns newer than the DB (each one a quick schema change). Returns true when it added any. */
export function addColumns(db: Database): boolean {
  let added = false;
  const have = new Map<string, string[]>();
  for (const [table, column, decl] of ADDED_COLUMNS) {
    let c = have.get(table);
    if (c === undefined) have.set(table, (c = cols(db, table)));
    if (c.includes(column)) continue;
    db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${decl}`);
    added = true;
  }
  return added;
}

/** The kinds of change, stored as their index. */
export const KINDS = [
  "rrd created", "rrd modified", "text created", "text modified", "binary created", "binary modified",
  "rrd renamed", "file renamed", "rrd deleted", "file deleted",
] as const;
const KIND_CODES = new Map<string, number>(KINDS.map((k, i) => [k, i]));

export function kindValue(kind: string): number | string {
  return KIND_CODES.get(kind) ?? kind;
}

export function kindText(v: number | string): string {
  return typeof v === "number" ? (KINDS[v] ?? `kind ${v}`) : v;
}

/** ms × 1024: up to 1,024 changes per millisecond keep their time exactly; more spill into the next ms. */
export const ID_PER_MS = 1024;

/** The id of a change made at `time` (ms) after the change `lastId`: in time order, never before an earlier one. */
export function changeId(time: number, lastId: number): number {
  return Math.max(Math.floor(time) * ID_PER_MS, lastId + 1);
}

export const timeOfChange = (id: number): number => Math.floor(id / ID_PER_MS);

/** The directory part and the name of a tree-relative path ("" for a file at the root). */
export function splitPath(path: string): [dir: string, name: string] {
  const i = path.lastIndexOf("/");
  return i < 0 ? ["", path] : [path.slice(0, i), path.slice(i + 1)];
}

export function joinPath(dir: string, name: string): string {
  return dir === "" ? name : `${dir}/${name}`;
}

const cols = (db: Database, t: string) => (db.query(`PRAGMA table_info(${t})`).all() as Array<{ name: string }>).map((c) => c.name);
const hasTable = (db: Database, t: string) => db.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(t) !== null;

/** SQL for a v1 path column's directory part and name (no "last index of" in SQLite: rtrim strips the name). */
const DIR_OF = (p: string) => `CASE WHEN instr(${p}, '/') = 0 THEN '' ELSE substr(rtrim(${p}, replace(${p}, '/', '')), 1, length(rtrim(${p}, replace(${p}, '/', ''))) - 1) END`;
const NAME_OF = (p: string) => `substr(${p}, length(rtrim(${p}, replace(${p}, '/', ''))) + 1)`;
/** A decimal text as an INTEGER when it fits in 63 bits (inodes and mtimes always do in practice), else kept as text. */
const INT_OF = (c: string) => `CASE WHEN ${c} = '' THEN 0 WHEN length(${c}) < 19 OR (length(${c}) = 19 AND ${c} <= '9223372036854775807') THEN CAST(${c} AS INTEGER) ELSE ${c} END`;
/** The layout part of a v1 RRD summary (JSON); JSON.stringify of the same object gives the same text. */
const LAYOUT_OF = "json_object('step', json_extract(rrd, '$.step'), 'ds', json(json_extract(rrd, '$.ds')), 'rra', json(json_extract(rrd, '$.rra')))";
const IS_SUMMARY = "(json_valid(rrd) AND json_type(rrd, '$.ds') = 'array' AND json_type(rrd, '$.rra') = 'array' AND json_type(rrd, '$.lastDs') = 'array')";

/**
 * Brings any earlier layout up to this one. Version 1 (a path per row, text mtimes and inodes, hex hashes, a JSON
 * header summary per RRD, backup versions by path) is rewritten in SQL, in one transaction: a crash leaves the old
 * DB as it was. Returns true when it upgraded something.
 */
export function migrate(db: Database): boolean {
  const version = (db.query("PRAGMA user_version").get() as { user_version: number }).user_version;
  if (version >= SCHEMA_VERSION) return false;
  // A new DB, or one whose making was cut short (kill -9 between its tables and the version stamp: the layout is
  // already this version's): the tables and the stamp in one transaction.
  if (!hasTable(db, "files") || !cols(db, "files").includes("path")) {
    db.transaction(() => {
      db.exec(SCHEMA);
      db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
    })();
    return false;
  }
  db.transaction(() => {
    // Even older v1 DBs lacked these columns; the copy below reads them.
    if (!cols(db, "files").includes("rrd")) db.exec("ALTER TABLE files ADD COLUMN rrd TEXT");
    if (!cols(db, "changes").includes("details")) {
      db.exec("ALTER TABLE changes ADD COLUMN details TEXT NOT NULL DEFAULT ''; ALTER TABLE changes ADD COLUMN added INTEGER NOT NULL DEFAULT 0; ALTER TABLE changes ADD COLUMN removed INTEGER NOT NULL DEFAULT 0;");
    }
    const versions = hasTable(db, "versions");
    db.exec(`
      DROP INDEX IF EXISTS files_ino; DROP INDEX IF EXISTS changes_path; DROP INDEX IF EXISTS changes_time; DROP INDEX IF EXISTS changes_dir;
      ALTER TABLE files RENAME TO files_v1;
      ALTER TABLE changes RENAME TO changes_v1;
      ${versions ? "ALTER TABLE versions RENAME TO versions_v1;" : ""}
      ${SCHEMA}
      INSERT OR IGNORE INTO dirs (path)
        SELECT ${DIR_OF("path")} FROM files_v1 UNION SELECT ${DIR_OF("path")} FROM changes_v1
        ${versions ? `UNION SELECT ${DIR_OF("path")} FROM versions_v1` : ""};
      INSERT OR IGNORE INTO rrd_layouts (def) SELECT DISTINCT ${LAYOUT_OF} FROM files_v1 WHERE rrd IS NOT NULL AND ${IS_SUMMARY};
      INSERT OR REPLACE INTO files (dir, name, size, mtime_ns, ino, sha256, layout, rrd_last, rrd_values, seed_mtime)
        SELECT (SELECT id FROM dirs WHERE dirs.path = ${DIR_OF("f.path")}), ${NAME_OF("f.path")}, f.size, ${INT_OF("f.mtime_ns")}, ${INT_OF("f.ino")},
          CASE WHEN length(f.sha256) = 64 AND unhex(f.sha256) IS NOT NULL THEN unhex(f.sha256) ELSE f.sha256 END,
          CASE WHEN f.rrd IS NOT NULL AND ${IS_SUMMARY.replaceAll("rrd", "f.rrd")} THEN (SELECT id FROM rrd_layouts WHERE def = ${LAYOUT_OF.replaceAll("rrd", "f.rrd")}) END,
          CASE WHEN f.rrd IS NOT NULL AND ${IS_SUMMARY.replaceAll("rrd", "f.rrd")} THEN json_extract(f.rrd, '$.last') END,
          CASE WHEN f.rrd IS NOT NULL AND ${IS_SUMMARY.replaceAll("rrd", "f.rrd")} THEN json(json_extract(f.rrd, '$.lastDs')) ELSE f.rrd END,
          f.seed_mtime
        FROM files_v1 f;
      ${versions ? `INSERT OR REPLACE INTO backups (dir, name, synced_at, size, data, codec, stored)
        SELECT (SELECT id FROM dirs WHERE dirs.path = ${DIR_OF("v.path")}), ${NAME_OF("v.path")}, v.synced_at, v.size, NULL, 0, v.stored FROM versions_v1 v;
        DROP TABLE versions_v1;` : ""}
      DROP TABLE files_v1;
    `);
    copyChanges(db);
    db.exec(`DROP TABLE changes_v1; PRAGMA user_version = ${SCHEMA_VERSION}`);
  })();
  return true;
}

/** v1 change rows → v2: ids that carry their time (in time order, a running maximum), kinds as codes. */
function copyChanges(db: Database): void {
  const dirIds = new Map<string, number>();
  for (const r of db.query<{ id: number; path: string }, []>("SELECT id, path FROM dirs").iterate()) dirIds.set(r.path, r.id);
  const put = db.query("INSERT INTO changes (id, dir, name, kind, summary, details, added, removed) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
  let last = 0;
  type V1 = { time: number; path: string; kind: string; summary: string; details: string; added: number; removed: number };
  for (const c of db.query<V1, []>("SELECT time, path, kind, summary, details, added, removed FROM changes_v1 ORDER BY id").iterate()) {
    const [dir, name] = splitPath(c.path);
    last = changeId(c.time, last);
    put.run(last, dirIds.get(dir) as number, name, kindValue(c.kind), c.summary, c.details, c.added, c.removed);
  }
}
