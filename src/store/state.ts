// The state DB (bun:sqlite, WAL): what each file looked like when the destination last confirmed it, and the change history.
import { Database, type Statement } from "bun:sqlite";
import { closeSync, existsSync, lstatSync, mkdirSync, readSync, renameSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { ExitCode, StateMismatchError, UserError } from "../errors.ts";
import { describeFsError } from "../text.ts";
import { notPlainFile, openRead, readOwnFile } from "../safe-files.ts";
import { compareIdentity, IDENTITY_KEY, identityMismatch, type StateIdentity } from "./identity.ts";
import { acquireLock, lockHolder, pidFileHolder } from "./lock.ts";
import { addColumns, changeId, ID_PER_MS, joinPath, KINDS, kindText, kindValue, migrate, SCHEMA_VERSION, splitPath, timeOfChange } from "./schema.ts";
import { ReplicaVersions } from "./replica-versions.ts";
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
  /** an RRD logged as stopped updating: when (seconds); absent or null: updating */
  stale?: number | null;
}

export type StateRow = {
  path: string;
  state: Omit<FileState, "seedMtime" | "stale">;
  /** a routine RRD update: its last update and values (JSON), written into the row in place */
  routine?: { last: number; values: string };
};

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
  /** the summary and this many leading characters of details are shared by many changes (kept once) */
  shared?: number;
}

/** A kept backup version of a text file: its content as synced at `syncedAt`. */
export interface BackupVersion {
  path: string;
  syncedAt: number;
  size: number;
  /** relative to the backup dir, when the copy is a file there (large files, older versions); null: in the DB */
  stored: string | null;
  /** the copy itself, when it goes into the DB (commit only; reading it back: backupOf) */
  data?: Uint8Array;
  /** how `data` is encoded (track/backup.ts Codec) */
  codec?: number;
}

/** A kept copy as the DB lists it (the newest per file is the current one). */
export interface BackupRow {
  size: number;
  /** the copy, when held in the DB (encoded as `codec` says) */
  data: Uint8Array | null;
  codec: number;
  /** relative to backup_dir, when the copy is a file */
  stored: string | null;
}

export interface ChangeQuery {
  /** SQLite GLOB on the path (`*` also crosses `/`) */
  glob?: string;
  /** that file, or everything under that directory */
  under?: string;
  since?: number;
  until?: number;
  /** created, modified, deleted, renamed: matched against the kind's last word */
  kinds?: string[];
}

/**
 * A tracked file's version as a walk compares it without making strings: size, mtime split in seconds and
 * nanoseconds, inode (numbers; a value beyond 2^53 is inexact here, so a walk takes the exact path for it).
 */
export type Tracked = [size: number, sec: number, nsec: number, ino: number];

/** A directory's tracked files by name. */
export type DirTracked = Map<string, Tracked>;

/** The query behind DirTracked: one statement per directory (the directory found through its path's index). */
const TRACKED_SQL =
  "SELECT name, size, mtime_ns / 1000000000, mtime_ns % 1000000000, ino FROM files WHERE dir = (SELECT id FROM dirs WHERE path = ?) AND size >= 0";

/**
 * The direct subdirectories' tracked files of a directory, in one statement (a range of the dirs index). "No '/'
 * after the prefix" is asked of the path's bytes: SQLite's text functions stop at a NUL, which a name that is not
 * UTF-8 holds (src/names.ts), and count characters where JS counts UTF-16 units.
 */
const CHILDREN_SQL =
  "SELECT d.path, f.name, f.size, f.mtime_ns / 1000000000, f.mtime_ns % 1000000000, f.ino FROM dirs d JOIN files f ON f.dir = d.id " +
  "WHERE d.path > ? AND d.path < ? AND d.path <> '' AND instr(substr(CAST(d.path AS BLOB), ?), X'2F') = 0 AND f.size >= 0 LIMIT ?";

/**
 * The tracked files of `dir`'s subdirectories by subdirectory, or null when there are more than `limit` (then
 * each is read on its own: memory stays bounded).
 */
function childrenMap(q: Statement, dir: string, limit: number): Map<string, DirTracked> | null {
  const rows = (dir === "" ? q.values("", "\u{10FFFF}", 1, limit + 1) : q.values(`${dir}/`, `${dir}0`, Buffer.byteLength(dir) + 2, limit + 1)) as unknown[][];
  if (rows.length > limit) return null;
  const out = new Map<string, DirTracked>();
  for (const r of rows) {
    const d = r[0] as string;
    let m = out.get(d);
    if (m === undefined) out.set(d, (m = new Map()));
    m.set(r[1] as string, [r[2] as number, r[3] as number, r[4] as number, r[5] as number]);
  }
  return out;
}

function trackedMap(rows: unknown[][]): DirTracked {
  const out: DirTracked = new Map();
  for (const r of rows) out.set(r[0] as string, [r[1] as number, r[2] as number, r[3] as number, r[4] as number]);
  return out;
}

/**
 * A read-only view of the tracked versions, for a walk in a worker thread (its own connection: WAL lets it read
 * beside the engine's writes).
 */
export class TrackedReader {
  private readonly db: Database;
  private readonly q: Statement;
  private readonly children: Statement;

  constructor(path: string) {
    refusePlantedFiles(path);
    this.db = new Database(path, { readonly: true });
    this.db.exec("PRAGMA busy_timeout = 5000;");
    this.q = this.db.query(TRACKED_SQL);
    this.children = this.db.query(CHILDREN_SQL);
  }

  trackedIn(dir: string): DirTracked {
    return trackedMap(this.q.values(dir) as unknown[][]);
  }

  trackedChildren(dir: string, limit: number): Map<string, DirTracked> | null {
    return childrenMap(this.children, dir, limit);
  }

  close(): void {
    this.db.close();
  }
}

const SQLITE_MAGIC = "SQLite format 3\0";
/** meta keys: the history's byte count, and since when it is complete (retention pruned what was older) */
const HISTORY_KEY = "history";
const PRUNED_KEY = "history_pruned";
/** a change row's bytes besides its texts: the key, kind, counts and the changes_dir index entry */
const ENTRY_OVERHEAD = 40;

/** What one change row counts for the history's size (its texts as UTF-8, plus the row's overhead). */
function entryBytes(c: ChangeRow): number {
  const shared = c.shared ?? 0;
  return Buffer.byteLength(c.summary) * (shared > 0 ? 0 : 1) + Buffer.byteLength(c.details) - (shared > 0 ? shared : 0) + Buffer.byteLength(c.path) + ENTRY_OVERHEAD;
}

/** The meta key of the roll-up's current period (engine/rollup.ts). */
export const ROLLUP_KEY = "rollup";

/** Routine RRD updates of a batch, committed with it: their rows in place, and the roll-up's record. */
export interface RoutineCommit {
  rows: StateRow[];
  period: number;
  ledger: unknown;
}
const INT63_MAX = 9223372036854775807n;
/** Directory ids kept in memory: a walk goes directory by directory, so a small cache serves it (bounded memory). */
const DIR_CACHE = 4096;
const LAYOUT_CACHE = 256;
/** SQLite's page cache (KiB): its default, and while a first sync's transaction is open */
const CACHE_KIB = 2000;
const SLICE_CACHE_KIB = 32768;

type FileRow = {
  size: number | bigint; mtime_ns: bigint | string; ino: bigint | string; sha256: Uint8Array | string | null; layout: bigint | null;
  rrd_last: number | null; rrd_values: string | null; seed_mtime: number | null; stale?: number | null;
};

