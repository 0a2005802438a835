// The audit trail of confirmed work, and the one commit path that sends, renames and deletes all use:
// change-log entries are written first (at-least-once), then one state transaction advances the files with the
// change rows that explain them. An audit failure (disk full, unwritable backup dir) never undoes replication:
// it is an audit gap, reported as an error naming the files, and the run counts it as a problem.
import type { ChangeTracking } from "../config/types.ts";
import type { BackupVersion, ChangeRow, StateRow, StateStore } from "../store/state.ts";
import { type BackupStager, moveBackup } from "../track/backup.ts";
import type { ChangeRecord } from "../track/change.ts";
import type { ChangeLog } from "../track/changelog.ts";
import type { BackupVersions } from "../track/versions.ts";
import type { Described } from "./describe.ts";
import type { Planned } from "./plan.ts";
import type { EngineLog } from "./types.ts";
import { quoteName } from "../names.ts";
import type { RollupLedger } from "./rollup.ts";


/** What one commit carries: state rows, their change rows, and the backup versions published for them. */
export interface AuditBatch {
  rows: StateRow[];
  /** routine RRD updates (rolled up): their rows advance in place, no change row of their own */
  routine: StateRow[];
  changes: ChangeRow[];
  versions: BackupVersion[];
  /** audit gaps and flagged files found while publishing */
  problems: number;
}

export const newAuditBatch = (): AuditBatch => ({ rows: [], routine: [], changes: [], versions: [], problems: 0 });

export interface AuditDeps {
  store: StateStore;
  changeLog: ChangeLog;
  stager: BackupStager;
  versions: BackupVersions;
  tracking: ChangeTracking;
  log: EngineLog;
  /** the roll-up of routine RRD updates (null: change tracking off) */
  ledger: RollupLedger | null;
}

export class Audit {
  constructor(private readonly d: AuditDeps) {}

  /**
   * One confirmed file: its change-log entry (queued), then its backup published, so a crash in between repeats
   * an entry rather than losing one. Adds its state row to the batch.
   */
  publish(f: Planned, described: Described | undefined, b: AuditBatch): void {
    const { log, changeLog } = this.d;
    const d = described ?? { rec: null, staged: null };
    if (f.damage) {
      b.problems++;
      log.error(`${f.rel}: shipped although it looks damaged: ${f.damage}`);
    }
    let id: { sha256: string | null; rrd: string | null };
    try {
      const rec = d.rec;
      if (rec instanceof Error) throw rec;
      if (f.repair && this.d.tracking.enabled) {
        // Sent again because the replica's copy was wrong: an entry whether or not the source changed too.
        const time = new Date();
        const change = repairedRowFor(f, rec, time.getTime());
        changeLog.append(time, f.rel, change.details);
        if (rec) this.keepBackup(f.rel, d, rec.size, time.getTime(), b);
        b.changes.push(change);
        log.info(`repaired ${f.rel}: ${f.repair}`);
        id = rec ? { sha256: rec.sha256, rrd: rec.rrd ?? null } : { sha256: f.prev?.sha256 ?? null, rrd: f.prev?.rrd ?? null };
      } else if (rec === null) {
        id = { sha256: f.prev?.sha256 ?? null, rrd: f.prev?.rrd ?? null };
      } else if (rec.routine && !f.damage && !rec.damage && this.d.ledger !== null) {
        // Routine: the row advances in place and counts in the roll-up; an entry only for an RRD that resumes
        // after it was logged as stopped, or when rrd_updates asks for every one.
        const { ledger, tracking } = this.d;
        const stale = f.prev?.stale ?? null;
        if (stale !== null || tracking.rrdUpdates === "every") {
          const time = Date.now();
          const change = changeRowFor(f, rec, time);
          if (stale !== null) {
            Object.assign(change, { kind: "rrd resumed", summary: `resumed: ${rec.summary}`, details: `RRD updating again (logged as stopped at ${new Date(stale * 1000).toISOString().replace(/\.\d+Z$/, "Z")}).\n${rec.details}` });
            ledger.exception("resumed", f.rel);
            log.info(`${f.rel}: resumed updating`);
          }
          changeLog.append(new Date(time), f.rel, change.details);
          b.changes.push(change);
        }
        ledger.routine(rec.last ?? 0);
        b.routine.push({
          path: f.rel, state: { ...f.facts, sha256: null, rrd: rec.rrd ?? null },
          routine: rec.last !== undefined && rec.lastDs !== undefined ? { last: rec.last, values: JSON.stringify(rec.lastDs) } : undefined,
        });
        log.debug(`rolled up ${f.rel}: ${rec.summary}`);
        return;
      } else {
        const time = Date.now();
        const change = changeRowFor(f, rec, time);
        changeLog.append(new Date(time), f.rel, change.details);
        this.keepBackup(f.rel, d, rec.size, time, b);
        b.changes.push(change);
        if (d.backupError) {
          b.problems++;
          log.error(`${f.rel}: synced and logged, but its backup could not be written (audit gap: its next change cannot be diffed): ${d.backupError}`);
        }
        log.debug(`recorded ${rec.kind} ${f.rel}: ${rec.summary}`);
        if (rec.fileKind === "rrd") this.d.ledger?.exception(rrdException(rec.kind, change.summary), f.rel);
        id = { sha256: rec.sha256, rrd: rec.rrd ?? null };
      }
    } catch (e) {
      if (d.staged) this.d.stager.discard(d.staged);
      b.problems++;
      log.error(`${f.rel}: synced, but its change could not be recorded (audit gap): ${(e as Error).message}`);
      id = { sha256: null, rrd: null };
    }
    b.rows.push({ path: f.rel, state: { ...f.facts, ...id } });
  }

