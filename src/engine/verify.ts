// `verify`: the replica compared with the source by content, per target. The transport judges each file (same,
// differs, missing, newer) and names extra files; this stage tells drift (the replica is not what rrdsync
// confirmed: changed behind its back, lost, restored from an old copy) from differences rrdsync already knows of
// (a file changed since its last sync, not synced yet, deleted from the source and kept). Only drift fails, and
// only drift is repaired. Nothing here writes to the replica; the repair goes through the ordinary send stage.
import { join } from "node:path";
import type { Config } from "../config/types.ts";
import { lookAt } from "../source/look.ts";
import { ownFiles, ownPathsInside } from "../source/own-files.ts";
import type { PathPattern } from "../source/pattern.ts";
import { walkTree } from "../source/walk.ts";
import type { StateStore } from "../store/state.ts";
import type { VerifyCounts, VerifyRecord } from "../store/status.ts";
import type { BatchFile, FileVerdict, Transport, TreeFilter } from "../transport/types.ts";
import { statFacts, versionKey } from "./plan.ts";

export type VerifyKind = "same" | "differs" | "missing" | "newer" | "extra" | "error";

/** One marker per file, rclone check's --combined report: = same, * differs, - missing, + extra; ours: > newer (a conflict), ! error. */
export const MARKERS: Record<VerifyKind, string> = { same: "=", differs: "*", missing: "-", newer: ">", extra: "+", error: "!" };
/** A difference rrdsync already knows of (pending, kept): listed, not a failure. */
export const KNOWN_MARKER = "~";

export interface VerifyEntry {
  path: string;
  kind: VerifyKind;
  /** why this difference is no drift (rrdsync knows of it), or null */
  known: string | null;
  error?: string;
}

export interface VerifyOptions {
  pattern: PathPattern | null;
  /** check a random share of the files (percent, 0 < p ≤ 100) */
  samplePercent: number | null;
  random?: () => number;
  signal?: AbortSignal;
  /** every file found the same goes to onEntry (a --combined report); otherwise they may only be counted */
  nameSame?: boolean;
  onEntry?: (e: VerifyEntry) => void;
  /** files checked so far, of a total when it is known */
  onProgress?: (checked: number, total: number | null) => void;
}

/** Drift by kind; differences rrdsync knew of are counted in `known` only. */
export interface VerifySummary extends VerifyCounts {
  checked: number;
  same: number;
  sample: { percent: number; files: number; of: number } | null;
  /** whether extra files on the replica were looked for (not with --sample) */
  extrasChecked: boolean;
  seconds: number;
  /** file data read back from the standby (SFTP) */
  bytesRead: number;
  /** the check could not be completed */
  error: string | null;
  /** every drift entry (what --repair works on, and what the exit code counts) */
  drift: VerifyEntry[];
}

export interface VerifyTarget {
  config: Config;
  /** null: this target has no state DB yet (nothing was ever synced to it) */
  store: StateStore | null;
  transport: Transport;
}

/**
 * A source file whose inode changed after the check started (less this, for the kernel's coarse timestamp clock)
 * may have been compared in one version while the daemon delivered and recorded the next: not drift.
 */
const CHANGING_NS = 100_000_000n;