/** An inode or mtime (decimal text) as SQLite stores it: an INTEGER when it fits in 63 bits. */
function intValue(s: string): bigint | string {
  if (s === "") return 0n;
  const n = BigInt(s);
  return n <= INT63_MAX && n >= -INT63_MAX ? n : s;
}

function hashValue(hex: string | null): Uint8Array | string | null {
  return hex !== null && /^[0-9a-f]{64}$/.test(hex) ? Buffer.from(hex, "hex") : hex;
}

/** A small insertion-ordered cache: past its size the oldest entry goes. */
class Cache<K, V> {
  private readonly m = new Map<K, V>();
  constructor(private readonly max: number) {}
  get(k: K): V | undefined {
    return this.m.get(k);
  }
  set(k: K, v: V): void {
    if (this.m.size >= this.max) this.m.delete(this.m.keys().next().value as K);
    this.m.set(k, v);
  }
  clear(): void {
    this.m.clear();
  }
}

export class StateStore {
  private readonly dirIds = new Cache<string, number>(DIR_CACHE);
  private readonly layoutIds = new Cache<string, number>(LAYOUT_CACHE);
  private readonly layoutDefs = new Cache<number, string>(LAYOUT_CACHE);
  private readonly textIds = new Cache<string, number>(LAYOUT_CACHE);
  private readonly texts = new Cache<number, string>(LAYOUT_CACHE);
  private readonly getStmt: Statement<FileRow, [number, string]>;
  private readonly putStmt: Statement;
  private readonly routineStmt: Statement;
  private readonly changeStmt: Statement;
  private readonly backupStmt: Statement;
  private inTransaction = false;
  /** the newest change's id: the next one is made from its time and this (schema.ts changeId) */
  private lastChangeId: number;
  /** versions the replica may hold besides the rows' (issue 23): forgotten as each file is recorded */
  readonly replicaVersions: ReplicaVersions;

  private constructor(private readonly db: Database, readonly path: string) {
    this.replicaVersions = new ReplicaVersions(db);
    this.getStmt = db.query<FileRow, [number, string]>(
      "SELECT size, mtime_ns, ino, sha256, layout, rrd_last, rrd_values, seed_mtime, stale FROM files WHERE dir = ? AND name = ?",
    );
    this.getStmt.safeIntegers(true);
    // An upsert, not a replace: the roll-up's columns (updates, period, stale) stay with the file.
    this.putStmt = db.query(
      "INSERT INTO files (dir, name, size, mtime_ns, ino, sha256, layout, rrd_last, rrd_values, seed_mtime) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL) " +
        "ON CONFLICT (dir, name) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns, ino = excluded.ino, sha256 = excluded.sha256, " +
        "layout = excluded.layout, rrd_last = excluded.rrd_last, rrd_values = excluded.rrd_values, seed_mtime = NULL",
    );
    // A routine RRD update: the row in place (same layout), its counter, the period it counts in; no change row.
    this.routineStmt = db.query(
      "UPDATE files SET size = ?, mtime_ns = ?, ino = ?, rrd_last = ?, rrd_values = ?, updates = coalesce(updates, 0) + 1, period = ?, stale = NULL WHERE dir = ? AND name = ?",
    );
    this.changeStmt = db.query("INSERT INTO changes (id, dir, name, kind, summary, details, added, removed, head) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    this.backupStmt = db.query("INSERT OR REPLACE INTO backups (dir, name, synced_at, size, data, codec, stored) VALUES (?, ?, ?, ?, ?, ?, ?)");
    this.lastChangeId = this.maxChangeId();
  }

  /**
   * Opens (creating) the DB for a run. What is at `path` decides (see classifyStateFile): a seed JSON state is moved
   * aside and imported; another program's file is left alone (exit 2); a damaged DB of ours is kept aside as
   * `.corrupt-<time>` and a fresh one made. The DB must also take writes: a read-only one is refused here, before
   * anything is transferred, not at the first commit. One made by an earlier version is upgraded (`upgraded`).
   */
  static open(path: string): { store: StateStore; imported: number; seedBackup: string | null; corruptCopy: string | null; upgraded: boolean } {
    mkdirSync(dirname(path), { recursive: true, mode: 0o750 });
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
      const why = notPlainFile(seedBackup);
      if (why !== null) throw notOurs(seedBackup, why);
      seedJson = (readOwnFile(seedBackup, 512 * 1024 ** 2) as Buffer).toString("utf8");
    }
    let opened: { db: Database; upgraded: boolean };
    try {
      opened = openDb(path, true);
    } catch (e) {
      if (e instanceof UserError) throw e;
      if (!isCorruption(e)) throw cannotOpen(path, e);
      corruptCopy = StateStore.moveAside(path);
      opened = openDb(path, true);
    }
    const store = new StateStore(opened.db, path);
    let imported = 0;
    if (seedJson !== null && store.countFiles() === 0) imported = store.importSeed(parseSeedState(seedJson, seedBackup));
    return { store, imported, seedBackup: seedJson !== null ? seedBackup : null, corruptCopy, upgraded: opened.upgraded };
  }

  /**
   * The pair a DB at `path` records, read without the opening checks (a run's pre-check, src/engine/target.ts
   * checkIdentities): null when there is no DB of ours there, or it cannot be read now (the run's own open says why).
   */
  static peekIdentity(path: string): { recorded: unknown; recordsNothing: boolean } | null {
    if (classifyStateFile(path).kind !== "sqlite") return null;
    try {
      refusePlantedFiles(path);
      const db = new Database(path, { readonly: true });
      try {
        db.exec("PRAGMA busy_timeout = 5000;");
        const meta = (k: string) => (db.query<{ value: string }, [string]>("SELECT value FROM meta WHERE key = ?").get(k)?.value ?? null);
        const recorded = meta(IDENTITY_KEY);
        const nothing = db.query("SELECT 1 FROM files LIMIT 1").get() === null && db.query("SELECT 1 FROM changes LIMIT 1").get() === null && meta("first_sync") === null;
        return { recorded: recorded === null ? null : JSON.parse(recorded), recordsNothing: nothing };
      } finally {
        db.close();
      }
    } catch {
      return null;
    }
  }

  /**
   * A damaged DB is kept aside (never deleted) for a post-mortem; a fresh one is rebuilt by one full compare
   * pass, in which rsync's own quick check skips what the replica already has. Returns the copy's path.
   */
  static moveAside(path: string, label = "corrupt"): string {
    const copy = `${path}.${label}-${new Date().toISOString().replace(/[:.]/g, "-")}`;
    renameSync(path, copy);
    for (const side of ["-wal", "-shm"]) if (existsSync(path + side)) renameSync(path + side, copy + side);
    return copy;
  }

  /**
   * For the read-side commands (status, log, restore), which run beside a daemon and so never move or rebuild
   * anything: the DB if rrdsync has made one at `path`, null if there is none yet. Another program's file (exit 2)
   * or a damaged DB (exit 1: the next run rebuilds it) is an error saying so. One made by an earlier version is
   * upgraded here only while no rrdsync holds it (an older daemon still writing it would not find its tables):
   * such a one is left alone, with an error saying what to do.
   */
  static openExisting(path: string, want?: StateIdentity): StateStore | null {
    const store = StateStore.openExistingDb(path);
    if (store !== null && want !== undefined) {
      try {
        store.checkIdentity(want);
      } catch (e) {
        store.close();
        throw e;
      }
    }
    return store;
  }

