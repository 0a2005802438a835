// Recursive inotify through bun:ffi: one watch per directory, the kernel's events turned into plain WatchEvents.
// Why not fs.watch: Bun's (like libuv's) does not subscribe to IN_CLOSE_WRITE, and librrd writes through mmap, which
// raises no IN_MODIFY: an `rrdtool update` is visible only as IN_CLOSE_WRITE (issue #13).
import { type Dirent, lstatSync, readdirSync } from "node:fs";
import { fsPath, writeCName } from "../names.ts";
import { exactNames } from "../source/walk.ts";
import { resolve } from "node:path";
import type { TreeWatcher, WatchEvent, WatchLog } from "./events.ts";
import {
  DIR_MASK, FIONREAD, IN_ATTRIB, IN_CLOEXEC, IN_CLOSE_WRITE, IN_CREATE, IN_DELETE, IN_DELETE_SELF, IN_IGNORED, IN_ISDIR, IN_MODIFY,
  IN_MOVE_SELF, IN_MOVED_FROM, IN_MOVED_TO, IN_NONBLOCK, IN_Q_OVERFLOW, IN_UNMOUNT, inotifyLibc, inotifySysctl, lastErrno,
  parseInotifyEvents, ROOT_MASK,
} from "./inotify-sys.ts";
import { rootIdentity, rootUsable } from "./root.ts";

/** How long an IN_MOVED_FROM waits for its IN_MOVED_TO (they can sit in two reads) before it counts as moved out. */
export const MOVE_PAIR_MS = 40;
/** ...and at most this long while the kernel still holds unread events (a busy event loop), then it is "gone". */
const MOVE_PAIR_MAX_MS = 2000;
/** The root's identity is checked (and, while gone, looked for) this often: one stat, no busy loop. */
export const ROOT_CHECK_MS = 1000;
/** The recursive add yields to the event loop after this much work, so 200,000 directories never hold it for long. */
const SLICE_MS = 10;

/** A watched directory. Paths are not stored: a move re-parents one node and its whole subtree follows. */
interface Dir {
  wd: number;
  name: string;
  parent: Dir | null;
  children: Map<string, Dir> | null;
  /** the walk that last saw it: after an overflow's rewalk, directories it did not see are dropped */
  epoch: number;
}

interface WalkJob {
  /** the nearest watched directory above */
  parent: Dir;
  /** relative to parent: one name, or a/b/c past the watch limit (directories counted and listed, not watched) */
  name: string;
  /** report the files found (a new or moved-in directory); not for the initial add or a rewalk, which a rescan follows */
  report: boolean;
  gen: number;
}

/** An output place held for an IN_MOVED_FROM until it is known to be a move or a gone, so events keep their order. */
interface Slot {
  ev: WatchEvent | null;
  done: boolean;
}

interface PendingMove {
  slot: Slot;
  from: string;
  fromParent: Dir;
  name: string;
  dir: boolean;
  node: Dir | undefined;
  since: number;
}

type Rewalk = "start" | "back" | "overflow";

export class InotifyTreeWatcher implements TreeWatcher {
  readonly kind = "inotify";
  readonly ready: Promise<void>;
  private readyResolve: () => void = () => {};
  private readonly root: string;
  private readonly lib = inotifyLibc();
  private fd = -1;
  /** bumped whenever the fd is replaced or the tree dropped: work queued before is stale */
  private gen = 0;
  private state: "new" | "armed" | "gone" | "closed" = "new";
  private rootDir: Dir | null = null;
  private rootId = "";
  /** the root was a mount point when first watched: it comes back only as one (see rootUsable) */
  private rootWasMount = false;
  private readonly byWd = new Map<number, Dir>();
  private readonly queue: WalkJob[] = [];
  private pumping = false;
  private epoch = 0;
  /** what the running walk will announce when the queue drains */
  private readonly rewalks = new Set<Rewalk>();
  /** ENOSPC met in this walk: stop adding, count the directories for the message */
  private limited = false;
  private unwatched = 0;
  private limitReported = false;
  private readonly pending = new Map<number, PendingMove>();
  private pairTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly out: Slot[] = [];
  private rootTimer: ReturnType<typeof setInterval> | null = null;
  private reader: { cancel(): Promise<void> } | null = null;
  private readLoop: Promise<void> = Promise.resolve();
  private closing: Promise<void> | null = null;
  /** inotify_init1 failed: this watcher sees nothing until rrdsync restarts */
  private failed = false;
  private carry: Uint8Array | null = null;
  private lastPath = "";
  private readonly pathBuf = Buffer.alloc(16384);
  private readonly nread = new Int32Array(1);

