// Deletes: files the state tracks that are gone from the source are removed on the replica (when `delete` is
// on), behind the max_delete guard, then forgotten by the state and recorded through the one audit commit.
import { join } from "node:path";
import type { Config } from "../config/types.ts";
import { goneFromSource } from "../source/look.ts";
import { matchesExtensions } from "../source/walk.ts";
import type { StateStore } from "../store/state.ts";
import type { Transport } from "../transport/types.ts";
import type { Audit } from "./audit.ts";
import { deleteRefusal } from "./delete-guard.ts";
import type { EngineLog } from "./types.ts";

export interface DeleteDeps {
  config: Config;
  store: StateStore;
  transport: Transport;
  audit: Audit;
  log: EngineLog;
  own: Set<string>;
}

export interface DeleteOutcome {
  deleted: number;
  /** refused by the guard, or the destination failed: the run is a failure, the rows stay for the next try */
  failed: number;
  /** audit gaps while recording them */
  problems: number;
  error: string | null;
  /** the guard said no (not the destination) */
  refused: boolean;
}

/** Of the tracked files a full pass did not see, those really gone (not merely unmonitored now, or unreadable). */
export function reallyGone(d: Pick<DeleteDeps, "config" | "own">, unseen: Iterable<string>): string[] {
  const out: string[] = [];
  for (const rel of unseen) {
    if (!matchesExtensions(rel, d.config.monitoredExtensions) || d.own.has(join(d.config.sourceDir, rel))) continue;
    if (goneFromSource(d.config.sourceDir, rel)) out.push(rel);
  }
  return out;
}

export async function propagateDeletes(d: DeleteDeps, paths: string[], signal?: AbortSignal): Promise<DeleteOutcome> {
  const outcome: DeleteOutcome = { deleted: 0, failed: 0, problems: 0, error: null, refused: false };
  if (paths.length === 0) return outcome;
  const refusal = deleteRefusal(paths.length, d.store.countFiles(), d.config.maxDelete);
  if (refusal !== null) {
    d.log.error(`nothing deleted: ${refusal}. Is source_dir (${d.config.sourceDir}) mounted and complete? If these deletes are meant, raise max_delete for one run.`);
    return { ...outcome, failed: paths.length, error: refusal, refused: true };
  }
  const step = Math.max(1, d.config.batchMaxFiles);
  for (let i = 0; i < paths.length; i += step) {
    const chunk = paths.slice(i, i + step);
    const r = await d.transport.deleteFiles(chunk, signal);
    if (r.error) {
      d.log.error(`${d.transport.description}: deleting ${paths.length - i} files failed: ${r.error}; they stay tracked and are deleted by a later pass`);
      return { ...outcome, failed: paths.length - i, error: r.error };
    }
    outcome.problems += d.audit.commitDeletes(chunk);
    outcome.deleted += chunk.length;
  }
  return outcome;
}