  private static openExistingDb(path: string): StateStore | null {
    const found = classifyStateFile(path);
    if (found.kind === "foreign") throw notOurs(path, found.why);
    if (found.kind === "damaged") throw damagedError(path, found.why);
    if (found.kind !== "sqlite") return null;
    if (needsUpgrade(path)) {
      const pid = lockHolder(path) ?? pidFileHolder(path);
      if (pid !== null) {
        throw new UserError(`state_file ${path}: made by an earlier rrdsync, which is running${Number.isNaN(pid) ? "" : ` (pid ${pid})`} and still uses it`, ExitCode.Locked,
          "restart it with this version (it upgrades the state DB on start), then run this again");
      }
      const lock = acquireLock(path);
      try {
        return StateStore.open(path).store;
      } finally {
        lock.release();
      }
    }
    try {
      return new StateStore(openDb(path, false).db, path);
    } catch (e) {
      if (e instanceof UserError) throw e;
      if (isCorruption(e)) throw damagedError(path, (e as Error).message);
      throw cannotOpen(path, e);
    }
  }

  /** The id of a directory (tree-relative, "" = the root); `create`: made if missing, else null when unknown. */
  private dirId(dir: string, create: true): number;
  private dirId(dir: string, create: false): number | null;
  private dirId(dir: string, create: boolean): number | null {
    const cached = this.dirIds.get(dir);
    if (cached !== undefined) return cached;
    // Making one (a first sync, a new directory): one statement whether it is new or not.
    const r = create
      ? (this.db.query<{ id: number }, [string]>("INSERT INTO dirs (path) VALUES (?) ON CONFLICT (path) DO UPDATE SET path = path RETURNING id").get(dir) as { id: number })
      : this.db.query<{ id: number }, [string]>("SELECT id FROM dirs WHERE path = ?").get(dir);
    if (r === null) return null;
    this.dirIds.set(dir, r.id);
    return r.id;
  }

  private fileKey(path: string, create: true): [number, string];
  private fileKey(path: string, create: false): [number, string] | null;
  private fileKey(path: string, create: boolean): [number, string] | null {
    const [dir, name] = splitPath(path);
    const id = create ? this.dirId(dir, true) : this.dirId(dir, false);
    return id === null ? null : [id, name];
  }

  private layoutId(def: string): number {
    const cached = this.layoutIds.get(def);
    if (cached !== undefined) return cached;
    const q = this.db.query<{ id: number }, [string]>("SELECT id FROM rrd_layouts WHERE def = ?");
    const r = q.get(def) ?? (this.db.query<{ id: number }, [string]>("INSERT INTO rrd_layouts (def) VALUES (?) RETURNING id").get(def) as { id: number });
    this.layoutIds.set(def, r.id);
    return r.id;
  }

  private layoutDef(id: number): string | null {
    const cached = this.layoutDefs.get(id);
    if (cached !== undefined) return cached;
    const r = this.db.query<{ def: string }, [number]>("SELECT def FROM rrd_layouts WHERE id = ?").get(id);
    if (r === null) return null;
    this.layoutDefs.set(id, r.def);
    return r.def;
  }

  /** An RRD summary (JSON) as stored: its layout shared, the last update and values per file. */
  private rrdColumns(rrd: string | null): [layout: number | null, last: number | null, values: string | null] {
    if (rrd === null) return [null, null, null];
    try {
      const s = JSON.parse(rrd) as { step?: unknown; ds?: unknown; rra?: unknown; last?: unknown; lastDs?: unknown };
      if (Array.isArray(s.ds) && Array.isArray(s.rra) && Array.isArray(s.lastDs) && typeof s.last === "number") {
        return [this.layoutId(JSON.stringify({ step: s.step, ds: s.ds, rra: s.rra })), s.last, JSON.stringify(s.lastDs)];
      }
    } catch {
      // not a summary we know: kept as it is
    }
    return [null, null, rrd];
  }

  private toState(r: FileRow): FileState {
    const size = Number(r.size);
    const seed = size < 0;
    let rrd: string | null = null;
    if (r.layout !== null) {
      const def = this.layoutDef(Number(r.layout));
      rrd = def === null ? null : `${def.slice(0, -1)},"last":${JSON.stringify(r.rrd_last)},"lastDs":${r.rrd_values}}`;
    } else rrd = r.rrd_values;
    const sha = r.sha256;
    return {
      size, mtimeNs: seed ? "" : String(r.mtime_ns), ino: seed ? "" : String(r.ino),
      sha256: sha === null ? null : typeof sha === "string" ? sha : Buffer.from(sha).toString("hex"), rrd, seedMtime: r.seed_mtime,
      ...(r.stale != null ? { stale: r.stale } : {}),
    };
  }

  get(path: string): FileState | null {
    const key = this.fileKey(path, false);
    if (key === null) return null;
    const r = this.getStmt.get(key[0], key[1]);
    return r ? this.toState(r) : null;
  }

  /** A directory's tracked files: a full pass compares a listing with it, one query per directory. */
  trackedIn(dir: string): DirTracked {
    return trackedMap(this.db.query(TRACKED_SQL).values(dir) as unknown[][]);
  }

  /** The tracked files of a directory's subdirectories, in one query (null above `limit` files). */
  trackedChildren(dir: string, limit: number): Map<string, DirTracked> | null {
    return childrenMap(this.db.query(CHILDREN_SQL), dir, limit);
  }

  /** About how many directories the state has seen (the largest id: no scan, for a pass's decisions). */
  dirsEstimate(): number {
    return (this.db.query("SELECT coalesce(max(id), 0) AS n FROM dirs").get() as { n: number }).n;
  }

  /** No file tracked (a first sync is due): one row looked at, not a count of a million. */
  isEmpty(): boolean {
    return this.db.query("SELECT 1 FROM files LIMIT 1").get() === null;
  }

  /** Every tracked file's version key, a directory's files together: what the stat sweep compares against. */
  *trackedKeys(): Generator<{ rel: string; key: string }> {
    // Pages by key (directory, name: a directory's files come together), not one long-lived statement: the caller
    // may yield between rows while batches commit on this connection, and a million rows never sit in memory together.
    const page = this.db.query<{ dir: number; path: string; name: string; key: string }, [number, string]>(
      "SELECT f.dir, d.path, f.name, f.size || ':' || f.mtime_ns || ':' || f.ino AS key FROM files f JOIN dirs d ON d.id = f.dir " +
        "WHERE (f.dir, f.name) > (?, ?) AND f.size >= 0 ORDER BY f.dir, f.name LIMIT 4096",
    );
    for (let after: [number, string] = [-1, ""]; ;) {
      const rows = page.all(after[0], after[1]);
      for (const r of rows) yield { rel: joinPath(r.path, r.name), key: r.key };
      if (rows.length < 4096) return;
      const last = rows.at(-1) as { dir: number; name: string };
      after = [last.dir, last.name];
    }
  }

  countFiles(): number {
    return (this.db.query("SELECT count(*) AS n FROM files").get() as { n: number }).n;
  }

  private putRow(r: StateRow): void {
    const [dir, name] = this.fileKey(r.path, true);
    const s = r.state;
    const [layout, last, values] = this.rrdColumns(s.rrd);
    this.putStmt.run(dir, name, s.size, intValue(s.mtimeNs), intValue(s.ino), hashValue(s.sha256), layout, last, values);
  }

