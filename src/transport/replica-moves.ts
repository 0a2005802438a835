// Moves on the replica (a rename in the source) that never go through a symlink planted there: below the
// destination every directory on the way must be a real directory (the destination itself may be a symlink).
import { lstatSync, mkdirSync, renameSync } from "node:fs";
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

const shQuote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

/**
 * The same rule as a POSIX sh script for the standby (run by `sh -s` over ssh), one line per move; prints
 * "rrdsync-moved N" for each move done. `[ -L ]` is asked before `[ -d ]`/`[ -f ]`, which follow symlinks; `mv`
 * only ever sees a target that is absent or a regular file, so it never moves into a directory.
 */
export function moveScript(destDir: string, moves: Array<{ from: string; to: string }>): string {
  const lines = [
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