  /**
   * The new copy becomes the current backup: a staged file published under backup_dir, or bytes held in the state
   * DB. A copy that is a file at backup_dir/<path> (large, or the seed's) moves aside as an old version first.
   */
  private keepBackup(rel: string, d: Described, size: number, syncedAt: number, b: AuditBatch): void {
    if (!d.staged && !d.copy) return;
    const old = this.d.versions.supersede(rel);
    if (old) b.versions.push(old);
    if (d.staged) {
      this.d.stager.publish(d.staged, rel);
      b.versions.push({ path: rel, syncedAt, size, stored: rel });
    } else if (d.copy) {
      b.versions.push({ path: rel, syncedAt, size: d.copy.size, stored: null, data: d.copy.data, codec: d.copy.codec });
    }
  }

  /** A staged backup whose file was not confirmed is garbage. */
  discard(d: Described | undefined): void {
    if (d?.staged) this.d.stager.discard(d.staged);
  }

  /**
   * The one commit: the queued entries are written (a failure is an audit gap, not a lost replication), then
   * `advance` runs the state transaction. Returns the problems found (gaps), including the batch's own.
   */
  commit(b: AuditBatch, what: string, advance: () => void): number {
    let problems = b.problems;
    try {
      this.d.changeLog.flush();
    } catch (e) {
      // Disk full, or not writable: replication goes on (the replica has these files), the gap is an error.
      problems += b.changes.length;
      const names = b.changes.slice(0, 20).map((c) => quoteName(c.path)).join(", ");
      this.d.log.error(`the change log cannot be written (${(e as Error).message}): audit gap for ${b.changes.length} ${what}: ${names}${b.changes.length > 20 ? ", …" : ""} (they are in the state DB: rrdsync log)`);
    }
    advance();
    // Only a file with an older copy can exceed keep_versions or max_backup_bytes (a first sync has none).
    if (b.versions.length > 0) this.pruneVersions(b.versions);
    return problems;
  }

  /** Sent files: the batch's rows advance with their changes (inside a first-sync slice's transaction when one is open). */
  commitSent(b: AuditBatch): number {
    const { ledger } = this.d;
    const routine = ledger !== null && (b.routine.length > 0 || b.changes.length > 0) ? { rows: b.routine, period: ledger.period, ledger: ledger.record } : undefined;
    return this.commit(b, "entries", () => this.d.store.commit(b.rows, b.changes, b.versions, routine));
  }

