// `rrdsync restore PATH [--at TIME] [--to FILE] [--list]`: a text file as it was synced at a time, from the kept
// backup versions (change_tracking.keep_versions). To stdout by default, so nothing is overwritten by accident.
import { closeSync, existsSync, linkSync, readFileSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { isAbsolute, join, relative, resolve } from "node:path";
import { createNew, tempBeside } from "../safe-files.ts";
import { escapeLine } from "../escape.ts";
import type { Config } from "../config/types.ts";
import { ExitCode, UserError } from "../errors.ts";
import { fsPath, nameFromShown, quoteName, showName } from "../names.ts";
import { formatTimestamp } from "../log.ts";
import { describeFsError } from "../text.ts";
import { type BackupVersion, StateStore } from "../store/state.ts";
import { backupPath, decodeBackup } from "../track/backup.ts";
import { writeOut } from "./out.ts";
import { parseWhen } from "./when.ts";

export async function restoreFile(config: Config, target: string, flags: { at?: string; to?: string; list?: boolean; force?: boolean }): Promise<ExitCode> {
  const rel = toRelative(config, target);
  const at = flags.at !== undefined ? parseWhen(flags.at, "--at") : Number.POSITIVE_INFINITY;
  const store = StateStore.openExisting(config.stateFile);
  try {
    return await restoreFrom(config, store, rel, at, flags);
  } finally {
    store?.close();
  }
}

async function restoreFrom(config: Config, store: StateStore | null, rel: string, at: number, flags: { to?: string; list?: boolean; force?: boolean }): Promise<ExitCode> {
  let versions = store?.versionsOf(rel) ?? [];
  if (versions.length === 0 && store !== null && nameFromShown(rel) !== rel) {
    // a name that is not UTF-8, given as shown (\xNN for each such byte)
    const exact = store.versionsOf(nameFromShown(rel));
    if (exact.length > 0) [rel, versions] = [nameFromShown(rel), exact];
  }
  const backupDir = config.changeTracking.backupDir;
  if (versions.length === 0 && existsSync(fsPath(backupPath(backupDir, rel)))) {
    // A copy from before versions were kept (or the seed script's): it is the current one, dated by its mtime.
    const st = statSync(fsPath(backupPath(backupDir, rel)));
    versions = [{ path: rel, syncedAt: Math.floor(st.mtimeMs), size: st.size, stored: rel }];
  }
  const when = (t: number) => formatTimestamp(new Date(t)).slice(0, 19);
  if (flags.list) {
    await writeOut(versions.map((v, i) => `${when(v.syncedAt)}  ${String(v.size).padStart(10)} bytes${i === 0 ? "  (current)" : ""}\n`).join(""));
    return versions.length > 0 ? ExitCode.Ok : ExitCode.Pending;
  }
  if (versions.length === 0) {
    throw new UserError(`${rel}: no backup kept`, ExitCode.Pending, "backups exist for text files synced since change tracking was on; see rrdsync log for its history");
  }
  const v = versions.find((x) => x.syncedAt <= at);
  if (v === undefined) {
    const oldest = versions[versions.length - 1] as BackupVersion;
    throw new UserError(`${rel}: no version as of ${when(at)}`, ExitCode.Pending, `the oldest kept is from ${when(oldest.syncedAt)} (rrdsync restore ${quoteName(rel)} --list shows all)`);
  }
  const data = content(backupDir, store, v);
  if (flags.to === undefined || flags.to === "-") {
    await writeOut(data); // the exact bytes, as cat would: this is the file itself, not a report about it
    return ExitCode.Ok;
  }
  const to = resolve(flags.to);
  writeAtomically(to, data, flags.force === true, flags.to);
  process.stderr.write(`restored ${escapeLine(showName(rel))} as synced at ${when(v.syncedAt)} (${data.length} bytes) to ${escapeLine(to)}\n`);
  return ExitCode.Ok;
}

/** A kept version's bytes: a file under backup_dir, or held in the state DB. */
function content(backupDir: string, store: StateStore | null, v: BackupVersion): Buffer {
  if (v.stored !== null) return readFileSync(fsPath(join(backupDir, v.stored)));
  const row = store?.backupOf(v.path, v.syncedAt) ?? null;
  if (row?.data == null) throw new UserError(`${v.path}: the version of ${v.syncedAt} is listed but its copy is missing`, ExitCode.Pending, "pick another version (--list)");
  return decodeBackup(row.data, row.codec);
}

/**
 * Through a temp file in the same directory (a random name, created exclusively and never through a symlink: a
 * name planted in a shared directory such as /tmp cannot redirect the write), so `to` is never half written.
 * Without `force` an existing file is never replaced: link() fails on it atomically (no window between a check
 * and the write); with it, rename() replaces whatever is at `to`, a symlink included, never following it.
 */
function writeAtomically(to: string, data: Uint8Array, force: boolean, given: string): void {
  const tmp = tempBeside(to);
  try {
    const fd = createNew(tmp);
    try {
      for (let off = 0; off < data.length; ) off += writeSync(fd, data, off);
    } finally {
      closeSync(fd);
    }
    if (force) {
      renameSync(tmp, to);
    } else {
      linkSync(tmp, to);
      rmSync(tmp, { force: true });
    }
  } catch (e) {
    rmSync(tmp, { force: true });
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EEXIST") throw new UserError(`--to ${given}: ${to} exists; not overwritten`, ExitCode.Usage, "pass --force to replace it, or pick another path");
    if (code === "EISDIR" || (code === "EPERM" && isDirectory(to))) throw new UserError(`--to ${given}: ${to} is a directory`, ExitCode.Usage, "give a file path");
    throw new UserError(`--to ${given}: cannot write: ${describeFsError(e)}`, ExitCode.Usage, "pick a writable path");
  }
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/**
 * A path as given (absolute inside source_dir, or relative to it) → the tree-relative path the DB uses. A ".."
 * anywhere is refused: the backup dir mirrors the tree, so it would reach files outside it.
 */
function toRelative(config: Config, target: string): string {
  const hint = "give the path inside the tree, e.g. snmp/1/ds.properties";
  if (target.split("/").includes("..")) throw new UserError(`${JSON.stringify(target)}: a path with ".." is not restored`, ExitCode.Usage, hint);
  const rel = (isAbsolute(target) ? relative(config.sourceDir, target) : target).split("/").filter((p) => p !== "" && p !== ".").join("/");
  if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) {
    throw new UserError(`${target}: not a file of source_dir ${config.sourceDir}`, ExitCode.Usage, hint);
  }
  return rel;
}