  private putChange(c: ChangeRow): void {
    if (this.historyBytes !== null) this.historyBytes += entryBytes(c);
    const [dir, name] = this.fileKey(c.path, true);
    this.lastChangeId = changeId(c.time, this.lastChangeId);
    const n = c.shared ?? 0;
    if (n > 0 && n <= c.details.length && !c.summary.includes("\0")) {
      const head = this.textId(`${c.summary}\0${c.details.slice(0, n)}`);
      this.changeStmt.run(this.lastChangeId, dir, name, kindValue(c.kind), "", c.details.slice(n), c.added, c.removed, head);
    } else {
      this.changeStmt.run(this.lastChangeId, dir, name, kindValue(c.kind), c.summary, c.details, c.added, c.removed, null);
    }
  }

  /**
   * The change history's size in bytes, as retention counts it (entryBytes: its texts plus a row's overhead), kept
   * as rows come and go; counted once over the whole table when this DB has no count yet (a DB of an earlier
   * version), later only over the rows written after the last recorded count.
   */
  private historyBytes: number | null = null;

  historySize(): number {
    if (this.historyBytes !== null) return this.historyBytes;
    const rec = this.meta<{ bytes: number; maxId: number }>(HISTORY_KEY);
    const sql = `SELECT coalesce(sum(length(CAST(summary AS BLOB)) + length(CAST(details AS BLOB)) + length(CAST(name AS BLOB)) + ${ENTRY_OVERHEAD}), 0) AS n FROM changes WHERE id > ?`;
    const since = rec?.maxId ?? -1;
    const add = (this.db.query(sql).get(since) as { n: number }).n;
    this.historyBytes = (rec?.bytes ?? 0) + add;
    return this.historyBytes;
  }

  /** The count written down (a cheap meta row), so the next start or `status` need not count. */
  saveHistorySize(): void {
    const bytes = this.historySize();
    this.setMeta(HISTORY_KEY, { bytes, maxId: this.lastChangeId });
  }

  /** The oldest and newest change kept (ms), through the table's key: no scan. */
  historySpan(): { first: number | null; last: number | null } {
    const r = this.db.query("SELECT min(id) AS a, max(id) AS b FROM changes").get() as { a: number | null; b: number | null };
    return { first: r.a === null ? null : timeOfChange(r.a), last: r.b === null ? null : timeOfChange(r.b) };
  }

  /**
   * One small step of retention: up to `limit` of the oldest changes made before `beforeMs` go (or, with
   * `beforeMs` null, the oldest `limit` whatever their age: the history is over its byte limit). A short write
   * transaction each, so a daemon's batches never wait long behind it. Returns the rows removed and the time of
   * the oldest change kept.
   */
  pruneHistory(beforeMs: number | null, limit: number, enoughBytes = Number.POSITIVE_INFINITY): { rows: number; bytes: number } {
    const bound = beforeMs === null ? Number.MAX_SAFE_INTEGER : beforeMs * ID_PER_MS;
    const rows = this.db.query<{ id: number; n: number }, [number, number]>(
      `SELECT id, length(CAST(summary AS BLOB)) + length(CAST(details AS BLOB)) + length(CAST(name AS BLOB)) + ${ENTRY_OVERHEAD} AS n FROM changes WHERE id < ? ORDER BY id LIMIT ?`,
    ).all(bound, limit);
    // by bytes: only as many of the oldest as it takes
    let upto = rows.length;
    for (let i = 0, sum = 0; i < rows.length; i++) {
      sum += (rows[i] as { n: number }).n;
      if (sum >= enoughBytes) {
        upto = i + 1;
        break;
      }
    }
    const ids = rows.slice(0, upto);
    if (ids.length === 0) return { rows: 0, bytes: 0 };
    const last = (ids.at(-1) as { id: number }).id;
    let bytes = 0;
    for (const r of ids) bytes += r.n;
    const size = this.historySize();
    this.tx(() => {
      this.db.query("DELETE FROM changes WHERE id <= ?").run(last);
      this.historyBytes = Math.max(0, size - bytes);
      this.db.query("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)").run(HISTORY_KEY, JSON.stringify({ bytes: this.historyBytes, maxId: this.lastChangeId }));
      const kept = this.db.query("SELECT min(id) AS a FROM changes").get() as { a: number | null };
      this.db.query("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)").run(PRUNED_KEY, JSON.stringify({ before: kept.a === null ? timeOfChange(last) + 1 : timeOfChange(kept.a), at: Date.now() }));
    });
    return { rows: ids.length, bytes };
  }

  /** Since when the history is complete (older changes were pruned), or null when nothing was ever pruned. */
  historyPrunedBefore(): number | null {
    return this.meta<{ before: number }>(PRUNED_KEY)?.before ?? null;
  }

  /** The DB's pages: in use, free (reused by new rows), and whether free ones can be given back (auto_vacuum). */
  pages(): { size: number; total: number; free: number; incremental: boolean } {
    const one = (p: string) => Number(Object.values(this.db.query(`PRAGMA ${p}`).get() as Record<string, number>)[0]);
    return { size: one("page_size"), total: one("page_count"), free: one("freelist_count"), incremental: one("auto_vacuum") === 2 };
  }

  /** Gives up to `pages` free pages back to the file system (auto_vacuum = INCREMENTAL only; a short write). */
  releasePages(pages: number): void {
    this.db.query(`PRAGMA incremental_vacuum(${Math.max(1, Math.trunc(pages))})`).all();
  }

  /**
   * Switches the DB to incremental auto-vacuum: rewrites it whole (VACUUM: the DB's size again on disk while it
   * runs, a write lock throughout), so only for a DB small enough to do it in a moment (history.ts decides).
   */
  switchToIncrementalVacuum(): void {
    this.db.exec("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;");
  }

  /** A shared text's id (made if new), through a small cache: a first sync has one per RRD layout. */
  private textId(text: string): number {
    const cached = this.textIds.get(text);
    if (cached !== undefined) return cached;
    const r = this.db.query<{ id: number }, [string]>("SELECT id FROM texts WHERE text = ?").get(text) ??
      (this.db.query<{ id: number }, [string]>("INSERT INTO texts (text) VALUES (?) RETURNING id").get(text) as { id: number });
    this.textIds.set(text, r.id);
    return r.id;
  }

  private textOf(id: number): string {
    const cached = this.texts.get(id);
    if (cached !== undefined) return cached;
    const t = this.db.query<{ text: string }, [number]>("SELECT text FROM texts WHERE id = ?").get(id)?.text ?? "\0";
    this.texts.set(id, t);
    return t;
  }

  private putBackup(v: BackupVersion): void {
    const [dir, name] = this.fileKey(v.path, true);
    this.backupStmt.run(dir, name, v.syncedAt, v.size, v.data ?? null, v.codec ?? 0, v.stored);
  }

  /** Runs fn in a transaction, or inside the one already open (a first-sync slice writing ahead). */
  private tx(fn: () => void): void {
    if (this.inTransaction) fn();
    else this.db.transaction(fn)();
  }

