// The tree walk: yields the monitored regular files under a root, never following a symlink anywhere.
import { type BigIntStats, type Dirent, lstatSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fsPath, nameFromBytes } from "../names.ts";

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
  /** stop after this directory (walk order): the part of the tree a resumed first sync has already synced */
  until?: string;
}

export function matchesExtensions(name: string, extensions: string[]): boolean {
  if (extensions.length === 0) return true;
  for (const e of extensions) if (name.endsWith(e)) return true;
  return false;
}

/**
 * Is directory `rel` at or before `after` in the walk's order (depth first, names sorted, a directory before its
 * children)? Compared component by component, as the walk visits them.
 */
export function visitedBefore(rel: string, after: string): boolean {
  if (rel === "") return true; // the root comes first
  if (after === "") return false;
  const a = rel.split("/");
  const b = after.split("/");
  for (let i = 0; i < a.length; i++) {
    if (i >= b.length) return false; // rel is inside `after`: visited after it
    const x = a[i] as string;
    const y = b[i] as string;
    if (x !== y) return x < y;
  }
  return true; // rel is `after` or one of its ancestors
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
    if (opts.until !== undefined && !visitedBefore(relDir, opts.until)) return; // every later directory is past it too
    const absDir = relDir === "" ? root : join(root, relDir);
    const listed = listDir(relDir, absDir, opts);
    if (listed === null) continue;
    const { subdirs } = listed;
    for (const name of listed.names) {
      const rel = relDir === "" ? name : `${relDir}/${name}`;
      const abs = `${absDir}/${name}`;
      let st: BigIntStats;
      try {
        st = lstatSync(fsPath(abs), { bigint: true });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") continue; // deleted since the listing
        opts.onProblem(rel, `cannot stat: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
        continue;
      }
      // lstat is the truth (the entry may have been replaced since the listing): never follow a symlink.
      if (st.isDirectory()) subdirs.push(rel);
      else if (st.isSymbolicLink()) opts.onSymlink?.(rel);
      else if (st.isFile()) yield { rel, abs, stat: st };
    }
    // Reverse so the stack pops them in sorted order: stable, predictable batches.
    for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i] as string);
  }
}

/**
 * One directory's entries as a walk sees them: its subdirectories (relative paths, sorted) and its candidate files
 * (names, sorted): monitored names of regular files. The entry's type (d_type) spares an lstat for directories,
 * symlinks and unmonitored names (on a 20,000-file tree that is half of a no-change pass); only file systems without
 * d_type get one here. null when the directory cannot be read (reported).
 */
export function listDir(relDir: string, absDir: string, opts: Pick<WalkOptions, "extensions" | "exclude" | "onProblem" | "onSymlink">): { subdirs: string[]; names: string[] } | null {
  let entries: Dirent[];
  try {
    entries = readdirSync(fsPath(absDir), { withFileTypes: true });
  } catch (e) {
    opts.onProblem(relDir || ".", `cannot read directory: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    return null;
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const subdirs: string[] = [];
  const names: string[] = [];
  let exact: Map<string, string[]> | undefined;
  for (const entry of entries) {
    let name = entry.name;
    if (name.includes("\uFFFD")) {
      // Bun gives names decoded as UTF-8: U+FFFD is an invalid byte (or a real U+FFFD). The exact names, from the
      // bytes, read once per such directory (each lossy name in listing order, as two bad names can look alike).
      exact ??= exactNames(absDir);
      name = exact.get(name)?.shift() ?? name;
    }
    const rel = relDir === "" ? name : `${relDir}/${name}`;
    const abs = `${absDir}/${name}`;
    if (opts.exclude.has(abs)) continue;
    let kind: "dir" | "symlink" | "file" | "other" = entry.isDirectory() ? "dir" : entry.isSymbolicLink() ? "symlink" : entry.isFile() ? "file" : "other";
    if (kind === "other" && !(entry.isFIFO() || entry.isSocket() || entry.isBlockDevice() || entry.isCharacterDevice())) {
      const st = lstatSync(fsPath(abs), { throwIfNoEntry: false }); // no d_type here
      if (st === undefined) continue;
      kind = st.isDirectory() ? "dir" : st.isSymbolicLink() ? "symlink" : st.isFile() ? "file" : "other";
    }
    if (kind === "dir") subdirs.push(rel);
    else if (kind === "symlink") opts.onSymlink?.(rel);
    else if (kind === "file" && matchesExtensions(name, opts.extensions)) names.push(name);
  }
  return { subdirs, names };
}

/** A directory's names that hold U+FFFD as Bun decodes them → their exact forms (src/names.ts), in listing order. */
export function exactNames(absDir: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  try {
    for (const b of readdirSync(fsPath(absDir), { encoding: "buffer" })) {
      const lossy = b.toString("utf8");
      if (!lossy.includes("\uFFFD")) continue;
      const list = out.get(lossy);
      if (list) list.push(nameFromBytes(b));
      else out.set(lossy, [nameFromBytes(b)]);
    }
  } catch {
    // gone since it was listed: the names stay as they are (and cannot be opened: reported as they come)
  }
  return out;
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
