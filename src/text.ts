// How counts, sizes and file-system errors read to people: shared by the commands, the engine and the store, so it
// lives below all of them (it imports nothing).

/** "1 file", "2 files". */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** 1536 → "1.5 KiB" */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** An fs error as people read it: what is wrong, not only the code. */
export function describeFsError(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code ?? "";
  const why: Record<string, string> = {
    EACCES: "permission denied",
    EPERM: "operation not permitted (immutable? lsattr shows it)",
    EROFS: "read-only file system",
    EISDIR: "it is a directory",
    ENOTDIR: "a part of the path is a file, not a directory",
    EEXIST: "a part of the path is a file, not a directory",
    ENOSPC: "no space left on the device",
    EDQUOT: "disk quota exceeded",
    ENOENT: "no such file or directory",
    ELOOP: "it is a symlink, and rrdsync never writes through one",
  };
  return why[code] ?? (code || (e as Error).message);
}
