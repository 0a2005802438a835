// Content facts about a file: text or binary (by content, not extension), and its sha256, read as a stream.
import { closeSync, constants, openSync, readSync } from "node:fs";
import { bunFile, fsPath } from "../names.ts";

export const SNIFF_BYTES = 8192;

/** Text iff no NUL byte in the first 8 KiB (git's and diff's rule); an empty file is text. */
export function isTextFile(path: string): boolean {
  const fd = openSync(fsPath(path), constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const buf = Buffer.alloc(SNIFF_BYTES);
    const n = readSync(fd, buf, 0, SNIFF_BYTES, 0);
    return buf.subarray(0, n).indexOf(0) < 0;
  } finally {
    closeSync(fd);
  }
}

export async function sha256File(path: string): Promise<string> {
  const h = new Bun.CryptoHasher("sha256");
  for await (const chunk of bunFile(path).stream()) h.update(chunk);
  return h.digest("hex");
}
