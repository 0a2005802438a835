// Where rrdsync reads and writes, checked before anything runs: a destination that overlaps the tree it copies,
// and a state DB or log file that is a directory (or under a file) fail here with the key's name, not mid-run.
import { existsSync, lstatSync, realpathSync, statSync } from "node:fs";
import { basename, dirname, join, relative } from "node:path";
import { ConfigError } from "../errors.ts";
import { dirProblem } from "../safe-files.ts";
import type { Config } from "./types.ts";

/** The path with symlinks resolved as far as it exists (the rest appended), so a link cannot hide an overlap. */
export function realish(path: string): string {
  let head = path;
  const tail: string[] = [];
  while (!existsSync(head) && dirname(head) !== head) {
    tail.unshift(basename(head));
    head = dirname(head);
  }
  try {
    return join(realpathSync(head), ...tail);
  } catch {
    return path;
  }
}

/** a === b, or a lies under b ("/" holds everything; "/a/bc" is not under "/a/b"). */
export function within(a: string, b: string): boolean {
  const r = relative(b, a);
  return r === "" || (!r.startsWith("..") && !r.startsWith("/"));
}

/**
 * A local destination must be apart from the tree: inside it, rrdsync would copy the replica into itself; equal
 * to it, or holding it, the replica's files would land on the source's own files. "/" holds every source.
 */
export function checkLocalDest(where: string, destDir: string, sourceDir: string): void {
  const dest = realish(destDir);
  const src = realish(sourceDir);
  const hint = "a local destination must be a directory of its own, outside the tree it copies (and not one that holds it)";
  if (dest === "/") throw new ConfigError(where, `${destDir} is the root directory`, hint);
  if (dest === src) throw new ConfigError(where, `${destDir} is source_dir itself`, hint);
  if (within(dest, src)) throw new ConfigError(where, `${destDir} is inside source_dir (${sourceDir})`, hint);
  if (within(src, dest)) throw new ConfigError(where, `${destDir} holds source_dir (${sourceDir})`, hint);
}

/**
 * The source is a directory of its own, named as it is: "/" would replicate the whole machine (and /proc with it),
 * and a symlink (`cur -> v1`) would be a tree chosen once at start by one command and anew by the next, or swapped
 * under a running daemon by `ln -sfn v2 cur`. Refused (exit 2) in every command alike, with the directory to
 * write instead. (Symlinks above it are fine: it is its own name that must stay.)
 */
export function checkSourcePlace(where: string, sourceDir: string): void {
  if (sourceDir === "/") throw new ConfigError(where, '"/" is the whole file system', "point it at the tree to replicate (OpenNMS: /opt/opennms/share/rrd, or /var/lib/opennms/rrd)");
  let st;
  try {
    st = lstatSync(sourceDir);
  } catch {
    return; // missing: said where it matters (a pass refuses to run; status and log still work)
  }
  if (!st.isSymbolicLink()) return;
  let real = "";
  try {
    real = realpathSync(sourceDir);
  } catch {
    // a dangling link
  }
  throw new ConfigError(where, `${sourceDir} is a symlink${real ? ` to ${real}` : " (to nothing)"}: rrdsync replicates a directory, not a link that can be re-pointed under it`,
    real ? `name the directory itself: "source_dir": ${JSON.stringify(real)} (after re-pointing the link, change the config and run with --rebuild-state)` : "name the directory itself");
}

/**
 * A file rrdsync writes (the state DB, the log) must be able to be one: an existing directory there, or a file
 * where one of its parent directories belongs, is named here with the fix instead of failing mid-run.
 */
export function checkFilePlace(where: string, path: string): void {
  const hint = "point it at a file path (its directory is created if missing)";
  let st;
  try {
    st = statSync(path);
  } catch {
    st = null;
  }
  if (st !== null) {
    if (st.isDirectory()) throw new ConfigError(where, `${path} is a directory, not a file`, hint);
    return;
  }
  for (let d = dirname(path); dirname(d) !== d; d = dirname(d)) {
    let s;
    try {
      s = statSync(d);
    } catch {
      continue; // missing (created when needed), or under a file: the loop reaches that file
    }
    if (!s.isDirectory()) throw new ConfigError(where, `${d} is a file, so ${path} cannot be made there`, hint);
    return;
  }
}

/**
 * The directories rrdsync keeps its own files in (each target's state DB and lock, the backups, the change log, the
 * log), each with the key that names it. The metrics file is not among them: it is written under a random name
 * and renamed, safe in a directory others share (node_exporter's collector directory).
 */
export function ownDirs(config: Config, origin: string): Array<{ dir: string; key: string }> {
  const out = [{ dir: dirname(config.stateFile), key: `${origin}: state_file` }];
  for (const [i, t] of config.extraTargets.entries()) out.push({ dir: dirname(t.stateFile), key: `${origin}: targets[${i}].state_file` });
  if (config.changeTracking.enabled) {
    out.push({ dir: config.changeTracking.backupDir, key: `${origin}: change_tracking.backup_dir` });
    out.push({ dir: dirname(config.changeTracking.changeLogFile), key: `${origin}: change_tracking.change_log_file` });
  }
  if (config.logging.logFile) out.push({ dir: dirname(config.logging.logFile), key: `${origin}: logging.log_file` });
  const seen = new Set<string>();
  return out.filter((d) => !seen.has(d.dir) && seen.add(d.dir));
}

/**
 * A directory of rrdsync's own files that another user can write (they could plant a symlink at the lock's name,
 * or SQLite's -shm, and make this user, root often, truncate what it names) is refused, with the fix: exit 2,
 * before anything is opened. The first problem found, or null.
 */
export function sharedDirProblem(config: Config): { key: string; message: string; fix: string } | null {
  const origin = config.origin;
  for (const { dir, key } of ownDirs(config, origin)) {
    const p = dirProblem(dir);
    if (p !== null) return { key, message: `${dir}: ${p.why}`, fix: `${p.fix}; rrdsync refuses to keep its state and logs where another user could plant a symlink` };
  }
  return null;
}

export function refuseSharedDirs(config: Config): void {
  const p = sharedDirProblem(config);
  if (p !== null) throw new ConfigError(p.key, p.message, p.fix);
}
