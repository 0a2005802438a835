// Kept backup versions of text files, for `rrdsync restore`: the current copy stays at backup_dir/<path> (the seed's
// layout, which the diffs read); a superseded copy moves to backup_dir/.rrdsync-versions/<path>@<synced-at-ms>.
// Retention: at most keep_versions per file (the current one included), and max_backup_bytes for all old ones.
import { rmSync, statSync } from "node:fs";
import { join } from "node:path";
import type { BackupVersion, StateStore } from "../store/state.ts";
import { backupPath, renameCreatingDir } from "./backup.ts";

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
   * Before a new current copy of `rel` is published: moves the current one aside, if there is one, and returns its
   * row as it now is (to be committed with the batch). Without a row (a seed backup), its mtime dates it.
   */
  supersede(rel: string): BackupVersion | null {
    const current = backupPath(this.backupDir, rel);
    // No exception for the common "no copy yet" (a first sync asks 4,000 times; a throw costs ~10× a return).
    const st = statSync(current, { throwIfNoEntry: false });
    if (st === undefined) return null;
    const size = st.size;
    const mtime = Math.floor(st.mtimeMs);
    const known = this.store.versionsOf(rel).find((v) => v.stored === rel);
    const syncedAt = known?.syncedAt ?? mtime;
    const stored = `${VERSIONS_DIR}/${rel}@${syncedAt}`;
    renameCreatingDir(current, join(this.backupDir, stored), this.madeDirs);
    return { path: rel, syncedAt, size: known?.size ?? size, stored };
  }

  /** After a batch committed: drops versions beyond keep_versions of the files it touched, then by bytes. */
  prune(touched: Iterable<string>): string[] {
    const dropped: BackupVersion[] = [];
    for (const rel of touched) {
      const old = this.store.versionsOf(rel).filter((v) => v.stored !== rel);
      dropped.push(...old.slice(Math.max(0, this.retention.keepVersions - 1)));
    }
    if (this.retention.maxBackupBytes > 0) {
      const gone = new Set(dropped.map((v) => `${v.path}\0${v.syncedAt}`));
      const old = this.store.allVersions().filter((v) => v.stored !== v.path && !gone.has(`${v.path}\0${v.syncedAt}`));
      let total = old.reduce((n, v) => n + v.size, 0);
      for (const v of old) {
        if (total <= this.retention.maxBackupBytes) break;
        dropped.push(v);
        total -= v.size;
      }
    }
    for (const v of dropped) rmSync(join(this.backupDir, v.stored), { force: true });
    this.store.forgetVersions(dropped);
    return dropped.map((v) => v.stored);
  }
}
