// Chooses the tree watcher: inotify through bun:ffi, else Bun's fs.watch (which cannot see writes through mmap).
import { type Dirent, type FSWatcher, readdirSync, readFileSync, statSync, watch } from "node:fs";
import { resolve } from "node:path";
import { fsPath, nameFromBytes } from "../names.ts";
import type { TreeWatcher as Watcher, WatchEvent, WatchLog } from "./events.ts";
import { inotifyLibc } from "./inotify-sys.ts";
import { InotifyTreeWatcher, ROOT_CHECK_MS } from "./inotify.ts";
import { rootIdentity, rootUsable } from "./root.ts";

/**
 * The watcher for `root`, not yet started. inotify wherever libc.so.6 loads (Linux with glibc): it is the only one that
 * sees `rrdtool update` (IN_CLOSE_WRITE). Elsewhere the fs.watch fallback, logged as such.
 */
export function createTreeWatcher(root: string, onEvent: (e: WatchEvent) => void, log?: WatchLog): Watcher {
  try {
    inotifyLibc();
    return new InotifyTreeWatcher(root, onEvent, log);
  } catch (e) {
    log?.warn(
      `inotify is not available here (${(e as Error).message}); watching with fs.watch, which misses writes through mmap ` +
        "(rrdtool, jrrd2): those files are found by rescans only",
    );
    return new FsTreeWatcher(root, onEvent);
  }
}

/**
 * The fallback: Bun's recursive fs.watch. It reports every change as "path" (look again: it may be gone or a
 * directory), so there are no "gone" or "move" events; a new directory's files are reported at once. The root is
 * checked every ROOT_CHECK_MS as by the inotify watcher.
 */
export class FsTreeWatcher implements Watcher {
  readonly kind = "fs.watch";
  readonly ready: Promise<void> = Promise.resolve();
  private readonly root: string;
  private w: FSWatcher | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  private rootId = "";
  private rootWasMount: boolean | null = null;
  private closed = false;

  constructor(
    root: string,
    private readonly onEvent: (e: WatchEvent) => void,
  ) {
    this.root = resolve(root);
  }

  start(): void {
    if (this.timer || this.closed) return;
    this.timer = setInterval(() => this.checkRoot(), ROOT_CHECK_MS);
    if (!this.arm()) this.onEvent({ type: "root", state: "gone" });
  }

  watchCount(): number | null {
    return null;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.w?.close();
    this.w = null;
  }

  private arm(): boolean {
    const ident = rootIdentity(this.root);
    if (!rootUsable(ident, this.rootWasMount === true)) return false;
    this.rootId = ident.id;
    this.rootWasMount ??= ident.mount;
    // The callback API: fs.promises.watch drops Bun's overflow signal (filename === null). Names as bytes, read
    // as the walks read them (src/names.ts): one that is not UTF-8 is told apart from a real U+FFFD.
    this.w = watch(this.root, { recursive: true, encoding: "buffer" }, (_type, filename) => {
      if (this.closed) return;
      if (filename === null || filename === undefined) this.onEvent({ type: "overflow" });
      else this.onPath(nameFromBytes(Buffer.from(filename)));
    });
    this.w.on("error", (e: NodeJS.ErrnoException) => {
      if (!this.closed) this.onEvent({ type: "error", code: e.code ?? "EUNKNOWN", message: e.message });
    });
    return true;
  }

  private onPath(rel: string): void {
    this.onEvent({ type: "path", rel });
    // A new directory may hold files written before its watch existed (mkdir -p + write, or mv into the tree).
    if (statSync(fsPath(`${this.root}/${rel}`), { throwIfNoEntry: false })?.isDirectory() !== true) return;
    let entries: Dirent[];
    try {
      entries = readdirSync(fsPath(`${this.root}/${rel}`), { withFileTypes: true, recursive: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (!e.isFile()) continue;
      const path = `${e.parentPath.slice(this.root.length + 1)}/${e.name}`;
      // Decoded by Bun: U+FFFD may stand for a byte that is not UTF-8, no path to look at; the next rescan finds it.
      if (!path.includes("\uFFFD")) this.onEvent({ type: "path", rel: path });
    }
  }

  private checkRoot(): void {
    if (this.w && rootIdentity(this.root)?.id !== this.rootId) {
      this.w.close();
      this.w = null;
      this.onEvent({ type: "root", state: "gone" });
    } else if (!this.w && this.arm()) {
      this.onEvent({ type: "root", state: "back" });
    }
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
