// Event classification, pure: a watcher's event (and, for a plain path, a look at it) in, what the daemon must do
// out. No I/O, no time: the runner looks, classifies, and acts on the engine's queues.
import type { Look } from "../source/look.ts";
import { matchesExtensions } from "../source/walk.ts";
import type { WatchEvent } from "./events.ts";

export type Action =
  /** a file was written or created: send it (after the debounce) */
  | { kind: "changed"; path: string }
  /** a file is gone: delete it on the replica (when `delete` is on and it was synced) */
  | { kind: "gone"; path: string }
  /** a directory is gone: every tracked file under it is */
  | { kind: "goneDir"; dir: string }
  /** a file renamed inside the tree: one move on the replica */
  | { kind: "moved"; from: string; to: string }
  /** a directory renamed inside the tree: every tracked file under it moves on the replica */
  | { kind: "movedDir"; from: string; to: string }
  /** a directory appeared: it may hold files written before its watch existed (fs.watch: walk it) */
  | { kind: "walk"; dir: string }
  /** events were lost (queue overflow) or the source came back: a full rescan finds what changed */
  | { kind: "rescan"; why: string }
  /** the source directory itself is gone (moved away, removed, unmounted): pause, never delete because of it */
  | { kind: "sourceGone" }
  /** the watcher cannot see everything (`poll`: fall back to periodic full scans) */
  | { kind: "watchError"; message: string; poll: boolean }
  | { kind: "ignore" };

export interface ClassifyContext {
  /** rrdsync's own files (relative), never replicated */
  isOwn(rel: string): boolean;
  extensions: string[];
  /** `delete` is on: gone files matter */
  deletes: boolean;
  /** the watcher reports a new directory's files itself (inotify); fs.watch needs the directory walked */
  reportsNewDirFiles: boolean;
}

const IGNORE: Action = { kind: "ignore" };

/** What an event means. `look` is asked only for plain path events (the others say what happened). */
export function classifyEvent(e: WatchEvent, look: (rel: string) => Look, ctx: ClassifyContext): Action[] {
  switch (e.type) {
    case "path":
      // A file written in place needs no look now: the send stage looks at it when it is due (it may be gone by
      // then, or a symlink: dropped there). Each look is an lstat, and a tree updated day and night raises one such
      // event per RRD update.
      if (e.written) return [ctx.isOwn(e.rel) || !matchesExtensions(e.rel, ctx.extensions) ? IGNORE : { kind: "changed", path: e.rel }];
      return [classifyPath(e.rel, look(e.rel), ctx)];
    case "gone":
      if (!ctx.deletes || ctx.isOwn(e.rel)) return [IGNORE];
      if (e.dir) return [{ kind: "goneDir", dir: e.rel }];
      return [matchesExtensions(e.rel, ctx.extensions) ? { kind: "gone", path: e.rel } : IGNORE];
    case "move":
      return classifyMove(e.from, e.to, e.dir, ctx);
    case "overflow":
      return [{ kind: "rescan", why: "the kernel's event queue overflowed (events were lost): running a full rescan" }];
    case "root":
      return e.state === "gone" ? [{ kind: "sourceGone" }] : [{ kind: "rescan", why: "the source directory is back: running a full rescan" }];
    case "error":
      // One directory that cannot be watched (EACCES) leaves the rest watched: the periodic rescan covers it.
      return [{ kind: "watchError", message: e.rel === undefined ? e.message : `${e.rel}: ${e.message}`, poll: e.rel === undefined }];
  }
}

/** Something happened at `rel`, which now looks like `look`. */
export function classifyPath(rel: string, look: Look, ctx: ClassifyContext): Action {
  if (ctx.isOwn(rel)) return IGNORE;
  switch (look.kind) {
    case "file":
      // Unmonitored names (the temp file of an atomic write) are ignored until renamed to a monitored name.
      return matchesExtensions(rel, ctx.extensions) ? { kind: "changed", path: rel } : IGNORE;
    case "dir":
      return ctx.reportsNewDirFiles ? IGNORE : { kind: "walk", dir: rel };
    case "gone":
      // A deleted file, or a directory deleted or moved out of the tree (then every tracked file under it).
      if (!ctx.deletes) return IGNORE;
      return matchesExtensions(rel, ctx.extensions) ? { kind: "gone", path: rel } : { kind: "goneDir", dir: rel };
    default:
      // a symlink, a device, or a path we cannot look at now (the next rescan sees it)
      return IGNORE;
  }
}

function classifyMove(from: string, to: string, dir: boolean, ctx: ClassifyContext): Action[] {
  const fromOurs = ctx.isOwn(from);
  const toOurs = ctx.isOwn(to);
  if (dir) {
    if (fromOurs || toOurs) return [IGNORE];
    // Files the state does not track yet (written just before the move) are found by a walk of the new place.
    return [{ kind: "movedDir", from, to }, { kind: "walk", dir: to }];
  }
  const fromWatched = !fromOurs && matchesExtensions(from, ctx.extensions);
  const toWatched = !toOurs && matchesExtensions(to, ctx.extensions);
  if (fromWatched && toWatched) return [{ kind: "moved", from, to }];
  // An atomic write: a temp name (unmonitored) renamed over the real one is a new version of it.
  if (toWatched) return [{ kind: "changed", path: to }];
  // Renamed to an unmonitored name: for the replica the file is gone.
  if (fromWatched && ctx.deletes) return [{ kind: "gone", path: from }];
  return [IGNORE];
}
