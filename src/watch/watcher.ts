// The file-system watcher: Bun's recursive fs.watch turned into plain events; no policy lives here.
import { type FSWatcher, readFileSync, watch } from "node:fs";

export type WatchEvent =
  /** something happened at this path (relative to the root); look at it again */
  | { type: "path"; rel: string }
  /** the kernel queue overflowed: events were lost, a full rescan is needed */
  | { type: "overflow" }
  /** the watcher failed (ENOSPC: inotify watch limit); only part of the tree may be watched */
  | { type: "error"; code: string; message: string };

export class TreeWatcher {
  private w: FSWatcher | null = null;

  constructor(
    private readonly root: string,
    private readonly onEvent: (e: WatchEvent) => void,
  ) {}

  start(): void {
    // The callback API: fs.promises.watch drops Bun's overflow signal (filename === null).
    this.w = watch(this.root, { recursive: true }, (_type, filename) => {
      if (filename === null || filename === undefined) this.onEvent({ type: "overflow" });
      else this.onEvent({ type: "path", rel: String(filename) });
    });
    this.w.on("error", (e: NodeJS.ErrnoException) => {
      this.onEvent({ type: "error", code: e.code ?? "EUNKNOWN", message: e.message });
    });
  }

  close(): void {
    this.w?.close();
    this.w = null;
  }
}

/** fs.inotify.max_user_watches, or null where there is no such file (not Linux). */
export function inotifyWatchLimit(): number | null {
  try {
    return Number.parseInt(readFileSync("/proc/sys/fs/inotify/max_user_watches", "utf8").trim(), 10);
  } catch {
    return null;
  }
}
