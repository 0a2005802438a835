// Pure: the names rrdsync keeps at the root of a replica, the promotion marker `rrdsync promote DIR` writes
// there when an admin fails over to the standby, and the fence marker the primary's rrdsync writes there when it
// fences the target (so a new or rebuilt state DB finds the fence: DRBD keeps its metadata on both nodes). The old primary's rrdsync reads it (with the batch's check of the
// replica, before it compares or writes anything) and refuses the whole target. `rrdsync failback` (a later
// command) reads the same record. Every code path leaves these names alone: the walk and the watcher (own files),
// verify (never an extra), deletes (never tracked), and every transfer's filter.

/** The promotion marker, a small JSON file at the replica's root. */
export const PROMOTED_MARKER = ".rrdsync-promoted";
/** Where `unfence --overwrite` keeps each replica copy it replaces: KEPT_DIR/<UTC time>/<path>, on the standby. */
export const KEPT_DIR = ".rrdsync-kept";
/** The fence marker: written when a target is fenced, removed by `rrdsync unfence` when it lifts the fence. */
export const FENCED_MARKER = ".rrdsync-fenced";
/** The names at the replica's root that belong to rrdsync, not to the tree. */
export const REPLICA_ROOT_NAMES = [PROMOTED_MARKER, KEPT_DIR, FENCED_MARKER] as const;
/** The markers a transport writes or removes at the replica's root (writeRootMarker / removeRootMarker). */
export type RootMarker = typeof PROMOTED_MARKER | typeof FENCED_MARKER;

const FORMAT = "rrdsync-promoted/1";
/** A marker is a few hundred bytes; more is read only this far. */
export const MARKER_MAX_BYTES = 65_536;

export interface PromotionMarker {
  format: typeof FORMAT;
  /** the standby's host name, where promote ran */
  host: string;
  /** when (ISO, UTC) */
  promotedAt: string;
  /** the user promote ran as, and the rrdsync that wrote it */
  user: string;
  by: string;
  /** what the replica held then: the last state the primary delivered */
  replica: { files: number; bytes: number; newest: { path: string; mtime: string } | null };
}

export function formatMarker(m: Omit<PromotionMarker, "format">): string {
  return `${JSON.stringify({ format: FORMAT, ...m }, null, 2)}\n`;
}

/** The marker's record, or null when its text is not one (cut short, edited): it still counts as a promotion. */
export function parseMarker(text: string): PromotionMarker | null {
  try {
    const m = JSON.parse(text) as Partial<PromotionMarker>;
    if (m === null || typeof m !== "object" || typeof m.host !== "string" || typeof m.promotedAt !== "string") return null;
    return { format: FORMAT, host: m.host, promotedAt: m.promotedAt, user: String(m.user ?? ""), by: String(m.by ?? ""), replica: m.replica ?? { files: 0, bytes: 0, newest: null } };
  } catch {
    return null;
  }
}

/** The kept-copies directory of one run: KEPT_DIR/2026-12-01T03-04-05Z (relative to the destination). */
export function keptDirFor(time: Date): string {
  return `${KEPT_DIR}/${time.toISOString().replace(/\.\d+Z$/, "Z").replace(/:/g, "-")}`;
}

const FENCE_FORMAT = "rrdsync-fenced/1";

/** One conflicting file as the fence marker lists it (the first few; the primary's change log has them all). */
export interface FenceMarkerFile {
  path: string;
  why: string;
}

export interface FenceMarker {
  format: typeof FENCE_FORMAT;
  /** when the fence went up (ISO, UTC) */
  fencedAt: string;
  /** the host whose rrdsync fenced the target (the primary), and that rrdsync */
  host: string;
  by: string;
  /** conflicting files found, and the first few */
  files: number;
  conflicts: FenceMarkerFile[];
}

export function formatFenceMarker(m: Omit<FenceMarker, "format">): string {
  return `${JSON.stringify({ format: FENCE_FORMAT, ...m }, null, 2)}\n`;
}

/** The fence marker's record, or null when its text is not one (cut short, edited): it still fences the target. */
export function parseFenceMarker(text: string): FenceMarker | null {
  try {
    const m = JSON.parse(text) as Partial<FenceMarker>;
    if (m === null || typeof m !== "object" || typeof m.fencedAt !== "string" || Number.isNaN(Date.parse(m.fencedAt))) return null;
    const conflicts = Array.isArray(m.conflicts)
      ? m.conflicts.filter((c): c is FenceMarkerFile => c !== null && typeof c === "object" && typeof c.path === "string").map((c) => ({ path: c.path, why: String(c.why ?? "changed") }))
      : [];
    return { format: FENCE_FORMAT, fencedAt: m.fencedAt, host: String(m.host ?? "?"), by: String(m.by ?? ""), files: Number.isSafeInteger(m.files) ? (m.files as number) : conflicts.length, conflicts };
  } catch {
    return null;
  }
}