  /**
   * One transaction per batch: rows advance together with the changes they explain and the backup versions
   * published for them, or not at all.
   */
  commit(rows: StateRow[], changes: ChangeRow[], versions: BackupVersion[] = [], routine?: RoutineCommit): void {
    this.tx(() => {
      for (const r of rows) this.putRow(r);
      // Rolled-up routine updates are deliveries too: their notes go with the rest, or the table would grow with
      // every update of every RRD (and each batch's note would pay for it).
      this.replicaVersions.forget(routine === undefined ? rows.map((r) => r.path) : [...rows.map((r) => r.path), ...routine.rows.map((r) => r.path)]);
      for (const c of changes) this.putChange(c);
      for (const v of versions) this.putBackup(v);
      if (routine !== undefined) {
        for (const r of routine.rows) this.putRoutine(r, routine.period);
        this.db.query("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)").run(ROLLUP_KEY, JSON.stringify(routine.ledger));
      }
    });
  }

  /** A routine RRD update: its row in place (a row that went meanwhile is not made again). */
  private putRoutine(r: StateRow, period: number): void {
    const key = this.fileKey(r.path, false);
    if (key === null) return;
    const s = r.state;
    const [, last, values] = r.routine !== undefined ? [null, r.routine.last, r.routine.values] : this.rrdColumns(s.rrd);
    this.routineStmt.run(s.size, intValue(s.mtimeNs), intValue(s.ino), last, values, period, key[0], key[1]);
  }

  /** RRDs whose routine updates counted in `period` (the roll-up summary's "N RRDs updated"). */
  countPeriod(period: number): number {
    return (this.db.query("SELECT count(*) AS n FROM files WHERE period = ?").get(period) as { n: number }).n;
  }

  /** Every RRD layout's id and step (a handful per install). */
  layoutSteps(): Array<{ id: number; step: number }> {
    return this.db.query<{ id: number; def: string }, []>("SELECT id, def FROM rrd_layouts").all().flatMap((r) => {
      try {
        const step = (JSON.parse(r.def) as { step?: unknown }).step;
        return typeof step === "number" && step > 0 ? [{ id: r.id, step }] : [];
      } catch {
        return [];
      }
    });
  }

  /**
   * RRDs not yet logged as stopped whose last update lies before their layout's threshold (one scan, the threshold
   * picked per layout by a CASE), at most `limit`.
   */
  staleCandidates(before: Map<number, number>, limit: number): Array<{ path: string; last: number; updates: number }> {
    if (before.size === 0) return [];
    const cases = [...before].map(([id, t]) => `WHEN ${Math.trunc(id)} THEN ${Number(t)}`).join(" ");
    return this.db.query<{ dir: string; name: string; last: number; updates: number | null }, [number]>(
      `SELECT d.path AS dir, f.name, f.rrd_last AS last, f.updates FROM files f JOIN dirs d ON d.id = f.dir WHERE f.stale IS NULL AND f.layout IS NOT NULL AND f.rrd_last < (CASE f.layout ${cases} ELSE -1e300 END) LIMIT ?`,
    ).all(limit).map((r) => ({ path: joinPath(r.dir, r.name), last: r.last, updates: r.updates ?? 0 }));
  }

  /** RRDs logged as stopped: marked (so each is logged once), with their entries, in one transaction. */
  commitStale(paths: string[], time: number, changes: ChangeRow[], ledger: unknown): void {
    const mark = this.db.query("UPDATE files SET stale = ? WHERE dir = ? AND name = ?");
    this.tx(() => {
      this.db.query("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)").run(ROLLUP_KEY, JSON.stringify(ledger));
      for (const p of paths) {
        const key = this.fileKey(p, false);
        if (key !== null) mark.run(time / 1000, key[0], key[1]);
      }
      for (const c of changes) this.putChange(c);
    });
  }

  /** Change rows alone, with the roll-up's record (the summary entry). */
  commitEntries(changes: ChangeRow[], ledger?: unknown): void {
    this.tx(() => {
      for (const c of changes) this.putChange(c);
      if (ledger !== undefined) this.db.query("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)").run(ROLLUP_KEY, JSON.stringify(ledger));
    });
  }

  /** The routine updates rolled up into one file's row, and when the last was confirmed (its period), if any. */
  rolledUp(path: string): { updates: number; stale: number | null } | null {
    const key = this.fileKey(path, false);
    if (key === null) return null;
    const r = this.db.query<{ updates: number | null; stale: number | null }, [number, string]>("SELECT updates, stale FROM files WHERE dir = ? AND name = ?").get(key[0], key[1]);
    return r === null ? null : { updates: r.updates ?? 0, stale: r.stale };
  }

  /**
   * A first-sync slice: its rows, changes and backups are written into one open transaction as each file is
   * described, while the transfer runs; the slice commits once the destination vouched for it, or rolls back
   * (nothing of it was committed; a crash rolls it back too). No per-file object is kept here.
   */
  beginSlice(): number {
    if (this.inTransaction) throw new Error("a slice is already open");
    // A first sync's transaction touches every page of the inode index: a larger page cache while it is open
    // keeps SQLite from spilling and re-reading them (bounded: 32 MiB, given back at the end).
    this.db.exec(`PRAGMA cache_size = -${SLICE_CACHE_KIB}; BEGIN`);
    this.inTransaction = true;
    return this.maxChangeId();
  }

  get sliceOpen(): boolean {
    return this.inTransaction;
  }

  /** One file of the open slice: its row, its change and its backup copy, as a confirmation would commit them. */
  writeAhead(row: StateRow, change: ChangeRow | null, backup: BackupVersion | null): void {
    if (!this.inTransaction) throw new Error("no slice open");
    this.putRow(row);
    if (change !== null) this.putChange(change);
    if (backup !== null) this.putBackup(backup);
  }

  /** A file of the open slice the destination did not vouch for: what was written ahead for it goes. */
  unwriteAhead(path: string, changesAfter: number, since: number): void {
    const key = this.fileKey(path, false);
    if (key === null) return;
    this.db.query("DELETE FROM files WHERE dir = ? AND name = ?").run(key[0], key[1]);
    this.db.query("DELETE FROM changes WHERE dir = ? AND id > ? AND name = ?").run(key[0], changesAfter, key[1]);
    this.db.query("DELETE FROM backups WHERE dir = ? AND name = ? AND stored IS NULL AND synced_at >= ?").run(key[0], key[1], since);
  }

  /**
   * A first sync's resend list: files its run could not vouch for, kept in a temporary table (a million of them
   * never sit in memory), read back in pieces after the commit.
   */
  resetResend(): void {
    this.db.exec("CREATE TEMP TABLE IF NOT EXISTS resend (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE); DELETE FROM temp.resend;");
  }

  markResend(path: string): void {
    this.db.query("INSERT OR IGNORE INTO temp.resend (path) VALUES (?)").run(path);
  }

  resendChunk(afterId: number, limit: number): Array<{ id: number; path: string }> {
    return this.db.query<{ id: number; path: string }, [number, number]>("SELECT id, path FROM temp.resend WHERE id > ? ORDER BY id LIMIT ?").all(afterId, limit);
  }

  maxChangeId(): number {
    return (this.db.query("SELECT coalesce(max(id), 0) AS n FROM changes").get() as { n: number }).n;
  }

  /** How many changes of each kind were recorded after change `afterId` (a first sync's summary). */
  changeKindsSince(afterId: number): Array<{ kind: string; n: number }> {
    return this.db.query<{ kind: number | string; n: number }, [number]>("SELECT kind, count(*) AS n FROM changes WHERE id > ? GROUP BY kind ORDER BY n DESC")
      .all(afterId)
      .map((r) => ({ kind: kindText(r.kind), n: r.n }));
  }

