// What a tree watcher reports: plain data, relative '/'-separated paths, no policy (extensions, debounce, own files).

export type WatchEvent =
  /**
   * A file was written (close after write, write(), create, attribute change): look at it again. It may be gone by
   * the time it is looked at, and the fs.watch fallback reports every change (deletes and renames too) this way.
   */
  /**
   * something happened at `rel`; `written`: the kernel said a file there was written or closed after writing
   * (IN_CLOSE_WRITE, IN_MODIFY, IN_ATTRIB on a non-directory), so it needs no look to be classified: the send
   * stage looks at it anyway (issue 25: one lstat less per RRD update)
   */
  | { type: "path"; rel: string; written?: boolean }
  /** deleted, or moved out of the tree (an unpaired IN_MOVED_FROM); `dir`: a directory, so everything under it too */
  | { type: "gone"; rel: string; dir: boolean }
  /** renamed inside the tree (IN_MOVED_FROM + IN_MOVED_TO paired by cookie); a directory moves with all it holds */
  | { type: "move"; from: string; to: string; dir: boolean }
  /** events were lost (the kernel queue overflowed, or a mount under the tree went away): rescan everything */
  | { type: "overflow" }
  /**
   * The root itself was removed, renamed away or unmounted ("gone"): nothing under it is reported, above all not as
   * deleted. "back": a directory exists at the root path again and is watched; rescan it.
   */
  | { type: "root"; state: "gone" | "back" }
  /**
   * The watcher cannot see everything. ENOSPC (watch limit) and EMFILE (instance limit): part or all of the tree is
   * unwatched, `message` names the sysctl that fixes it; rescan periodically. EACCES and others carry `rel`, the one
   * directory that could not be watched.
   */
  | { type: "error"; code: string; message: string; rel?: string };

/** What the daemon holds: started once, closed once. */
export interface TreeWatcher {
  /** "inotify" (the FFI binding) or "fs.watch" (the fallback, which cannot see writes through mmap) */
  readonly kind: "inotify" | "fs.watch";
  /** Starts watching; events flow to the callback given at creation. Call once. */
  start(): void;
  /**
   * Resolves when the initial recursive add is done (at once when the root is missing or inotify could not start:
   * those are reported as events). Files changed before this may have been missed: scan after it, not before.
   */
  readonly ready: Promise<void>;
  /** directories watched now (one kernel watch each); null where the backend cannot tell */
  watchCount(): number | null;
  /** Stops all events; resolves when the kernel resources are released. Safe to call twice. */
  close(): Promise<void>;
}

/** The log lines a watcher writes (src/log.ts's Logger fits). */
export interface WatchLog {
  debug(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}
