// Backup copies of text files as last synced, mirroring the tree; written atomically (temp + fsync + rename).
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, unlinkSync } from "node:fs";
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
    await Bun.write(tmp, Bun.file(srcPath));
    const fd = openSync(tmp, "r");
    try {
      fsyncSync(fd); // the rename must never publish a backup whose data is not on disk
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, final);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

export function removeBackup(backupDir: string, relPath: string): void {
  try {
    unlinkSync(backupPath(backupDir, relPath));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
}
