// A worker thread's share of a full pass's walk (a second entry point of the binary, see scripts/build.sh): its
// subtrees scanned against its own read-only connection to the state DB, the items posted back in batches.
import { scanTree, type ScanItem } from "../source/scan.ts";
import { TrackedReader } from "../store/state.ts";

export interface ScanJob {
  root: string;
  stateFile: string;
  extensions: string[];
  exclude: string[];
  subtrees: string[];
  /** every directory's item (deletes are on); else only those with tracked names not found, and a count */
  allDirs: boolean;
}

export type ScanReply = { items: ScanItem[]; unchanged: number; done: boolean; error?: string };

declare const self: Worker;

self.onmessage = (e: MessageEvent<ScanJob>) => {
  const job = e.data;
  let reader: TrackedReader | null = null;
  let items: ScanItem[] = [];
  let unchanged = 0;
  const post = (done: boolean, error?: string) => {
    self.postMessage({ items, unchanged, done, error } satisfies ScanReply);
    items = [];
    unchanged = 0;
  };
  try {
    reader = new TrackedReader(job.stateFile);
    const r = reader;
    for (const item of scanTree(job.root, { extensions: job.extensions, exclude: job.exclude, subtrees: job.subtrees, trackedIn: (d) => r.trackedIn(d), trackedChildren: (d, n) => r.trackedChildren(d, n), allDirs: job.allDirs })) {
      if (item.kind === "dir") {
        unchanged += item.unchanged;
        if (!job.allDirs && item.unseen.length === 0) continue; // a count only
        items.push({ ...item, unchanged: 0 });
      } else items.push(item);
      if (items.length >= 1024) post(false);
    }
    post(true);
  } catch (err) {
    post(true, (err as Error).message);
  } finally {
    reader?.close();
  }
};