  /** Files tracked and their bytes. */
  totals(): { files: number; bytes: number } {
    return this.db.query<{ files: number; bytes: number }, []>("SELECT count(*) AS files, coalesce(sum(max(size, 0)), 0) AS bytes FROM files").get() as { files: number; bytes: number };
  }

  /** The change rows written since `afterId`, oldest first (the slice's entries, for the change log). */
  *changesSince(afterId: number): Generator<ChangeRow> {
    yield* this.changeRows("WHERE c.id > ?", [afterId]);
  }

  commitSlice(): void {
    if (!this.inTransaction) throw new Error("no slice open");
    this.db.exec(`COMMIT; PRAGMA cache_size = -${CACHE_KIB}`);
    this.inTransaction = false;
  }

  abortSlice(): void {
    if (!this.inTransaction) return;
    this.inTransaction = false;
    // SQLite rolls a transaction back by itself after some errors (SQLITE_FULL): a second ROLLBACK would fail with
    // "no transaction is active" and hide the error that matters.
    this.db.exec(this.db.inTransaction ? `ROLLBACK; PRAGMA cache_size = -${CACHE_KIB}` : `PRAGMA cache_size = -${CACHE_KIB}`);
    // ids made inside the rolled-back transaction are gone
    this.dirIds.clear();
    this.layoutIds.clear();
    this.layoutDefs.clear();
    this.textIds.clear();
    this.texts.clear();
    this.lastChangeId = this.maxChangeId();
    this.historyBytes = null; // counted again from the last recorded count
  }

  /** Tracked files with this inode: a new path with a tracked file's inode, size and mtime is that file renamed. */
  byInode(ino: string): Array<{ path: string; state: FileState }> {
    const q = this.db.query<FileRow & { dir_path: string; name: string }, [bigint | string]>(
      "SELECT d.path AS dir_path, f.name, f.size, f.mtime_ns, f.ino, f.sha256, f.layout, f.rrd_last, f.rrd_values, f.seed_mtime FROM files f JOIN dirs d ON d.id = f.dir WHERE f.ino = ?",
    );
    q.safeIntegers(true);
    return q.all(intValue(ino)).map((r) => ({ path: joinPath(r.dir_path, r.name), state: this.toState(r) }));
  }

  /** Renames done on the replica: each row moves to its new path, its backup versions follow, the change is recorded. */
  commitRenames(moves: Array<{ from: string; to: string }>, changes: ChangeRow[]): void {
    const drop = this.db.query("DELETE FROM files WHERE dir = ? AND name = ?");
    const move = this.db.query("UPDATE files SET dir = ?, name = ? WHERE dir = ? AND name = ?");
    const dropBackups = this.db.query("DELETE FROM backups WHERE dir = ? AND name = ?");
    const backups = this.db.query("UPDATE backups SET dir = ?, name = ?, stored = CASE WHEN stored = ? THEN ? ELSE stored END WHERE dir = ? AND name = ?");
    this.tx(() => {
      for (const m of moves) {
        const from = this.fileKey(m.from, true);
        const to = this.fileKey(m.to, true);
        drop.run(to[0], to[1]); // a stale row for the new name (its file was gone) gives way
        move.run(to[0], to[1], from[0], from[1]);
        dropBackups.run(to[0], to[1]);
        backups.run(to[0], to[1], m.from, m.to, from[0], from[1]);
      }
      for (const c of changes) this.putChange(c);
      this.replicaVersions.forget(moves.flatMap((m) => [m.from, m.to]));
    });
  }

  /**
   * Every tracked RRD with its identity and the last update its header had when the replica confirmed it (replica
   * lag: src/engine/lag.ts). Streams; the JSON is read by SQLite, not parsed here.
   */
  *syncedRrds(): Generator<{ path: string; size: number; mtimeNs: string; ino: string; last: number }> {
    const q = this.db.query<{ dir: string; name: string; size: number; mtimeNs: number | bigint | string; ino: number | bigint | string; last: number | null }, []>(
      "SELECT d.path AS dir, f.name AS name, f.size AS size, f.mtime_ns AS mtimeNs, f.ino AS ino, f.rrd_last AS last FROM files f JOIN dirs d ON d.id = f.dir WHERE f.rrd_last IS NOT NULL",
    );
    for (const r of q.iterate()) {
      if (typeof r.last === "number") yield { path: joinPath(r.dir, r.name), size: r.size, mtimeNs: String(r.mtimeNs), ino: String(r.ino), last: r.last };
    }
  }

  countRrds(): number {
    return (this.db.query("SELECT count(*) AS n FROM files WHERE rrd_last IS NOT NULL").get() as { n: number }).n;
  }

  /** Every tracked path, directory by directory (a pass looks for the ones gone from the source). */
  *paths(): Generator<string> {
    const q = this.db.query<{ path: string; name: string }, []>("SELECT d.path, f.name FROM files f JOIN dirs d ON d.id = f.dir");
    for (const r of q.iterate()) yield joinPath(r.path, r.name);
  }

  /** The tracked paths under a directory (a directory that vanished takes them along). */
  *pathsUnder(dir: string): Generator<string> {
    // A range on the dirs' unique index: "dir/" ≤ path < "dir0" ('0' follows '/'), without LIKE's wildcards in names.
    const q = this.db.query<{ path: string; name: string }, [string, string, string]>(
      "SELECT d.path, f.name FROM dirs d JOIN files f ON f.dir = d.id WHERE d.path = ? OR (d.path >= ? AND d.path < ?)",
    );
    for (const r of q.iterate(dir, `${dir}/`, `${dir}0`)) yield joinPath(r.path, r.name);
  }

  /**
   * A full pass with deletes on marks the directories it listed (in a temporary table, not in memory); tracked
   * files in directories it never listed (a directory removed whole, or unreadable) are then looked at.
   */
  resetSeenDirs(): void {
    this.db.exec("CREATE TEMP TABLE IF NOT EXISTS seen_dirs (id INTEGER PRIMARY KEY); DELETE FROM temp.seen_dirs;");
  }

  markSeenDir(dir: string): void {
    const id = this.dirId(dir, false);
    if (id !== null) this.db.query("INSERT OR IGNORE INTO temp.seen_dirs (id) VALUES (?)").run(id);
  }

  *pathsInUnseenDirs(): Generator<string> {
    const q = this.db.query<{ path: string; name: string }, []>(
      "SELECT d.path, f.name FROM files f JOIN dirs d ON d.id = f.dir WHERE f.dir NOT IN (SELECT id FROM temp.seen_dirs)",
    );
    for (const r of q.iterate()) yield joinPath(r.path, r.name);
  }

  /** Deletes confirmed on the replica: their rows go, their change rows and moved backups are recorded. */
  commitDeletes(paths: string[], changes: ChangeRow[], versions: BackupVersion[]): void {
    const del = this.db.query("DELETE FROM files WHERE dir = ? AND name = ?");
    this.tx(() => {
      for (const p of paths) {
        const key = this.fileKey(p, false);
        if (key !== null) del.run(key[0], key[1]);
      }
      for (const c of changes) this.putChange(c);
      for (const v of versions) this.putBackup(v);
      this.replicaVersions.forget(paths);
    });
  }

