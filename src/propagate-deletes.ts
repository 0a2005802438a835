// Deletes: files the state tracks that are gone from the source are removed on the replica (when `delete` is
// on), behind the max_delete guard, then forgotten by the state and recorded in the change log and history.
import { lstatSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "./config/types.ts";
import { deleteRefusal } from "./engine/deletes.ts";
import type { Logger } from "./log.ts";
import type { BackupVersion, ChangeRow, StateStore } from "./store/state.ts";
import type { ChangeLog } from "./track/changelog.ts";
import type { BackupVersions } from "./track/versions.ts";
import type { Transport } from "./transport/types.ts";
import { matchesExtensions } from "./watch/walk.ts";

export interface DeleteDeps {
  config: Config;
  store: StateStore;
  transport: Transport;
  changeLog: ChangeLog;
  log: Logger;
  versions: BackupVersions;
  own: Set<string>;
}

export interface DeleteOutcome {
  deleted: number;
  /** refused by the guard, or the destination failed: the run is a failure, the rows stay for the next try */
  failed: number;
  error: string | null;
  /** the guard said no (not the destination) */
  refused: boolean;
}

/** Truly gone from the source: lstat says ENOENT/ENOTDIR (an unreadable directory proves nothing). */
export function goneFromSource(sourceDir: string, rel: string): boolean {
  try {
    lstatSync(join(sourceDir, rel));
    return false;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === "ENOENT" || code === "ENOTDIR";
  }
}

/** The tracked files a full pass did not see, that are really gone (not merely unmonitored now, or unreadable). */
export function missingFromSource(d: DeleteDeps, seen: Set<string>): string[] {
  const out: string[] = [];
  for (const rel of d.store.paths()) {
    if (seen.has(rel) || !matchesExtensions(rel, d.config.monitoredExtensions) || d.own.has(join(d.config.sourceDir, rel))) continue;
    if (goneFromSource(d.config.sourceDir, rel)) out.push(rel);
  }
  return out;
}

export async function propagateDeletes(d: DeleteDeps, paths: string[], signal?: AbortSignal): Promise<DeleteOutcome> {
  if (paths.length === 0) return { deleted: 0, failed: 0, error: null, refused: false };
  const refusal = deleteRefusal(paths.length, d.store.countFiles(), d.config.maxDelete);
  if (refusal !== null) {
    d.log.error(`nothing deleted: ${refusal}. Is source_dir (${d.config.sourceDir}) mounted and complete? If these deletes are meant, raise max_delete for one run.`);
    return { deleted: 0, failed: paths.length, error: refusal, refused: true };
  }
  let deleted = 0;
  const step = Math.max(1, d.config.batchMaxFiles);
  for (let i = 0; i < paths.length; i += step) {
    const chunk = paths.slice(i, i + step);
    const r = await d.transport.deleteFiles(chunk, signal);
    if (r.error) {
      d.log.error(`${d.transport.description}: deleting ${paths.length - i} files failed: ${r.error}; they stay tracked and are deleted by a later pass`);
      return { deleted, failed: paths.length - i, error: r.error, refused: false };
    }
    record(d, chunk);
    deleted += chunk.length;
  }
  return { deleted, failed: 0, error: null, refused: false };
}

/** The replica no longer has them: change-log entries first (at-least-once), then one transaction. */
function record(d: DeleteDeps, paths: string[]): void {
  const changes: ChangeRow[] = [];
  const versions: BackupVersion[] = [];
  const time = new Date();
  for (const rel of paths) {
    const prev = d.store.get(rel);
    const kind = prev?.rrd ? "rrd" : "file";
    // The last backup of a text file stays restorable: it becomes an old version.
    let old: BackupVersion | null = null;
    try {
      old = d.versions.supersede(rel);
    } catch (e) {
      d.log.warn(`${rel}: its backup could not be kept as an old version: ${(e as Error).message}`);
    }
    if (old) versions.push(old);
    const details = `File deleted (it was ${prev && prev.size >= 0 ? `${prev.size} bytes` : "of unknown size"}).${old ? `\nIts last backup is kept: rrdsync restore ${JSON.stringify(rel)}` : ""}`;
    d.changeLog.append(time, rel, details);
    changes.push({ time: time.getTime(), path: rel, kind: `${kind} deleted`, summary: "deleted", details, added: 0, removed: 0 });
    d.log.info(`deleted on the replica: ${rel}`);
  }
  d.changeLog.flush();
  d.store.commitDeletes(paths, changes, versions);
}
