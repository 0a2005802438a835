// rrdsync's own files (state DBs, locks, backups, logs) must never be replicated, even when the admin keeps them
// inside the source tree: both the walk and the watcher leave these paths out.
import { join, relative, sep } from "node:path";
import type { Config } from "../config/types.ts";
import { REPLICA_ROOT_NAMES } from "../transport/marker.ts";

/**
 * Absolute paths of every file and directory rrdsync itself writes, for every target; and the names it keeps at a
 * replica's root (the promotion marker, the kept copies), left alone in a source that was a replica once.
 */
export function ownFiles(config: Config): Set<string> {
  const states = [config.stateFile, ...config.extraTargets.map((t) => t.stateFile)];
  return new Set(
    [...states.flatMap((s) => [s, `${s}-wal`, `${s}-shm`, `${s}-journal`, `${s}.lock`, `${s}.seed.json`]), ...REPLICA_ROOT_NAMES.map((n) => join(config.sourceDir, n)), config.changeTracking.backupDir,
      config.changeTracking.changeLogFile, config.logging.logFile, ...(config.metricsFile ? [config.metricsFile, `${config.metricsFile}.tmp`] : [])].filter((p) => p !== ""),
  );
}

/** The own paths that lie inside the source tree, relative to it (a whole-tree transfer excludes them). */
export function ownPathsInside(sourceDir: string, own: Set<string>): string[] {
  return [...own].filter((p) => p.startsWith(sourceDir + sep)).map((p) => relative(sourceDir, p));
}