  /** The change history, oldest first, filtered as `rrdsync log` asks; streamed (any size of history). */
  *changes(q: ChangeQuery = {}): Generator<ChangeRow> {
    const where: string[] = [];
    const args: Array<string | number> = [];
    if (q.under !== undefined) {
      // that file, or anything under that directory: index lookups on changes(dir) and dirs(path)
      const p = q.under.replace(/\/+$/, "");
      const [dir, name] = splitPath(p);
      where.push("((c.dir = (SELECT id FROM dirs WHERE path = ?) AND c.name = ?) OR c.dir IN (SELECT id FROM dirs WHERE path = ? OR (path >= ? AND path < ?)))");
      args.push(dir, name, p, `${p}/`, `${p}0`);
    }
    if (q.glob) {
      where.push("(CASE WHEN d.path = '' THEN c.name ELSE d.path || '/' || c.name END) GLOB ?");
      args.push(q.glob);
    }
    // the id carries the time: a range of the table's key
    if (q.since !== undefined) {
      where.push("c.id >= ?");
      args.push(q.since * ID_PER_MS);
    }
    if (q.until !== undefined) {
      where.push("c.id < ?");
      args.push((q.until + 1) * ID_PER_MS);
    }
    if (q.kinds && q.kinds.length > 0) {
      const codes = KINDS.flatMap((k, i) => (q.kinds?.some((w) => k.endsWith(` ${w}`)) ? [i] : []));
      where.push(`(c.kind IN (${codes.join(",") || "NULL"}) OR (typeof(c.kind) = 'text' AND (${q.kinds.map(() => "c.kind LIKE ?").join(" OR ")})))`);
      for (const k of q.kinds) args.push(`%${k}`);
    }
    yield* this.changeRows(where.length ? `WHERE ${where.join(" AND ")}` : "", args);
  }

  private *changeRows(where: string, args: Array<string | number>): Generator<ChangeRow> {
    const sql = `SELECT c.id, d.path AS dir, c.name, c.kind, c.summary, c.details, c.added, c.removed, c.head FROM changes c JOIN dirs d ON d.id = c.dir ${where} ORDER BY c.id`;
    type Row = Omit<ChangeRow, "path" | "time" | "kind"> & { id: number; dir: string; name: string; kind: number | string; head: number | null };
    for (const r of this.db.query<Row, Array<string | number>>(sql).iterate(...args)) {
      let { summary, details } = r;
      if (r.head !== null) {
        const t = this.textOf(r.head);
        const z = t.indexOf("\0");
        summary = t.slice(0, z);
        details = t.slice(z + 1) + details;
      }
      yield { time: timeOfChange(r.id), path: joinPath(r.dir, r.name), kind: kindText(r.kind), summary, details, added: r.added, removed: r.removed };
    }
  }

  /** A text file's kept backup versions, newest first. */
  versionsOf(path: string): BackupVersion[] {
    const key = this.fileKey(path, false);
    if (key === null) return [];
    return this.db
      .query<Omit<BackupVersion, "path">, [number, string]>("SELECT synced_at AS syncedAt, size, stored FROM backups WHERE dir = ? AND name = ? ORDER BY synced_at DESC")
      .all(key[0], key[1])
      .map((v) => ({ path, ...v }));
  }

  /** A kept copy: the newest of `path` (the current one), or the one synced at `syncedAt`; null if none. */
  backupOf(path: string, syncedAt?: number): BackupRow | null {
    const key = this.fileKey(path, false);
    if (key === null) return null;
    const cols = "size, data, codec, stored";
    if (syncedAt !== undefined) {
      return this.db.query<BackupRow, [number, string, number]>(`SELECT ${cols} FROM backups WHERE dir = ? AND name = ? AND synced_at = ?`).get(key[0], key[1], syncedAt);
    }
    return this.db.query<BackupRow, [number, string]>(`SELECT ${cols} FROM backups WHERE dir = ? AND name = ? ORDER BY synced_at DESC LIMIT 1`).get(key[0], key[1]);
  }

  /**
   * Retention by bytes: the superseded versions (all but the newest of each file), oldest first, that must go for
   * the rest to fit in maxBytes. The total of every copy is checked first: usually far below, and one scan.
   */
  supersededOverLimit(maxBytes: number): BackupVersion[] {
    const all = (this.db.query("SELECT coalesce(sum(size), 0) AS n FROM backups").get() as { n: number }).n;
    if (all <= maxBytes) return [];
    const old = "EXISTS (SELECT 1 FROM backups n WHERE n.dir = b.dir AND n.name = b.name AND n.synced_at > b.synced_at)";
    let total = (this.db.query(`SELECT coalesce(sum(size), 0) AS n FROM backups b WHERE ${old}`).get() as { n: number }).n;
    const out: BackupVersion[] = [];
    const q = this.db.query<Omit<BackupVersion, "path"> & { dir: string; name: string }, []>(
      `SELECT d.path AS dir, b.name, b.synced_at AS syncedAt, b.size, b.stored FROM backups b JOIN dirs d ON d.id = b.dir WHERE ${old} ORDER BY b.synced_at`,
    );
    for (const r of q.iterate()) {
      if (total <= maxBytes) break;
      out.push({ path: joinPath(r.dir, r.name), syncedAt: r.syncedAt, size: r.size, stored: r.stored });
      total -= r.size;
    }
    return out;
  }

  forgetVersions(vs: BackupVersion[]): void {
    const del = this.db.query("DELETE FROM backups WHERE dir = ? AND name = ? AND synced_at = ?");
    this.tx(() => {
      for (const v of vs) {
        const key = this.fileKey(v.path, false);
        if (key !== null) del.run(key[0], key[1], v.syncedAt);
      }
    });
  }

  /** Small facts for `rrdsync status` (last batch, last error, down since, pending), JSON-encoded; null removes one. */
  setStatus(values: StatusUpdate): void {
    const put = this.db.query("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)");
    const del = this.db.query("DELETE FROM meta WHERE key = ?");
    this.tx(() => {
      for (const [k, v] of Object.entries(values)) {
        if (v === undefined) continue;
        if (v === null) del.run(`status.${k}`);
        else put.run(`status.${k}`, JSON.stringify(v));
      }
    });
  }

  status(): StatusRecord {
    const out: Record<string, unknown> = {};
    for (const r of this.db.query<{ key: string; value: string }, []>("SELECT key, value FROM meta WHERE key LIKE 'status.%'").all()) {
      out[r.key.slice(7)] = JSON.parse(r.value);
    }
    return out as StatusRecord;
  }

  /** A meta value (JSON), or null. */
  meta<T>(key: string): T | null {
    const r = this.db.query<{ value: string }, [string]>("SELECT value FROM meta WHERE key = ?").get(key);
    return r === null ? null : (JSON.parse(r.value) as T);
  }

  setMeta(key: string, value: unknown): void {
    this.tx(() => {
      if (value === null) this.db.query("DELETE FROM meta WHERE key = ?").run(key);
      else this.db.query("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)").run(key, JSON.stringify(value));
    });
  }

  private importSeed(entries: Array<[string, number]>): number {
    const stmt = this.db.query("INSERT OR IGNORE INTO files (dir, name, size, mtime_ns, ino, sha256, seed_mtime) VALUES (?, ?, -1, 0, 0, NULL, ?)");
    this.tx(() => {
      for (const [p, m] of entries) {
        const [dir, name] = this.fileKey(p, true);
        stmt.run(dir, name, m);
      }
    });
    return entries.length;
  }

