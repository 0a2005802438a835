// `rrdsync restore PATH [--at TIME] [--to FILE] [--list]`: a text file as it was synced at a time, from the kept
// backup versions (change_tracking.keep_versions). To stdout by default, so nothing is overwritten by accident.
import { existsSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, isAbsolute, join, relative, resolve } from "node:path";
import type { Config } from "../config/types.ts";
import { ExitCode, UserError } from "../errors.ts";
import { formatTimestamp } from "../log.ts";
import { type BackupVersion, StateStore } from "../store/state.ts";
import { backupPath, decodeBackup } from "../track/backup.ts";
import { parseWhen } from "./when.ts";

export function restoreFile(config: Config, target: string, flags: { at?: string; to?: string; list?: boolean }): ExitCode {
  const rel = toRelative(config, target);
  const at = flags.at !== undefined ? parseWhen(flags.at, "--at") : Number.POSITIVE_INFINITY;
  const store = StateStore.openExisting(config.stateFile);
  try {
    return restoreFrom(config, store, rel, at, flags);
  } finally {
    store?.close();
  }
}

function restoreFrom(config: Config, store: StateStore | null, rel: string, at: number, flags: { to?: string; list?: boolean }): ExitCode {
  let versions = store?.versionsOf(rel) ?? [];
  const backupDir = config.changeTracking.backupDir;
  if (versions.length === 0 && existsSync(backupPath(backupDir, rel))) {
    // A copy from before versions were kept (or the seed script's): it is the current one, dated by its mtime.
    const st = statSync(backupPath(backupDir, rel));
    versions = [{ path: rel, syncedAt: Math.floor(st.mtimeMs), size: st.size, stored: rel }];
  }
  const when = (t: number) => formatTimestamp(new Date(t)).slice(0, 19);
  if (flags.list) {
    versions.forEach((v, i) => process.stdout.write(`${when(v.syncedAt)}  ${String(v.size).padStart(10)} bytes${i === 0 ? "  (current)" : ""}\n`));
    return versions.length > 0 ? ExitCode.Ok : ExitCode.Pending;
  }
  if (versions.length === 0) {
    throw new UserError(`${rel}: no backup kept`, ExitCode.Pending, "backups exist for text files synced since change tracking was on; see rrdsync log for its history");
  }
  const v = versions.find((x) => x.syncedAt <= at);
  if (v === undefined) {
    const oldest = versions[versions.length - 1] as BackupVersion;
    throw new UserError(`${rel}: no version as of ${when(at)}`, ExitCode.Pending, `the oldest kept is from ${when(oldest.syncedAt)} (rrdsync restore ${JSON.stringify(rel)} --list shows all)`);
  }
  const data = content(backupDir, store, v);
  if (flags.to === undefined || flags.to === "-") {
    process.stdout.write(data);
  } else {
    const to = resolve(flags.to);
    const tmp = join(dirname(to), `.${basename(to)}.rrdsync-restore-${process.pid}`);
    try {
      writeFileSync(tmp, data, { mode: 0o644 });
      renameSync(tmp, to);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw new UserError(`--to ${flags.to}: cannot write: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, ExitCode.Usage, "pick a writable path");
    }
    process.stderr.write(`restored ${rel} as synced at ${when(v.syncedAt)} (${data.length} bytes) to ${to}\n`);
  }
  return ExitCode.Ok;
}

/** A kept version's bytes: a file under backup_dir, or held in the state DB. */
function content(backupDir: string, store: StateStore | null, v: BackupVersion): Buffer {
  if (v.stored !== null) return readFileSync(join(backupDir, v.stored));
  const row = store?.backupOf(v.path, v.syncedAt) ?? null;
  if (row?.data == null) throw new UserError(`${v.path}: the version of ${v.syncedAt} is listed but its copy is missing`, ExitCode.Pending, "pick another version (--list)");
  return decodeBackup(row.data, row.codec);
}

/** A path as given (absolute inside source_dir, or relative to it) → the tree-relative path the DB uses. */
function toRelative(config: Config, target: string): string {
  const rel = isAbsolute(target) ? relative(config.sourceDir, target) : target.replace(/^\.\//, "");
  if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) {
    throw new UserError(`${target}: not a file of source_dir ${config.sourceDir}`, ExitCode.Usage, "give the path inside the tree, e.g. snmp/1/ds.properties");
  }
  return rel;
}