  /** Renames done on the replica: entries, the backups follow, then the rows move. */
  commitMoves(moves: Array<{ from: string; to: string; rrd: boolean }>): number {
    const time = new Date();
    const b = newAuditBatch();
    for (const m of moves) {
      const details = `Renamed: ${quoteName(m.from)} → ${quoteName(m.to)} (moved on the replica; nothing re-sent).`;
      this.d.changeLog.append(time, m.to, details);
      b.changes.push({ time: time.getTime(), path: m.to, kind: `${m.rrd ? "rrd" : "file"} renamed`, summary: `renamed from ${m.from}`, details, added: 0, removed: 0 });
      if (m.rrd) this.d.ledger?.exception("renamed", m.to);
      this.d.log.info(`renamed on the replica: ${m.from} → ${m.to}`);
    }
    return this.commit(b, "renames", () => {
      for (const m of moves) {
        try {
          moveBackup(this.d.tracking.backupDir, m.from, m.to);
        } catch (e) {
          this.d.log.warn(`${m.to}: its backup could not follow the rename (${(e as Error).message}); its next change is logged without a diff`);
        }
      }
      this.d.store.commitRenames(moves, b.changes);
    });
  }

  /** Deletes confirmed on the replica: entries (the last backup kept restorable), then the rows go. */
  commitDeletes(paths: string[]): number {
    const time = new Date();
    const b = newAuditBatch();
    for (const rel of paths) {
      const prev = this.d.store.get(rel);
      let old: BackupVersion | null = null;
      try {
        old = this.d.versions.supersede(rel);
      } catch (e) {
        this.d.log.warn(`${rel}: its backup could not be kept as an old version: ${(e as Error).message}`);
      }
      if (old) b.versions.push(old);
      // a copy held in the DB stays there as it is: restorable too
      const kept = old !== null || this.d.store.backupOf(rel) !== null;
      const details = `File deleted (it was ${prev && prev.size >= 0 ? `${prev.size} bytes` : "of unknown size"}).${kept ? `\nIts last backup is kept: rrdsync restore ${quoteName(rel)}` : ""}`;
      this.d.changeLog.append(time, rel, details);
      b.changes.push({ time: time.getTime(), path: rel, kind: `${prev?.rrd ? "rrd" : "file"} deleted`, summary: "deleted", details, added: 0, removed: 0 });
      if (prev?.rrd) this.d.ledger?.exception("deleted", rel);
      this.d.log.info(`deleted on the replica: ${rel}`);
    }
    return this.commit(b, "deletes", () => this.d.store.commitDeletes(paths, b.changes, b.versions));
  }

  /** Retention after the batch is committed: a failure here loses no data, it only keeps old copies longer. */
  private pruneVersions(published: BackupVersion[]): void {
    try {
      const touched = new Set(published.map((v) => v.path));
      const dropped = this.d.versions.prune(touched);
      if (dropped.length > 0) this.d.log.debug(`retention: ${dropped.length} old backup versions removed`);
    } catch (e) {
      this.d.log.warn(`backup retention failed (old versions are kept): ${(e as Error).message}`);
    }
  }
}

/** The summary's name for a non-routine RRD entry. */
function rrdException(kind: string, summary: string): string {
  if (kind === "created") return "created";
  if (summary.includes("DAMAGED")) return "shipped looking damaged";
  if (summary.includes("STRUCTURE CHANGED")) return "structure changed";
  if (summary.includes("backwards")) return "last update went backwards";
  return "other changes";
}

/** The change row of a file verify --repair sent again: why, and what changed in the source too, if anything. */
export function repairedRowFor(f: Planned, rec: ChangeRecord | null, time: number): ChangeRow {
  const fileKind = rec?.fileKind ?? (f.prev?.rrd ? "rrd" : "file");
  const details = `Repaired: ${f.repair}; sent again (${f.facts.size} bytes).${rec ? `\n${rec.details}` : ""}`;
  return { time, path: f.rel, kind: `${fileKind} repaired`, summary: `repaired: ${f.repair}`, details, added: rec?.added ?? 0, removed: rec?.removed ?? 0 };
}

/** The change row (and change-log body) of a recorded file: a file shipped despite damage says so first. */
export function changeRowFor(f: Planned, rec: ChangeRecord, time: number): ChangeRow {
  const details = f.damage ? `ERROR: shipped although it looks damaged: ${f.damage}\n${rec.details}` : rec.details;
  return {
    time, path: f.rel, kind: `${rec.fileKind} ${rec.kind}`, summary: f.damage ? `${rec.summary}, DAMAGED` : rec.summary,
    details, added: rec.added, removed: rec.removed, shared: f.damage ? undefined : rec.shared,
  };
}
