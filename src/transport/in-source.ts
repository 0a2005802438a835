// What an rsync outcome is checked against afterwards: the source file as it is now (a path under the source root).
import { lstatSync } from "node:fs";
import { join } from "node:path";
import { fsPath } from "../names.ts";

/** Is there anything at this tree path now (a file rsync named in an error line, or one it may have sent)? */
export function existsInSource(sourceDir: string, rel: string): boolean {
  return sourceCtime(sourceDir, rel) !== null;
}

/** The inode's change time now (ns), or null when the path is gone. */
export function sourceCtime(sourceDir: string, rel: string): bigint | null {
  try {
    return lstatSync(fsPath(join(sourceDir, rel)), { bigint: true }).ctimeNs;
  } catch {
    return null;
  }
}

/** Is this tree path a directory now (an error about it says nothing of which files under it failed)? */
export function isDirInSource(sourceDir: string, rel: string): boolean {
  try {
    return lstatSync(fsPath(join(sourceDir, rel))).isDirectory();
  } catch {
    return false;
  }
}

/**
 * The source root's identity now ("dev:ino" of the directory itself, not followed if it became a symlink), or null
 * when nothing is there. A process started in the tree (rsync chdirs into it) keeps the directory it entered: once
 * the root is replaced (`mv src src.old; mkdir src`) it reads the old tree, so what was prepared for one root is
 * never used for another, and a batch is judged against the root its files were looked at under.
 */
export function rootIdOf(sourceDir: string): string | null {
  try {
    const st = lstatSync(sourceDir);
    return st.isDirectory() ? `${st.dev}:${st.ino}` : null;
  } catch {
    return null;
  }
}
