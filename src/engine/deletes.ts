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
import type { ReplicaGuard } from "./guard.ts";
import { CONFLICT_WORDS } from "./policy/conflict.ts";
import type { EngineLog } from "./types.ts";

export interface DeleteDeps {
  config: Config;
  store: StateStore;
  transport: Transport;
  audit: Audit;
  log: EngineLog;
  own: Set<string>;
  guard: ReplicaGuard;
}

export interface DeleteOutcome {
  deleted: number;
  /** the paths no longer tracked: deleted there (or already gone), or left to the standby by --keep-replica */
  done: Set<string>;
  /** the target is (now) fenced: what is left stays tracked and pending; `conflicts`: why, per file */
  fenced: boolean;
  conflicts: Map<string, string>;
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
  const outcome: DeleteOutcome = { deleted: 0, done: new Set(), fenced: false, conflicts: new Map(), failed: 0, problems: 0, error: null, refused: false };
  if (paths.length === 0) return outcome;
  const refusal = deleteRefusal(paths.length, d.store.countFiles(), d.config.maxDelete);
  if (refusal !== null) {
    d.log.error(`nothing deleted: ${refusal}. Is source_dir (${d.config.sourceDir}) mounted and complete? If these deletes are meant, raise max_delete for one run.`);
    return { ...outcome, failed: paths.length, error: refusal, refused: true };
  }
  const step = Math.max(1, d.config.batchMaxFiles);
  for (let i = 0; i < paths.length; i += step) {
    const checked = await checkDeletes(d, paths.slice(i, i + step), signal);
    if ("error" in checked) {
      d.log.error(`${d.transport.description}: deleting ${paths.length - i} files failed: ${checked.error}; they stay tracked and are deleted by a later pass`);
      return { ...outcome, failed: paths.length - i, error: checked.error };
    }
    if ("fenced" in checked) return { ...outcome, fenced: true, conflicts: checked.fenced };
    for (const p of checked.left) outcome.done.add(p);
    const chunk = checked.go;
    if (chunk.length === 0) continue;
    const r = await d.transport.deleteFiles(chunk, signal);
    if (r.error) {
      d.log.error(`${d.transport.description}: deleting ${paths.length - i} files failed: ${r.error}; they stay tracked and are deleted by a later pass`);
      return { ...outcome, failed: paths.length - i, error: r.error };
    }
    outcome.problems += d.audit.commitDeletes(chunk);
    outcome.deleted += chunk.length;
    for (const p of chunk) outcome.done.add(p);
  }
  return outcome;
}

/**
 * The replica checked before a delete: a file changed there is never deleted (engine/guard.ts). `go`: delete these;
 * `left`: taken off the tracked files without a delete (--keep-replica: the standby's copy stays there).
 */
async function checkDeletes(d: DeleteDeps, chunk: string[], signal?: AbortSignal): Promise<{ go: string[]; left: string[] } | { error: string } | { fenced: Map<string, string> }> {
  const { guard, store } = d;
  const also = store.replicaVersions.of(chunk);
  const r = await guard.inspect(chunk.map((rel) => ({ rel, op: "delete" as const, known: guard.knownRow(store.get(rel), also.get(rel), null), abs: null })), signal);
  if (r.kind === "error") return { error: r.error };
  if (r.kind === "fenced") return { fenced: new Map(r.conflicts.map((c) => [c.item.rel, `conflict: ${CONFLICT_WORDS[c.why]}`])) };
  if (r.conflicts.length === 0) return { go: chunk, left: [] };
  const conflicting = new Set(r.conflicts.map((c) => c.item.rel));
  if (guard.mode.kind === "keep") {
    const left = chunk.filter((p) => conflicting.has(p));
    store.commitDeletes(left, [], []);
    guard.accept(r.conflicts);
    return { go: chunk.filter((p) => !conflicting.has(p)), left };
  }
  const k = await guard.keepCopies(r.conflicts, signal);
  if (k.error !== null) return { error: k.error };
  return { go: chunk.filter((p) => !conflicting.has(p) || k.kept.has(p)), left: [] };
}
