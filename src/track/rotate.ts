// Built-in rotation of the change log: change_log.txt → change_log.txt.1.gz → … → .N.gz (the oldest dropped).
// Compressed in 8 MiB gzip members (a multi-member .gz is one valid gzip stream to zcat/gunzip), so a 100 MiB
// log never needs 100 MiB of memory; written to a temp name and renamed, so a crash leaves whole files only.
import { closeSync, existsSync, readSync, renameSync, rmSync, writeSync } from "node:fs";
import { createNew, openRead, tempBeside } from "../safe-files.ts";
import { gzipSync } from "node:zlib";

const CHUNK = 8 * 1024 * 1024;

/** Shifts the rotated copies and moves `path` to `path.1.gz`; `path` no longer exists afterwards. */
export function rotateFile(path: string, keep: number): void {
  rmSync(`${path}.${keep}.gz`, { force: true });
  for (let i = keep - 1; i >= 1; i--) {
    if (existsSync(`${path}.${i}.gz`)) renameSync(`${path}.${i}.gz`, `${path}.${i + 1}.gz`);
  }
  // The plain copy first (one rename: new entries go to a new file at once), then its compression.
  const plain = `${path}.1`;
  if (existsSync(plain)) rmSync(plain); // a crash mid-compression last time: that copy was already dropped by keep
  renameSync(path, plain);
  gzipTo(plain, `${path}.1.gz`);
  rmSync(plain);
}

function gzipTo(src: string, dest: string): void {
  // Our own copy, never a symlink put in its place; the result under a random name made for us alone.
  const tmp = tempBeside(dest);
  const input = openRead(src);
  const out = createNew(tmp);
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    for (let n = readSync(input, buf, 0, CHUNK, null); n > 0; n = readSync(input, buf, 0, CHUNK, null)) {
      const z = gzipSync(buf.subarray(0, n), { level: 1 });
      let off = 0;
      while (off < z.length) off += writeSync(out, z, off);
    }
  } finally {
    closeSync(input);
    closeSync(out);
  }
  renameSync(tmp, dest);
}
