// Backup copies of text files as last synced, mirroring the tree; written atomically (temp + rename).
import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync, unlinkSync } from "node:fs";
import { basename, dirname, join } from "node:path";

export function backupPath(backupDir: string, relPath: string): string {
  if (relPath === "" || relPath.startsWith("/") || relPath.split("/").some((s) => s === ".." || s === ".")) {
    throw new Error(`refusing backup path outside the backup dir: ${JSON.stringify(relPath)}`);
  }
  return join(backupDir, relPath);
}

export async function writeBackup(srcPath: string, backupDir: string, relPath: string): Promise<void> {
  const final = backupPath(backupDir, relPath);
  const dir = dirname(final);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${basename(final)}.rrdsync-tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`);
  try {
    // No fsync per file (it cost 1 ms each, most of an initial sync): temp + rename already means a crash leaves
    // the old backup or the new one, never a torn one; after a power cut a lost backup only makes the next
    // entry for that file say "no earlier copy" instead of a diff. The replica and the state never depend on it.
    await Bun.write(tmp, Bun.file(srcPath));
    renameSync(tmp, final);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** Renames `from` to `to`, creating `to`'s directory the first time `made` meets it (a batch publishes thousands). */
export function renameCreatingDir(from: string, to: string, made: Set<string>): void {
  const dir = dirname(to);
  if (!made.has(dir)) {
    mkdirSync(dir, { recursive: true });
    made.add(dir);
  }
  renameSync(from, to);
}

/** A rename in the tree: the file's backup follows it (its old versions follow in the state DB). */
export function moveBackup(backupDir: string, from: string, to: string): void {
  const src = backupPath(backupDir, from);
  if (!existsSync(src)) return;
  renameCreatingDir(src, backupPath(backupDir, to), new Set());
}

export function removeBackup(backupDir: string, relPath: string): void {
  try {
    unlinkSync(backupPath(backupDir, relPath));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
}

/**
 * Backups are staged (copied under the backup dir's staging area while the transfer runs) and published by a
 * rename once the destination confirmed the file: the copy costs nothing after the transfer, the publish is atomic.
 */
export class BackupStager {
  readonly stagingDir: string;
  private seq = 0;
  private madeDirs = new Set<string>();

  constructor(private readonly backupDir: string) {
    this.stagingDir = join(backupDir, ".rrdsync-staging");
    // Leftovers of a killed run were never published: they are garbage. Best effort: an unwritable backup dir
    // shows up as an audit gap per file when staging fails, not as a failed run.
    try {
      rmSync(this.stagingDir, { recursive: true, force: true });
    } catch {
      // reported per file by stage()
    }
  }

  stage(srcPath: string): string {
    if (this.seq === 0) mkdirSync(this.stagingDir, { recursive: true });
    const tmp = join(this.stagingDir, `${process.pid}-${++this.seq}`);
    copyFileSync(srcPath, tmp);
    return tmp;
  }

  publish(staged: string, relPath: string): void {
    renameCreatingDir(staged, backupPath(this.backupDir, relPath), this.madeDirs);
  }

  discard(staged: string): void {
    rmSync(staged, { force: true });
  }
}
