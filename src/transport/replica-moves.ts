// Moves on the replica (a rename in the source) that never go through a symlink planted there: below the
// destination every directory on the way must be a real directory (the destination itself may be a symlink).
import { constants, copyFileSync, linkSync, lstatSync, mkdirSync, renameSync } from "node:fs";
import { dirname, join } from "node:path";
import { fsPath } from "../names.ts";

/** The directory components of a relative file path ("a/b/c.txt" → ["a", "b"]). */
function dirParts(rel: string): string[] {
  const d = dirname(rel);
  return d === "." ? [] : d.split("/");
}

/** Is every component of `parts` below `root` a real directory? Missing ones are made when `create` is set. */
function realDirs(root: string, parts: string[], create: boolean): boolean {
  let p = root;
  for (const c of parts) {
    p = join(p, c);
    try {
      if (!lstatSync(fsPath(p)).isDirectory()) return false; // a symlink (to anything) or a file
    } catch {
      if (!create) return false;
      try {
        mkdirSync(fsPath(p));
      } catch {
        // made meanwhile, or not makeable: the lstat below decides
      }
      try {
        if (!lstatSync(fsPath(p)).isDirectory()) return false;
      } catch {
        return false;
      }
    }
  }
  return true;
}

/**
 * A move on a local destination: only a regular file, only into a name that is not a directory or a symlink,
 * only through real directories. false: not moved (the caller sends the file under its new name instead).
 */
export function moveLocally(destDir: string, from: string, to: string): boolean {
  const src = join(destDir, from);
  const dst = join(destDir, to);
  try {
    if (!realDirs(destDir, dirParts(from), false) || !lstatSync(fsPath(src)).isFile()) return false;
    try {
      const st = lstatSync(fsPath(dst));
      if (st.isDirectory() || st.isSymbolicLink()) return false;
    } catch {
      // absent: fine
    }
    if (!realDirs(destDir, dirParts(to), true)) return false;
    renameSync(fsPath(src), fsPath(dst));
    return true;
  } catch {
    return false;
  }
}

/**
 * keepScript's rule on a local destination: the file's copy at `under`/rel, a hard link else a copy (never
 * replacing anything there). false: not kept.
 */
export function keepLocally(destDir: string, under: string, rel: string): boolean {
  const src = join(destDir, rel);
  const dst = join(destDir, under, rel);
  try {
    if (!realDirs(destDir, dirParts(rel), false) || !lstatSync(fsPath(src)).isFile()) return false;
    if (!realDirs(destDir, dirParts(`${under}/${rel}`), true)) return false;
    try {
      linkSync(fsPath(src), fsPath(dst));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
      copyFileSync(fsPath(src), fsPath(dst), constants.COPYFILE_EXCL);
    }
    return true;
  } catch {
    return false;
  }
}

const shQuote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

/**
 * The same rule as a POSIX sh script for the standby (run by `sh -s` over ssh), one line per move; prints
 * "rrdsync-moved N" for each move done. `[ -L ]` is asked before `[ -d ]`/`[ -f ]`, which follow symlinks; `mv`
 * only ever sees a target that is absent or a regular file, so it never moves into a directory.
 */
export function moveScript(destDir: string, moves: Array<{ from: string; to: string }>): string {
  const lines = [
    ...realDirPrelude(destDir),
    // mv1 N FROM TO FROMDIR TODIR
    "mv1() {",
    '  real_dir "$4" 0 && [ ! -L "$D/$2" ] && [ -f "$D/$2" ] && [ ! -L "$D/$3" ] && [ ! -d "$D/$3" ] && real_dir "$5" 1 && mv -f -- "$D/$2" "$D/$3" && echo "rrdsync-moved $1"',
    "}",
  ];
  moves.forEach((m, i) => {
    const fromDir = dirParts(m.from).join("/");
    const toDir = dirParts(m.to).join("/");
    lines.push(`mv1 ${i} ${shQuote(m.from)} ${shQuote(m.to)} ${shQuote(fromDir)} ${shQuote(toDir)}`);
  });
  return `${lines.join("\n")}\n`;
}

/**
 * Keeps the replica's copy of each file under `under` (relative to the destination) before it is replaced: a hard
 * link (the file rsync then renames over keeps its old inode's bytes), else a copy. Only a regular file, only
 * through real directories, only into real directories (made as needed), never over something already there.
 * Prints "rrdsync-kept N" for each copy kept.
 */
export function keepScript(destDir: string, under: string, paths: string[]): string {
  const lines = [
    ...realDirPrelude(destDir),
    // keep1 N PATH PATHDIR KEEPDIR
    "keep1() {",
    '  real_dir "$3" 0 && [ ! -L "$D/$2" ] && [ -f "$D/$2" ] && real_dir "$4" 1 && [ ! -e "$D/$5" ] && [ ! -L "$D/$5" ] && { ln -- "$D/$2" "$D/$5" 2>/dev/null || cp -p -- "$D/$2" "$D/$5"; } && echo "rrdsync-kept $1"',
    "}",
  ];
  paths.forEach((p, i) => {
    const kept = `${under}/${p}`;
    lines.push(`keep1 ${i} ${shQuote(p)} ${shQuote(dirParts(p).join("/"))} ${shQuote(dirParts(kept).join("/"))} ${shQuote(kept)}`);
  });
  return `${lines.join("\n")}\n`;
}

/** `D` (the destination) and real_dir REL CREATE: each component of REL below $D is a directory and not a symlink. */
function realDirPrelude(destDir: string): string[] {
  return [
    `D=${shQuote(destDir)}`,
    // real_dir REL CREATE: each component of REL below $D is a directory and not a symlink (made if CREATE=1)
    "real_dir() {",
    '  p=$D; rest=$1',
    '  while [ -n "$rest" ]; do',
    '    c=${rest%%/*}',
    '    if [ "$c" = "$rest" ]; then rest=; else rest=${rest#*/}; fi',
    '    p=$p/$c',
    '    [ -L "$p" ] && return 1',
    '    if [ ! -d "$p" ]; then',
    '      [ "$2" = 1 ] || return 1',
    '      mkdir -- "$p" 2>/dev/null',
    '      [ -d "$p" ] && [ ! -L "$p" ] || return 1',
    "    fi",
    "  done",
    "}",
  ];
}
