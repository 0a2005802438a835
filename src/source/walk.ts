// The tree walk: yields the monitored regular files under a root, never following a symlink anywhere.
import { type BigIntStats, type Dirent, lstatSync, readdirSync } from "node:fs";
import { join } from "node:path";

export interface WalkedFile {
  /** relative to the root, '/'-separated */
  rel: string;
  abs: string;
  stat: BigIntStats;
}

export interface WalkOptions {
  /** suffixes; empty = every regular file */
  extensions: string[];
  /** absolute paths (files or directories) that belong to rrdsync itself and must not be replicated */
  exclude: Set<string>;
  /** a problem with one entry (unreadable dir, undecodable name): reported, the walk goes on */
  onProblem: (rel: string, reason: string) => void;
  /** symlinks are skipped, not followed: counted for the summary */
  onSymlink?: (rel: string) => void;
}

export function matchesExtensions(name: string, extensions: string[]): boolean {
  if (extensions.length === 0) return true;
  for (const e of extensions) if (name.endsWith(e)) return true;
  return false;
}

/**
 * Depth-first, one directory listing in memory at a time, so a million-file tree streams.
 * lstat, never stat: a symlink (to a file or a directory, inside or outside the tree) is never followed,
 * so nothing outside the source tree is ever read or sent.
 */
export function* walkTree(root: string, opts: WalkOptions): Generator<WalkedFile> {
  const stack: string[] = [""];
  while (stack.length > 0) {
    const relDir = stack.pop() as string;
    const absDir = relDir === "" ? root : join(root, relDir);
    let entries: Dirent[];
    try {
      entries = readdirSync(absDir, { withFileTypes: true });
    } catch (e) {
      opts.onProblem(relDir || ".", `cannot read directory: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      continue;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const subdirs: string[] = [];
    for (const entry of entries) {
      const name = entry.name;
      const rel = relDir === "" ? name : `${relDir}/${name}`;
      const abs = `${absDir}/${name}`;
      if (opts.exclude.has(abs)) continue;
      // The directory entry's type (d_type) spares an lstat for directories, symlinks and unmonitored names:
      // on a 20,000-file tree that is half of a no-change pass. Only file systems without d_type get lstat.
      if (entry.isDirectory()) {
        subdirs.push(rel);
        continue;
      }
      if (entry.isSymbolicLink()) {
        opts.onSymlink?.(rel);
        continue;
      }
      const known = entry.isFile() || entry.isFIFO() || entry.isSocket() || entry.isBlockDevice() || entry.isCharacterDevice();
      if (known && !(entry.isFile() && matchesExtensions(name, opts.extensions))) continue;
      if (name.includes("\uFFFD")) {
        // Bun decodes names as UTF-8; an invalid byte sequence cannot be turned back into the real name.
        opts.onProblem(rel, "file name is not valid UTF-8; skipped (rename it to replicate it)");
        continue;
      }
      let st: BigIntStats;
      try {
        st = lstatSync(abs, { bigint: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") continue; // deleted since the listing
        opts.onProblem(rel, `cannot stat: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
        continue;
      }
      // lstat is the truth (the entry may have been replaced since the listing): never follow a symlink.
      if (st.isDirectory()) subdirs.push(rel);
      else if (st.isSymbolicLink()) opts.onSymlink?.(rel);
      else if (st.isFile() && matchesExtensions(name, opts.extensions)) yield { rel, abs, stat: st };
    }
    // Reverse so the stack pops them in sorted order: stable, predictable batches.
    for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i] as string);
  }
}

/** How many directories the tree has (the inotify watches it needs); symlinks are not followed, unreadable ones count. */
export function countDirs(root: string): number {
  let n = 0;
  const stack = [root];
  while (stack.length > 0) {
    const d = stack.pop() as string;
    n++;
    try {
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) stack.push(join(d, e.name));
    } catch {
      // unreadable: the pass reports it
    }
  }
  return n;
}
