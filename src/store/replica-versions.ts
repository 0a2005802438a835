// The versions of a file the replica may hold besides the one its state row says it confirmed (issue 23): a
// batch's files are noted here before the transfer starts and forgotten in the commit that records them, so a
// kill -9 between the two leaves the version that may have landed known (DRBD's activity log, per file); a file
// that changed while it was sent notes what landed; `unfence --keep-replica` notes the standby's version it took
// as the truth. The replica check (engine/guard.ts) accepts any of them as rrdsync's own.
//
// Bounded: the table is empty between healthy batches; rows of files that keep failing are capped per file, and
// rows of sends and moves go after RETENTION_MS. Made on first use: a state DB of an earlier version needs no upgrade.
import type { Database, Statement } from "bun:sqlite";

export type NoteWhy = "sent" | "moved" | "accepted";
const WHY: Record<NoteWhy, number> = { sent: 0, moved: 1, accepted: 2 };

/** Per file, at most this many versions of sends that were not confirmed (the newest). */
const PER_FILE = 8;
/** Sends and moves noted longer ago than this are forgotten (accepted versions stay until the file is delivered again). */
export const RETENTION_MS = 30 * 24 * 3600 * 1000;

// upto_ns: a file that changed while it was sent holds some version between mtime_ns and upto_ns (size -1: any).
const TABLE = `CREATE TABLE IF NOT EXISTS replica_versions (
  path TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns NOT NULL, why INTEGER NOT NULL, at INTEGER NOT NULL, upto_ns,
  PRIMARY KEY (path, size, mtime_ns)
) WITHOUT ROWID`;

export interface NotedVersion {
  /** -1: any size (a range of versions) */
  size: number;
  mtimeNs: bigint;
  /** a range: any version whose mtime lies from mtimeNs to this */
  uptoNs?: bigint;
}

export class ReplicaVersions {
  /** the table exists and may hold rows: until it does, nothing is asked or deleted (the common case costs nothing) */
  private any: boolean;
  /**
   * the paths this process noted and has not forgotten yet, while every row is one of them (`onlyMine`): a batch's
   * commit then clears the table in one statement instead of a delete per file
   */
  private readonly mine = new Set<string>();
  private onlyMine: boolean;
  private insert: Statement | null = null;

  constructor(private readonly db: Database) {
    this.any = db.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'replica_versions'").get() !== null
      && db.query("SELECT 1 FROM replica_versions LIMIT 1").get() !== null;
    this.onlyMine = !this.any;
  }

  /** Notes these versions (inside the caller's transaction, or in one of its own). */
  note(entries: Array<{ path: string; size: number; mtimeNs: string | bigint; uptoNs?: bigint }>, why: NoteWhy, now = Date.now()): void {
    if (entries.length === 0) return;
    const hadRows = this.any;
    if (this.insert === null) {
      this.db.exec(TABLE);
      this.insert = this.db.query("INSERT OR REPLACE INTO replica_versions (path, size, mtime_ns, why, at, upto_ns) VALUES (?, ?, ?, ?, ?, ?)");
    }
    const ins = this.insert;
    const cap = this.db.query(
      `DELETE FROM replica_versions WHERE path = ?1 AND why <> ${WHY.accepted} AND at < coalesce((SELECT at FROM replica_versions WHERE path = ?1 AND why <> ${WHY.accepted} ORDER BY at DESC LIMIT 1 OFFSET ${PER_FILE - 1}), 0)`,
    );
    if (why === "accepted") this.onlyMine = false; // kept until their file is delivered again, across runs
    else for (const e of entries) this.mine.add(e.path);
    this.db.transaction(() => {
      for (const e of entries) ins.run(e.path, e.size, BigInt(e.mtimeNs), WHY[why], now, e.uptoNs ?? null);
      // Files noted before and not delivered since keep failing: only their newest versions can be there.
      if (hadRows) for (const e of entries) cap.run(e.path);
      this.db.query(`DELETE FROM replica_versions WHERE why <> ${WHY.accepted} AND at < ?`).run(now - RETENTION_MS);
    })();
    this.any = true;
  }

  /** The noted versions of these paths (one query per batch, and none at all while the table is empty). */
  of(paths: string[]): Map<string, NotedVersion[]> {
    const out = new Map<string, NotedVersion[]>();
    if (!this.any || paths.length === 0) return out;
    const q = this.db.query<{ size: number; m: bigint | number; u: bigint | number | null }, [string]>("SELECT size, mtime_ns AS m, upto_ns AS u FROM replica_versions WHERE path = ?");
    q.safeIntegers(true);
    for (const p of paths) {
      const rows = q.all(p);
      if (rows.length > 0) out.set(p, rows.map((r) => ({ size: Number(r.size), mtimeNs: BigInt(r.m), ...(r.u === null ? {} : { uptoNs: BigInt(r.u) }) })));
    }
    return out;
  }

  /** The replica now holds the version the state records for these paths (or they are gone): the notes go. */
  forget(paths: string[]): void {
    if (!this.any) return;
    if (this.onlyMine && paths.length >= this.mine.size) {
      const set = new Set(paths);
      let all = true;
      for (const p of this.mine) if (!set.has(p)) all = false;
      if (all) {
        // the healthy case: the batch's own notes, all of them recorded now
        this.db.exec("DELETE FROM replica_versions");
        this.mine.clear();
        this.any = false;
        return;
      }
    }
    const del = this.db.query("DELETE FROM replica_versions WHERE path = ?");
    for (const p of paths) {
      del.run(p);
      this.mine.delete(p);
    }
    this.any = this.db.query("SELECT 1 FROM replica_versions LIMIT 1").get() !== null;
    if (!this.any) this.onlyMine = true;
  }
}
