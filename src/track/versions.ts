// Kept backup versions of text files, for `rrdsync restore`: every copy is a row of the state DB's backups table (the
// newest per file is the current one). A copy held in the DB stays where it is when a newer one comes; a copy that
// is a file at backup_dir/<path> (a large file, or the seed's) moves to backup_dir/.rrdsync-versions/<path>@<ms>.
// Retention: at most keep_versions per file (the current one included), and max_backup_bytes for all old ones.
import { rmSync, statSync } from "node:fs";
import { join } from "node:path";
import type { BackupVersion, StateStore } from "../store/state.ts";
import { backupPath, renameCreatingDir } from "./backup.ts";
import { fsPath } from "../names.ts";

export const VERSIONS_DIR = ".rrdsync-versions";

export interface Retention {
  /** versions kept per file, the current one included (≥ 1) */
  keepVersions: number;
  /** bytes all superseded versions may take together; 0 = no limit */
  maxBackupBytes: number;
}

export class BackupVersions {
  private madeDirs = new Set<string>();

  constructor(private readonly backupDir: string, private readonly store: StateStore, private readonly retention: Retention) {}

  /**
   * Before a new current copy of `rel` is published: a current copy that is a file at backup_dir/<rel> moves aside,
   * and its row as it now is is returned (to be committed with the batch). Without a row (a seed backup), its mtime
   * dates it. Copies held in the DB need nothing: the newer row supersedes them.
   */
  supersede(rel: string): BackupVersion | null {
    const current = backupPath(this.backupDir, rel);
    // No exception for the common "no copy yet" (a throw costs ~10× a return).
    const st = statSync(fsPath(current), { throwIfNoEntry: false });
    if (st === undefined) return null;
    const known = this.store.versionsOf(rel).find((v) => v.stored === rel);
    const syncedAt = known?.syncedAt ?? Math.floor(st.mtimeMs);
    const stored = `${VERSIONS_DIR}/${rel}@${syncedAt}`;
    renameCreatingDir(current, join(this.backupDir, stored), this.madeDirs);
    return { path: rel, syncedAt, size: known?.size ?? st.size, stored };
  }

  /** After a batch committed: drops versions beyond keep_versions of the files it touched, then by bytes. */
  prune(touched: Iterable<string>): string[] {
    const byCount: BackupVersion[] = [];
    for (const rel of touched) byCount.push(...this.store.versionsOf(rel).slice(Math.max(1, this.retention.keepVersions)));
    this.forget(byCount);
    const byBytes = this.retention.maxBackupBytes > 0 ? this.store.supersededOverLimit(this.retention.maxBackupBytes) : [];
    this.forget(byBytes);
    return [...byCount, ...byBytes].map((v) => v.stored ?? `${v.path}@${v.syncedAt}`);
  }

  private forget(vs: BackupVersion[]): void {
    if (vs.length === 0) return;
    for (const v of vs) if (v.stored !== null) rmSync(fsPath(join(this.backupDir, v.stored)), { force: true });
    this.store.forgetVersions(vs);
  }
}