export async function verifyReplica(t: VerifyTarget, o: VerifyOptions): Promise<VerifySummary> {
  const { config, store, transport } = t;
  const src = config.sourceDir;
  const startedMs = Date.now();
  const started = performance.now();
  const startedNs = BigInt(startedMs) * 1_000_000n;
  const own = ownFiles(config);
  const filterAt = (dir: string): TreeFilter => ({ extensions: config.monitoredExtensions, exclude: ownPathsInside(dir === "" ? src : join(src, dir), own) });
  const pattern = o.pattern;
  const at = pattern ? lookAt(src, pattern.text) : ({ kind: "dir" } as const);
  // The whole tree, or a directory of it: rsync walks it on both sides and finds the extras in the same run.
  const treeRoot = o.samplePercent === null && (!pattern || (!pattern.glob && at.kind === "dir")) ? (pattern?.text ?? "") : null;
  const s: VerifySummary = {
    checked: 0, same: 0, differs: 0, missing: 0, newer: 0, extra: 0, errors: 0, known: 0, sample: null,
    extrasChecked: o.samplePercent === null && at.kind !== "file", seconds: 0, bytesRead: 0, error: null, drift: [],
  };
  let total: number | null = treeRoot === "" && store && o.onProgress ? store.countFiles() : null;

  const files = (): BatchFile[] => {
    const out: BatchFile[] = [];
    let of = 0;
    const take = (rel: string, size: bigint) => {
      if (pattern && !pattern.match(rel)) return;
      of++;
      if (o.samplePercent === null || (o.random ?? Math.random)() * 100 < o.samplePercent) out.push({ path: rel, size: Number(size) });
    };
    const base = pattern?.base ?? "";
    if (pattern && !pattern.glob && at.kind === "file") {
      if (!own.has(join(src, pattern.text))) take(pattern.text, at.stat.size);
    } else if (lookAt(src, base).kind === "dir") {
      const prefix = base === "" ? "" : `${base}/`;
      // An unreadable directory (or a name that cannot be decoded) is an error of the check, as of a pass.
      const onProblem = (rel: string, reason: string) => report({ path: rel === "." ? base || "." : prefix + rel, kind: "error", known: null, error: reason });
      for (const f of walkTree(base === "" ? src : join(src, base), { extensions: config.monitoredExtensions, exclude: own, onProblem })) {
        take(prefix + f.rel, f.stat.size);
      }
    }
    if (o.samplePercent !== null) s.sample = { percent: o.samplePercent, files: out.length, of };
    total = out.length;
    return out;
  };

  const report = (e: VerifyEntry) => {
    if (e.kind === "same") s.same++;
    else if (e.known !== null) s.known++;
    else {
      s.drift.push(e);
      if (e.kind === "error") s.errors++;
      else s[e.kind]++;
    }
    o.onEntry?.(e);
  };

  /** Why a difference is one rrdsync knows of, or null for drift. */
  const knownReason = (rel: string, kind: VerifyKind): string | null => {
    const row = store?.get(rel) ?? null;
    if (kind === "extra") {
      if (row === null) return null;
      return config.delete ? "deleted from the source; its delete is pending" : "deleted from the source; kept on the replica (delete is off)";
    }
    const look = lookAt(src, rel);
    if (look.kind !== "file") return "gone from the source since";
    // Newer there than ours: written on the standby, a conflict whether or not ours changed too (the next pass
    // would not send it: it would fence the target).
    if (kind === "newer") return look.stat.ctimeNs >= startedNs - CHANGING_NS ? "changed during the check" : null;
    if (row === null || row.size < 0) return "not synced yet";
    if (versionKey(statFacts(look.stat)) !== versionKey(row)) return "changed since the last sync";
    if (look.stat.ctimeNs >= startedNs - CHANGING_NS) return "changed during the check";
    return null;
  };

  const kindOf = (v: FileVerdict): VerifyKind => (typeof v === "string" ? v : "error");
  const r = await transport.verifyFiles?.(
    {
      files,
      nameSame: o.nameSame === true || o.onProgress !== undefined,
      tree: treeRoot === null ? undefined : { root: treeRoot, filter: filterAt(treeRoot) },
      // A sample has no share of the extras; a single file has none to look for.
      extras: o.samplePercent !== null || at.kind === "file" ? undefined : { under: pattern?.base ?? "", filter: filterAt(pattern?.base ?? ""), match: (rel) => !pattern || pattern.match(rel) },
      onFile: (path, v) => {
        s.checked++;
        const kind = kindOf(v);
        if (kind === "same") return report({ path, kind, known: null });
        report({ path, kind, known: kind === "error" ? null : knownReason(path, kind), ...(typeof v === "object" ? { error: v.error } : {}) });
      },
      onExtra: (path) => {
        if (own.has(join(src, path))) return;
        report({ path, kind: "extra", known: knownReason(path, "extra") });
      },
      onChecked: (n) => o.onProgress?.(n, total),
    },
    o.signal,
  ) ?? { error: `${transport.description} cannot compare the replica`, bytesRead: 0 };
  s.error = r.error ?? null;
  s.bytesRead = r.bytesRead;
  s.same += r.sameUnnamed ?? 0;
  s.checked += r.sameUnnamed ?? 0;
  s.seconds = (performance.now() - started) / 1000;
  return s;
}

/**
 * What --repair sends: drift the send stage can fix (extras are never deleted by it; errors need a look first).
 * A file newer on the standby is a conflict (the standby was written to): only with `overwrite`, which keeps the
 * standby's copy aside first.
 */
export function repairable(s: VerifySummary, opts: { overwrite: boolean }): Array<{ path: string; why: string }> {
  const why: Partial<Record<VerifyKind, string>> = {
    differs: "the replica's copy had other content",
    missing: "it was missing on the replica",
    newer: "the replica's copy was newer (changed on the standby; --overwrite)",
  };
  return s.drift.filter((e) => why[e.kind] !== undefined && !(e.kind === "newer" && !opts.overwrite)).map((e) => ({ path: e.path, why: why[e.kind] as string }));
}

/** A conflict, as verify names it: the same words as the fence's (engine/policy/conflict.ts). */
export const NEWER_WORDS = "changed on the standby: newer there than ours (a conflict)";

/** The status record of this verify (what `check` and monitoring read). */
export function verifyRecord(s: VerifySummary, o: { pattern: string | null; sample: number | null; repaired: number; repairFailed: number }): VerifyRecord {
  return {
    time: Date.now(), seconds: Number(s.seconds.toFixed(3)), checked: s.checked, sample: o.sample, pattern: o.pattern,
    differs: s.differs, missing: s.missing, newer: s.newer, extra: s.extra, errors: s.errors, known: s.known,
    repaired: o.repaired, repairFailed: o.repairFailed, error: s.error,
  };
}
