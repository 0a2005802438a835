// A full pass's walk on both cores: the walk goes on alone until it meets a directory with many subdirectories
// (OpenNMS's snmp/ with its nodes), then hands every other one to a worker thread, which walks them against its
// own read-only connection to the state DB while this thread walks the rest and acts on what both find. The walk
// is the floor of a pass where nothing changed: syscalls and comparisons, which two threads share (as far as the
// machine has a core to spare: rsync, its ssh and sshd want them too).
import { scanTree, type ScanItem, type ScanOptions } from "../source/scan.ts";
import type { ScanJob, ScanReply } from "./scan-worker.ts";

/** A directory with at least this many subdirectories is where the walk is split. */
const SPLIT_MIN = 16;

const WORKER_URL = Bun.main.startsWith("/$bunfs/") ? "./engine/scan-worker.ts" : new URL("./scan-worker.ts", import.meta.url).href;

export interface SplitOptions extends ScanOptions {
  /** walk on two threads (worth its ~30 ms start on a big tree) */
  parallel: boolean;
  stateFile: string;
  /** every directory's item is needed (deletes are on) */
  allDirs: boolean;
  debug?: (message: string) => void;
}

export async function* splitScan(root: string, opts: SplitOptions): AsyncGenerator<ScanItem> {
  if (!opts.parallel) {
    yield* scanTree(root, opts);
    return;
  }
  let worker: Worker | null = null;
  let inbox: ScanItem[] = [];
  let head = 0;
  let unchanged = 0;
  let done = false;
  let error: string | null = null;
  let wake: (() => void) | null = null;
  let handed: string[] = [];
  const split = (rel: string, subdirs: string[]): string[] => {
    if (subdirs.length < SPLIT_MIN) return subdirs;
    const job: ScanJob = {
      root, stateFile: opts.stateFile, extensions: opts.extensions, exclude: opts.exclude, allDirs: opts.allDirs,
      subtrees: subdirs.filter((_, i) => i % 2 === 1).map((n) => (rel === "" ? n : `${rel}/${n}`)),
    };
    const w = new Worker(WORKER_URL);
    w.onmessage = (e: MessageEvent<ScanReply>) => {
      inbox.push(...e.data.items);
      unchanged += e.data.unchanged;
      if (e.data.done) {
        done = true;
        error = e.data.error ?? null;
      }
      wake?.();
    };
    w.onerror = (e) => {
      done = true;
      error = e.message;
      wake?.();
    };
    w.postMessage(job);
    worker = w;
    handed = job.subtrees;
    opts.debug?.(`the walk goes on two threads from ${rel || "."}/: ${job.subtrees.length} of its ${subdirs.length} subdirectories in a worker`);
    return subdirs.filter((_, i) => i % 2 === 0);
  };
  const take = function* (): Generator<ScanItem> {
    while (head < inbox.length) yield inbox[head++] as ScanItem;
    inbox = [];
    head = 0;
    if (unchanged > 0) {
      yield { kind: "dir", rel: "", unchanged, unseen: [] }; // the worker's unchanged files, counted
      unchanged = 0;
    }
  };
  try {
    for (const item of scanTree(root, { ...opts, split })) {
      yield item;
      yield* take();
    }
    while (worker !== null && !done) {
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = null;
      yield* take();
    }
    yield* take();
    if (error !== null) {
      // The worker could not do its share (its DB connection, say): this thread walks it, so nothing is left out
      // (what the worker had reported comes twice: a file looked at twice is sent at most once more).
      opts.debug?.(`the walk's worker failed (${error}): its ${handed.length} subtrees are walked here`);
      yield* scanTree(root, { ...opts, split: undefined, subtrees: handed });
    }
  } finally {
    (worker as Worker | null)?.terminate();
  }
}