  constructor(
    root: string,
    private readonly onEvent: (e: WatchEvent) => void,
    private readonly log?: WatchLog,
  ) {
    this.root = resolve(root);
    this.ready = new Promise((r) => {
      this.readyResolve = r;
    });
  }

  start(): void {
    if (this.state !== "new") return;
    this.state = "gone";
    this.rootTimer = setInterval(() => this.checkRoot(), ROOT_CHECK_MS);
    if (!this.openFd()) {
      this.readyResolve();
      return;
    }
    if (!this.rootIsDir()) {
      this.deliver({ type: "root", state: "gone" });
      this.readyResolve();
      return;
    }
    this.rewalk("start");
  }

  watchCount(): number {
    return this.byWd.size;
  }

  async close(): Promise<void> {
    if (this.state === "closed") return;
    this.state = "closed";
    if (this.rootTimer) clearInterval(this.rootTimer);
    this.rootTimer = null;
    this.dropAll();
    this.readyResolve();
    await this.closeFd();
  }

  // ---- the fd and its reader --------------------------------------------------------------------------------------

  /**
   * A non-blocking fd read through Bun.file(fd).stream(), as Bun reads a pipe: no thread of its pool is taken, the
   * JavaScript thread never blocks, and an idle watcher costs nothing (measured: ~1 ms of CPU in 3 s, no polling loop).
   * Measured alternative: node:fs `read` on a blocking fd parks one thread of Bun's shared pool for good, and with two
   * such reads parked, other async fs calls were seen to hang; nor can a parked read be woken except by an event.
   * Measured too: Bun keeps draining the fd into the stream while JavaScript is busy, so the kernel's queue
   * (max_queued_events, 16,384) overflows only when the whole process stalls (the e2e test uses SIGSTOP).
   */
  private openFd(): boolean {
    const fd = this.lib.inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
      const code = lastErrno();
      const limit = inotifySysctl("max_user_instances");
      const message = code === "EMFILE"
        ? `cannot start inotify: the per-user limit of inotify instances (fs.inotify.max_user_instances = ${limit}) is used up by other programs. ` +
          `Fix: sysctl fs.inotify.max_user_instances=${Number(limit) > 0 ? Number(limit) * 2 : 512} and persist it in /etc/sysctl.d/90-rrdsync.conf, then restart rrdsync`
        : `cannot start inotify (${code})`;
      this.deliver({ type: "error", code, message });
      this.failed = true; // no retry every second (and no error every second): the message says restart after the fix
      return false;
    }
    this.fd = fd;
    this.gen++;
    this.carry = null;
    const reader = Bun.file(fd).stream().getReader();
    this.reader = reader;
    const gen = this.gen;
    this.readLoop = (async () => {
      for (;;) {
        const r = await reader.read().catch((e: Error) => e);
        if (r instanceof Error) {
          if (gen === this.gen && this.state !== "closed") {
            this.deliver({ type: "error", code: "EIO", message: `reading the inotify fd failed: ${r.message}` });
          }
          return;
        }
        if (r.done || gen !== this.gen) return;
        this.onChunk(r.value, gen);
      }
    })();
    return true;
  }

  /** Cancels the reader first (Bun stops polling the fd), then closes the fd: that drops every watch at once. */
  private async closeFd(): Promise<void> {
    const fd = this.fd;
    const reader = this.reader;
    const loop = this.readLoop;
    this.fd = -1;
    this.reader = null;
    this.gen++;
    const done = (async () => {
      if (reader) {
        await reader.cancel().catch(() => {});
        await loop;
      }
      if (fd >= 0) this.lib.close(fd);
    })();
    this.closing = done;
    await done;
    if (this.closing === done) this.closing = null;
  }

  // ---- the root ---------------------------------------------------------------------------------------------------

  private rootIsDir(): boolean {
    return rootUsable(rootIdentity(this.root), this.rootWasMount);
  }

  private checkRoot(): void {
    if (this.failed) return;
    if (this.state === "armed") {
      // A mount over the root, or a parent directory renamed: no event on the root's own watch tells of those.
      if (rootIdentity(this.root)?.id !== this.rootId) this.rootGone();
    } else if (this.state === "gone" && this.closing === null && this.rootIsDir()) {
      if (this.fd >= 0 || this.openFd()) this.rewalk("back");
    }
  }

  /** The root was removed, renamed away or unmounted: drop everything, report it once, look for it again. */
  private rootGone(): void {
    if (this.state !== "armed") return;
    this.state = "gone";
    this.dropAll();
    this.deliver({ type: "root", state: "gone" });
    if (this.rewalks.delete("start")) this.readyResolve();
    this.rewalks.clear();
    // Closing the fd drops all watches at once: removing 200,000 one by one would queue 200,000 IN_IGNORED.
    void this.closeFd().then(() => {
      if (this.state === "gone" && this.fd < 0 && this.rootIsDir() && this.openFd()) this.rewalk("back");
    });
  }

  /** Forgets every watch and every queued or pending thing (their events are not reported). */
  private dropAll(): void {
    this.gen++;
    this.byWd.clear();
    this.rootDir = null;
    this.queue.length = 0;
    this.pending.clear();
    if (this.pairTimer) clearTimeout(this.pairTimer);
    this.pairTimer = null;
    // Events held behind an unresolved move are still delivered in order; the move itself is dropped.
    for (const s of this.out) if (!s.done) s.done = true;
    this.flushOut();
  }

  // ---- the recursive add ------------------------------------------------------------------------------------------

  /**
   * Adds the root and walks every directory under it. The same walk answers an overflow (watches for directories made
   * while events were lost; inotify_add_watch on a watched inode returns its wd, so moved ones are re-placed) and the
   * root coming back. What it says when done: "start" → ready, "back" → root back, "overflow" → overflow.
   */
  private rewalk(why: Rewalk): void {
    if (this.state === "closed" || this.fd < 0) return;
    const wd = this.addWatch(this.root, ROOT_MASK);
    if (wd < 0) {
      const code = lastErrno();
      if (code !== "ENOENT" && code !== "ENOTDIR") this.log?.warn(`cannot watch ${this.root} (${code})`);
      if (this.state === "armed") this.rootGone();
      else if (why === "start") {
        this.deliver({ type: "root", state: "gone" });
        this.readyResolve();
      }
      return;
    }
    if (this.state === "armed" && this.rootDir !== null && wd !== this.rootDir.wd) {
      // Another directory stands at the root path (replaced since the last check): the old tree's watches must go.
      this.rootGone();
      return;
    }
    const ident = rootIdentity(this.root);
    this.rootId = ident?.id ?? "";
    if (why === "start") this.rootWasMount = ident?.mount === true;
    this.epoch++;
    this.limited = false;
    this.unwatched = 0;
    if (why !== "overflow") this.limitReported = false;
    let root = this.byWd.get(wd);
    if (!root || root !== this.rootDir) {
      root = { wd, name: "", parent: null, children: null, epoch: this.epoch };
      this.byWd.set(wd, root);
      this.rootDir = root;
    }
    root.epoch = this.epoch;
    this.state = "armed";
    this.rewalks.add(why);
    this.listDir(root, "", "", false);
    this.pump();
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    void this.runQueue().finally(() => {
      this.pumping = false;
    });
  }

  private async runQueue(): Promise<void> {
    let slice = performance.now();
    while (this.queue.length > 0) {
      this.scanDir(this.queue.pop() as WalkJob);
      if (performance.now() - slice > SLICE_MS) {
        await new Promise((r) => setImmediate(r));
        slice = performance.now();
      }
    }
    this.walkDone();
  }

  private walkDone(): void {
    if (this.state !== "armed" || this.rewalks.size === 0) return;
    if (this.limited) this.reportLimit();
    else {
      // A rewalk saw every directory that exists: the ones it did not see are gone (or moved out while events were lost).
      for (const d of [...this.byWd.values()]) if (d.epoch < this.epoch && this.byWd.get(d.wd) === d) this.drop(d);
    }
    const whys = [...this.rewalks];
    this.rewalks.clear();
    for (const why of whys) {
      if (why === "start") this.readyResolve();
      else if (why === "back") this.deliver({ type: "root", state: "back" });
      else this.deliver({ type: "overflow" });
    }
  }

  private scanDir(job: WalkJob): void {
    if (job.gen !== this.gen || this.byWd.get(job.parent.wd) !== job.parent) return; // its parent went away meanwhile
    const rel = this.relOf(job.parent, job.name);
    if (this.limited || job.name.includes("/")) {
      // Out of watches: count what is left for the fix's figure, report new files, add nothing.
      this.unwatched++;
      this.listDir(job.parent, `${job.name}/`, rel, job.report);
      return;
    }
    const wd = this.addWatch(`${this.root}/${rel}`, DIR_MASK);
    if (wd < 0) {
      const code = lastErrno();
      if (code === "ENOSPC") {
        this.limited = true;
        this.unwatched++;
        this.listDir(job.parent, `${job.name}/`, rel, job.report);
        if (this.rewalks.size === 0) this.reportLimit(); // a directory made later: no walk is counting
      } else if (code !== "ENOENT" && code !== "ENOTDIR" && code !== "ELOOP") {
        this.deliver({ type: "error", code, rel, message: `cannot watch ${rel} (${code}): changes under it are seen only by rescans` });
      }
      return;
    }
    let node = this.byWd.get(wd);
    if (node && node.parent === job.parent && node.name === job.name) {
      node.epoch = this.epoch;
      if (!job.report && this.rewalks.size === 0) return; // already watched and walked
    } else {
      if (node) this.detach(node); // the same inode at a new place: it moved while its events were lost
      else {
        node = { wd, name: job.name, parent: null, children: null, epoch: this.epoch };
        this.byWd.set(wd, node);
      }
      node.epoch = this.epoch;
      this.attach(node, job.parent, job.name);
    }
    this.listDir(node, "", rel, job.report);
  }

  /**
   * Queues the subdirectories of `rel` as jobs under `parent` named `prefix` + name (after the watch exists: nothing
   * made meanwhile is missed), and reports its files if asked.
   */
  private listDir(parent: Dir, prefix: string, rel: string, report: boolean): void {
    let entries: Dirent[];
    try {
      entries = readdirSync(fsPath(rel === "" ? this.root : `${this.root}/${rel}`), { withFileTypes: true });
    } catch {
      return; // gone or unreadable since the watch was added: its own events (or the rescan) tell
    }
    const relPrefix = rel === "" ? "" : `${rel}/`;
    let exact: Map<string, string[]> | undefined;
    for (const e of entries) {
      let name = e.name;
      if (name.includes("\uFFFD")) {
        // Bun decodes names: this one may hold bytes that are not UTF-8, its exact form comes from the bytes
        exact ??= exactNames(rel === "" ? this.root : `${this.root}/${rel}`);
        name = exact.get(name)?.shift() ?? name;
      }
      let isDir = e.isDirectory();
      let isFile = e.isFile();
      if (!isDir && !isFile && !e.isSymbolicLink() && !e.isFIFO() && !e.isSocket() && !e.isBlockDevice() && !e.isCharacterDevice()) {
        // No d_type from this file system: ask lstat (never stat: a symlink is not followed).
        const st = lstatSync(fsPath(`${this.root}/${relPrefix}${name}`), { throwIfNoEntry: false });
        isDir = st?.isDirectory() === true;
        isFile = st?.isFile() === true;
      }
      if (isDir) this.queue.push({ parent, name: `${prefix}${name}`, report, gen: this.gen });
      else if (isFile && report) this.emit({ type: "path", rel: `${relPrefix}${name}` });
    }
  }

  private reportLimit(): void {
    if (this.limitReported) return;
    this.limitReported = true;
    const watched = this.byWd.size;
    const dirs = watched + this.unwatched;
    this.deliver({
      type: "error",
      code: "ENOSPC",
      message: `the inotify watch limit (fs.inotify.max_user_watches = ${inotifySysctl("max_user_watches")}) is too low: ${watched} of ${dirs} directories under ${this.root} are watched, ` +
        `changes in the others are seen only by rescans. Fix: sysctl fs.inotify.max_user_watches=${2 * dirs} and persist it in /etc/sysctl.d/90-rrdsync.conf, then restart rrdsync`,
    });
  }

  private addWatch(abs: string, mask: number): number {
    // its bytes (src/names.ts); longer than PATH_MAX: cannot be watched by path
    if (writeCName(this.pathBuf, abs) < 0) return -1;
    return this.lib.inotify_add_watch(this.fd, this.pathBuf, mask);
  }

  // ---- the tree of watched directories ----------------------------------------------------------------------------

  private relOf(dir: Dir, name: string): string {
    let rel = name;
    for (let d: Dir | null = dir; d !== null && d.parent !== null; d = d.parent) rel = rel === "" ? d.name : `${d.name}/${rel}`;
    return rel;
  }

  private attach(node: Dir, parent: Dir, name: string): void {
    const old = parent.children?.get(name);
    if (old && old !== node) this.drop(old); // replaced (an empty directory renamed over): its IN_IGNORED may lag
    node.name = name;
    node.parent = parent;
    parent.children ??= new Map();
    parent.children.set(name, node);
  }

  private detach(node: Dir): void {
    if (node.parent?.children?.get(node.name) === node) node.parent.children.delete(node.name);
    node.parent = null;
  }

  /** Forgets a directory and everything under it, removing their kernel watches (their IN_IGNORED find no wd). */
  private drop(node: Dir): void {
    this.detach(node);
    const stack = [node];
    while (stack.length > 0) {
      const d = stack.pop() as Dir;
      if (this.byWd.get(d.wd) === d) {
        this.byWd.delete(d.wd);
        if (this.fd >= 0) this.lib.inotify_rm_watch(this.fd, d.wd);
      }
      if (d.children) for (const c of d.children.values()) stack.push(c);
      d.children = null;
    }
  }

  // ---- events -----------------------------------------------------------------------------------------------------

  private onChunk(chunk: Uint8Array, gen: number): void {
    let buf = chunk;
    if (this.carry) {
      buf = new Uint8Array(this.carry.length + chunk.length);
      buf.set(this.carry);
      buf.set(chunk, this.carry.length);
      this.carry = null;
    }
    this.lastPath = "";
    const off = parseInotifyEvents(buf, (wd, mask, cookie, name) => {
      this.onKernelEvent(wd, mask, cookie, name);
      return gen === this.gen; // the root went away: the rest of this read is about a tree no longer watched
    });
    if (gen !== this.gen) return;
    if (off < buf.length) this.carry = buf.slice(off);
    if (this.queue.length > 0) this.pump();
  }

  private onKernelEvent(wd: number, mask: number, cookie: number, name: string): void {
    if (mask & IN_Q_OVERFLOW) {
      this.log?.warn("inotify: the kernel's event queue overflowed; rewalking the tree");
      this.rewalk("overflow");
      return;
    }
    if (this.state !== "armed") return;
    const dir = this.byWd.get(wd);
    if (!dir) return; // a watch already dropped
    if (dir === this.rootDir && mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT | IN_IGNORED)) {
      this.rootGone();
      return;
    }
    if (mask & IN_UNMOUNT) {
      // A file system mounted under the tree went away: the directory under it shows now, unwatched and unknown.
      this.drop(dir);
      this.rewalk("overflow");
      return;
    }
    if (mask & IN_IGNORED) {
      if (dir.parent === null || dir.parent.children?.get(dir.name) === dir) this.drop(dir);
      else this.byWd.delete(wd);
      return;
    }
    if (mask & (IN_DELETE_SELF | IN_MOVE_SELF) || name === "") return; // the parent's event names it
    const isDir = (mask & IN_ISDIR) !== 0;
    if (mask & IN_MOVED_FROM) this.movedFrom(dir, name, cookie, isDir);
    else if (mask & IN_MOVED_TO) this.movedTo(dir, name, cookie, isDir);
    else if (mask & IN_CREATE) {
      if (isDir) this.queue.push({ parent: dir, name, report: true, gen: this.gen });
      else this.emitPath(this.relOf(dir, name));
    } else if (mask & IN_DELETE) {
      const child = isDir ? dir.children?.get(name) : undefined;
      if (child) this.drop(child);
      this.emit({ type: "gone", rel: this.relOf(dir, name), dir: isDir });
    } else if (!isDir && mask & (IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB)) this.emitPath(this.relOf(dir, name), true);
  }

  private movedFrom(dir: Dir, name: string, cookie: number, isDir: boolean): void {
    const slot: Slot = { ev: null, done: false };
    this.out.push(slot);
    this.pending.set(cookie, { slot, from: this.relOf(dir, name), fromParent: dir, name, dir: isDir, node: isDir ? dir.children?.get(name) : undefined, since: performance.now() });
    this.pairTimer ??= setTimeout(() => this.expireMoves(), MOVE_PAIR_MS);
  }

  private movedTo(dir: Dir, name: string, cookie: number, isDir: boolean): void {
    const p = this.pending.get(cookie);
    const to = this.relOf(dir, name);
    if (!p) {
      // Moved in from outside the tree: new to us, and a directory's files were never seen.
      if (isDir) this.queue.push({ parent: dir, name, report: true, gen: this.gen });
      else this.emitPath(to);
      return;
    }
    this.pending.delete(cookie);
    if (isDir) {
      if (p.node && this.byWd.get(p.node.wd) === p.node) {
        this.detach(p.node);
        this.attach(p.node, dir, name); // its watch follows the inode; the subtree's paths follow the node
      } else {
        const old = dir.children?.get(name);
        if (old) this.drop(old);
        this.queue.push({ parent: dir, name, report: true, gen: this.gen }); // never watched (limit, or raced its add)
      }
    }
    p.slot.ev = { type: "move", from: p.from, to, dir: isDir };
    p.slot.done = true;
    this.flushOut();
  }

  /** Unpaired IN_MOVED_FROMs older than MOVE_PAIR_MS: moved out of the tree, unless the kernel still holds unread events. */
  private expireMoves(): void {
    this.pairTimer = null;
    if (this.pending.size === 0) return;
    const now = performance.now();
    const unread = this.fd >= 0 && this.lib.ioctl(this.fd, FIONREAD, this.nread) === 0 && this.nread[0] !== undefined && this.nread[0] > 0;
    let next = Infinity;
    for (const [cookie, p] of this.pending) {
      const age = now - p.since;
      if (age < MOVE_PAIR_MS || (unread && age < MOVE_PAIR_MAX_MS)) {
        next = Math.min(next, Math.max(1, MOVE_PAIR_MS - age));
        continue;
      }
      this.pending.delete(cookie);
      if (p.node && this.byWd.get(p.node.wd) === p.node) this.drop(p.node);
      p.slot.ev = { type: "gone", rel: p.from, dir: p.dir };
      p.slot.done = true;
    }
    this.flushOut();
    if (next !== Infinity) this.pairTimer = setTimeout(() => this.expireMoves(), next);
  }

  // ---- output, in kernel order ------------------------------------------------------------------------------------

  private emitPath(rel: string, written = false): void {
    if (rel === this.lastPath) return; // IN_MODIFY then IN_CLOSE_WRITE of one write: one "look again" is enough
    this.lastPath = rel;
    this.emit(written ? { type: "path", rel, written } : { type: "path", rel });
  }

  private emit(ev: WatchEvent): void {
    if (ev.type !== "path") this.lastPath = "";
    if (this.out.length === 0) this.deliver(ev);
    else this.out.push({ ev, done: true });
  }

  private flushOut(): void {
    let i = 0;
    while (i < this.out.length && (this.out[i] as Slot).done) i++;
    const ready = this.out.splice(0, i);
    for (const s of ready) if (s.ev) this.deliver(s.ev);
  }

  private deliver(ev: WatchEvent): void {
    if (this.state === "closed") return;
    try {
      this.onEvent(ev);
    } catch (e) {
      // The handler's bug must not stop the watcher from reading the kernel's queue.
      this.log?.error(`watch event handler failed on ${JSON.stringify(ev)}: ${(e as Error).stack ?? e}`);
    }
  }
}
