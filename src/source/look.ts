// A look at one path of the source, for events and rechecks: what is there now. lstat only: never follows a symlink.
import { type BigIntStats, lstatSync } from "node:fs";
import { join } from "node:path";

export type Look =
  | { kind: "file"; stat: BigIntStats }
  | { kind: "dir" }
  /** a symlink, a device, a fifo: never replicated */
  | { kind: "other" }
  /** ENOENT/ENOTDIR: really not there */
  | { kind: "gone" }
  /** something else went wrong (EACCES on a parent, EIO): proves nothing either way */
  | { kind: "unknown"; code: string };

export function lookAt(sourceDir: string, rel: string): Look {
  let st: BigIntStats;
  try {
    st = lstatSync(join(sourceDir, rel), { bigint: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "EIO";
    return code === "ENOENT" || code === "ENOTDIR" ? { kind: "gone" } : { kind: "unknown", code };
  }
  if (st.isFile()) return { kind: "file", stat: st };
  if (st.isDirectory()) return { kind: "dir" };
  return { kind: "other" };
}

/** Truly gone from the source: lstat says ENOENT/ENOTDIR (an unreadable directory proves nothing). */
export function goneFromSource(sourceDir: string, rel: string): boolean {
  return lookAt(sourceDir, rel).kind === "gone";
}
