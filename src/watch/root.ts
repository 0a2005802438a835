// The watched root's identity, checked by both watchers every second: replaced, gone, or back.
import { lstatSync, statSync } from "node:fs";
import { dirname } from "node:path";

export interface RootIdentity {
  /** dev:ino of the directory at the root path (a symlink there is no directory) */
  id: string;
  /** a mount point: on another device than its parent directory */
  mount: boolean;
}

export function rootIdentity(root: string): RootIdentity | null {
  // lstat: the source is a directory, never a link (a link put in its place is the source gone, not followed)
  const st = lstatSync(root, { throwIfNoEntry: false });
  if (!st?.isDirectory()) return null;
  const up = statSync(dirname(root), { throwIfNoEntry: false });
  return { id: `${st.dev}:${st.ino}`, mount: root === "/" || up === undefined || up.dev !== st.dev };
}

/**
 * May watching resume at the root path? Not on the bare mount point of an unmounted source: that empty directory is
 * not the source, and a rescan of it would find every file gone.
 */
export function rootUsable(now: RootIdentity | null, wasMount: boolean): now is RootIdentity {
  return now !== null && (now.mount || !wasMount);
}
