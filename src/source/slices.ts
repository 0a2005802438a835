// The tree cut into slices for a first sync: runs of whole directories (each with its own monitored files only) in
// the walk's order, a bounded number of files each. Only names are listed here (getdents, no stat): the files are
// stat'ed and described while the transfer runs.
import { listNames } from "./listing.ts";
import { visitedBefore } from "./walk.ts";

export interface SliceDir {
  /** relative to the root ("" = the root itself), '/'-separated */
  rel: string;
  /** the directory's own candidate files (monitored names of regular files, or of entries whose type is unknown) */
  names: string[];
}

export interface Slice {
  dirs: SliceDir[];
  files: number;
  /** no directory comes after this slice: it ends the tree */
  last: boolean;
}

export interface SliceOptions {
  extensions: string[];
  /** absolute paths never replicated (rrdsync's own files inside the tree) */
  exclude: Set<string>;
  /** a slice closes once it holds this many files (a directory is never split: one with more files is a slice alone) */
  maxFiles: number;
  /** and at this many directories, so a tree of many small directories still gives bounded slices */
  maxDirs: number;
  /** resume: every directory up to and including this one (walk order) was synced by an earlier run */
  after?: string | null;
  onProblem: (rel: string, reason: string) => void;
  onSymlink?: (rel: string) => void;
}

/** Yields the slices of the tree, depth first with sorted names (the order walkTree uses). */
export function* treeSlices(root: string, opts: SliceOptions): Generator<Slice> {
  const stack: string[] = [""];
  let slice: Slice = { dirs: [], files: 0, last: false };
  while (stack.length > 0) {
    const rel = stack.pop() as string;
    const listed = listNames(rel, rel === "" ? root : `${root}/${rel}`, opts);
    if (listed === null) continue;
    const { subdirs, names } = listed;
    for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i] as string);
    if (opts.after != null && visitedBefore(rel, opts.after)) continue; // synced by an earlier run
    slice.dirs.push({ rel, names });
    slice.files += names.length;
    if (slice.files >= opts.maxFiles || slice.dirs.length >= opts.maxDirs) {
      slice.last = stack.length === 0;
      yield slice;
      slice = { dirs: [], files: 0, last: false };
    }
  }
  if (slice.dirs.length > 0) {
    slice.last = true;
    yield slice;
  }
}