  /**
   * Nothing recorded yet of any file (no row, no change, no first sync begun): such a DB describes no replica, and
   * may take a corrected config's pair (a first run that never reached a mistyped standby).
   */
  recordsNothing(): boolean {
    return this.isEmpty() && this.maxChangeId() === 0 && this.meta("first_sync") === null;
  }

  /** How the pair this DB describes compares with `want` (src/store/identity.ts). */
  identityCheck(want: StateIdentity): ReturnType<typeof compareIdentity> {
    return compareIdentity(this.meta(IDENTITY_KEY), want);
  }

  /** Read-side: a DB that describes another pair is an error (exit 2); one that names none yet is taken as it is. */
  checkIdentity(want: StateIdentity): void {
    const c = this.identityCheck(want);
    if (c.kind !== "differs" || this.recordsNothing()) return;
    const m = identityMismatch(this.path, c.had, want);
    throw new StateMismatchError(m.message, m.hint);
  }

  /** Records the pair this DB describes from now on; a DB that recorded nothing also forgets its old status. */
  recordIdentity(want: StateIdentity): void {
    this.tx(() => {
      if (this.recordsNothing()) this.db.query("DELETE FROM meta WHERE key LIKE 'status.%' AND key <> 'status.totals'").run();
      this.db.query("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)").run(IDENTITY_KEY, JSON.stringify(want));
    });
  }

  close(): void {
    this.db.close();
  }
}

/** Is the DB at `path` of an earlier layout (to be upgraded on open)? */
function needsUpgrade(path: string): boolean {
  const db = new Database(path, { readonly: true });
  try {
    const v = (db.query("PRAGMA user_version").get() as { user_version: number }).user_version;
    return v < SCHEMA_VERSION && db.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'files'").get() !== null;
  } catch {
    return false; // damaged or locked: open() says what it is
  } finally {
    db.close();
  }
}

/** Past this size a whole quick_check costs a cron run too much (~1.5 ms per MiB measured): see checkDb. */
const FULL_CHECK_MAX_BYTES = 64 * 1024 ** 2;

/**
 * Opens the DB and brings its schema up to date. A SQLite DB without our tables is another program's: refused
 * before anything is written to it. Damage anywhere is looked for here (checkDb), so a run notices it before it
 * sends or logs anything; `forWriting` also proves the DB takes writes (see probeWrites).
 */
function openDb(path: string, forWriting: boolean): { db: Database; upgraded: boolean } {
  refusePlantedFiles(path);
  const db = new Database(path, { create: forWriting, readwrite: true, strict: true });
  try {
    db.exec("PRAGMA busy_timeout = 5000;");
    const tables = (db.query("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Array<{ name: string }>).map((t) => t.name);
    if (tables.length > 0 && !tables.includes("files")) {
      throw notOurs(path, `a SQLite database of another program (its tables: ${tables.slice(0, 5).join(", ")}${tables.length > 5 ? ", …" : ""})`);
    }
    // A new DB gives pages freed by the history's retention back to the file system a few at a time (only settable
    // before the first table; an existing DB is switched by one VACUUM, see history.ts).
    if (tables.length === 0 && forWriting) db.exec("PRAGMA auto_vacuum = INCREMENTAL;");
    db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
    // A read-side open reaches here only with the current layout (openExisting upgrades under the lock first).
    const upgraded = migrate(db);
    addColumns(db);
    checkDb(db, path);
    if (forWriting) probeWrites(db, path);
    return { db, upgraded };
  } catch (e) {
    db.close();
    throw e;
  }
}

/**
 * SQLite opens the DB and its -wal, -shm and -journal files by name. It follows a symlink at the DB's own name
 * (checked: one planted to an empty file elsewhere became rrdsync's DB, 56 KiB written into it) and refuses one at
 * -wal or -shm with a bare "unable to open database file": each must be absent or a regular file before it is
 * opened, and the message says which and why. (The directory itself is refused when another user can write it,
 * src/safe-files.ts dirProblem, so nobody can plant one after the check.)
 */
export function refusePlantedFiles(path: string): void {
  for (const p of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`]) {
    const why = notPlainFile(p);
    if (why !== null) {
      throw new UserError(`state_file ${path}: ${p} ${why}; rrdsync never opens its files through one`, ExitCode.Usage,
        `remove ${p} (someone else put it there: check who can write ${dirname(path)}), or point state_file elsewhere`);
    }
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
  const scopes = size <= FULL_CHECK_MAX_BYTES ? [""] : ["files", "dirs", "meta", "backups"];
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
      db.query("INSERT INTO changes (dir, name, kind, summary) VALUES (0, '', 'probe', '')").run();
      db.query("INSERT OR REPLACE INTO files (dir, name, size, mtime_ns, ino) VALUES (0, '', 0, 0, 0)").run();
      db.query("INSERT OR REPLACE INTO backups (dir, name, synced_at, size) VALUES (0, '', 0, 0)").run();
    } finally {
      db.exec("ROLLBACK");
    }
  } catch (e) {
    const code = (e as { code?: string }).code ?? "";
    if (isCorruption(e)) throw e;
    if (isDiskFull(e)) throw stateDiskFull(path, e);
    if (code.startsWith("SQLITE_READONLY") || code.startsWith("SQLITE_CANTOPEN") || code.startsWith("SQLITE_PERM") || code.startsWith("SQLITE_IOERR")) {
      throw new UserError(`state_file ${path}: the state DB cannot be written (${(e as Error).message})`, ExitCode.Usage,
        `make ${path} and its directory writable for this user (a read-only mount? chattr +i? lsattr -d ${dirname(path)}), free some space, or point state_file (--state) elsewhere`);
    }
    throw e;
  }
}

/** The state DB's file system is full (or the user's quota): SQLite's SQLITE_FULL, or the kernel's ENOSPC/EDQUOT. */
export function isDiskFull(e: unknown): boolean {
  const code = (e as { code?: string }).code ?? "";
  return code === "SQLITE_FULL" || code === "ENOSPC" || code === "EDQUOT";
}

/**
 * A full state disk is the admin's to fix, not a bug: exit 1 (what was sent and not recorded goes again with the
 * next run: the state only advances by commits), the message docs/troubleshooting.md promises.
 */
export function stateDiskFull(path: string | null, e?: unknown): UserError {
  const dir = path === null ? null : dirname(path);
  return new UserError(`${path === null ? "" : `state_file ${path}: `}no space left on the state disk${e instanceof Error ? ` (${e.message})` : ""}: nothing more was recorded; files sent but not recorded are sent again by the next run`,
    ExitCode.Pending, dir === null ? "free space where state_file lives (df -h), or move state_file to a larger file system" : `free space on the file system that holds ${dir} (df -h ${dir}), or move state_file to a larger one`);
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
    st = lstatSync(path);
  } catch {
    return { kind: "absent" };
  }
  if (st.isSymbolicLink()) return { kind: "foreign", why: "it is a symlink (rrdsync never writes through one)" };
  if (st.isDirectory()) return { kind: "foreign", why: "it is a directory" };
  if (!st.isFile()) return { kind: "foreign", why: "it is not a regular file" };
  if (st.size === 0) return { kind: "empty" }; // a DB SQLite will initialise
  let head: Buffer;
  try {
    const fd = openRead(path);
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
    const text = (readOwnFile(path, 512 * 1024 ** 2) ?? Buffer.alloc(0)).toString("utf8");
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
