// Event classification, pure: a watcher's event and a look at its path in, what the daemon must do out. No I/O,
// no time: the runner looks, classifies, and acts on the engine's queues.
import type { Look } from "../source/look.ts";
import { matchesExtensions } from "../source/walk.ts";

export type Action =
  /** these files were written or created: send them (after the debounce) */
  | { kind: "changed"; path: string }
  /** this file is gone: delete it on the replica (when `delete` is on and it was synced) */
  | { kind: "gone"; path: string }
  /** a directory is gone: every tracked file under it is */
  | { kind: "goneDir"; dir: string }
  /** a new directory: it may hold files written before its watch existed, walk it */
  | { kind: "walk"; dir: string }
  /** events were lost (queue overflow) or the watcher failed: a full rescan finds what changed */
  | { kind: "rescan"; why: string }
  | { kind: "ignore" };

export interface ClassifyContext {
  /** rrdsync's own files (relative), never replicated */
  isOwn(rel: string): boolean;
  extensions: string[];
  /** `delete` is on: gone files matter */
  deletes: boolean;
}

/** Something happened at `rel`, which now looks like `look`. */
export function classifyPath(rel: string, look: Look, ctx: ClassifyContext): Action {
  if (ctx.isOwn(rel)) return { kind: "ignore" };
  switch (look.kind) {
    case "file":
      // Unmonitored names (the temp file of an atomic write) are ignored until renamed to a monitored name.
      return matchesExtensions(rel, ctx.extensions) ? { kind: "changed", path: rel } : { kind: "ignore" };
    case "dir":
      return { kind: "walk", dir: rel };
    case "gone":
      // A deleted file, or a directory deleted or moved out of the tree (then every tracked file under it).
      if (!ctx.deletes) return { kind: "ignore" };
      return matchesExtensions(rel, ctx.extensions) ? { kind: "gone", path: rel } : { kind: "goneDir", dir: rel };
    default:
      // a symlink, a device, or a path we cannot look at now (the next rescan sees it)
      return { kind: "ignore" };
  }
}
