// rrdsync's markers at the replica's root (the fence marker; marker.ts names them), written and removed so that
// nothing is ever written through a symlink planted there: on a local destination with safe-files.ts, on a
// standby by one sh command over the kept ssh connection (the rsync transport; the SFTP one does the same with
// its own requests). The text is written under a random name created exclusively, then renamed over the marker's.
import { randomBytes } from "node:crypto";
import { lstatSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../safe-files.ts";
import type { RootMarker } from "./marker.ts";

const shQuote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

/** `.NAME.rrdsync-XXXXXXXXXXXX.tmp`: unguessable, so nothing can be planted there in advance. */
export function markerTempName(name: RootMarker): string {
  return `.${name}.rrdsync-${randomBytes(6).toString("hex")}.tmp`;
}

/** Why the thing at the marker's name may not be replaced (a symlink, a directory, a device), or null. */
function notAFile(what: { isFile(): boolean; isSymbolicLink(): boolean; isDirectory(): boolean }): string | null {
  if (what.isFile()) return null;
  return what.isSymbolicLink() ? "a symlink" : what.isDirectory() ? "a directory" : "not a regular file";
}

/** The local destination's marker, written atomically (null: done; else why not). */
export function writeMarkerLocally(destDir: string, name: RootMarker, text: string): string | null {
  const path = join(destDir, name);
  try {
    const st = lstatSync(path, { throwIfNoEntry: false });
    const bad = st === undefined ? null : notAFile(st);
    if (bad !== null) return `${path} is ${bad}: not written through (it keeps the target fenced; remove it by hand)`;
    writeFileAtomic(path, text, { sync: true });
    return null;
  } catch (e) {
    return `cannot write ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
  }
}

/** Removes the local destination's marker (a file, or a symlink planted at its name; absent is fine). */
export function removeMarkerLocally(destDir: string, name: RootMarker): string | null {
  const path = join(destDir, name);
  try {
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (st === undefined) return null;
    if (st.isDirectory()) return `${path} is a directory: not removed (remove it by hand)`;
    unlinkSync(path);
    return null;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    return `cannot remove ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
  }
}

/**
 * The remote command writing a marker from stdin: refused when something other than a regular file sits at its
 * name; GNU dd creates the temporary name with O_EXCL (never through a symlink), fsyncs it, and `mv -T` renames it
 * over the name (a directory there fails the rename; nothing is moved into it). Exit 0: written.
 */
export function writeMarkerCommand(destDir: string, name: RootMarker): string {
  const script = [
    'cd -- "$1" || exit 3',
    'n=$2; t=$3',
    'if [ -L "$n" ]; then echo "$1/$n is a symlink: not written through" >&2; exit 4; fi',
    'if [ -e "$n" ] && [ ! -f "$n" ]; then echo "$1/$n is not a regular file: not written" >&2; exit 4; fi',
    'if [ -e "$t" ] || [ -L "$t" ]; then echo "$1/$t exists" >&2; exit 5; fi',
    'dd of="$t" conv=excl,fsync status=none || { rm -f -- "$t"; exit 5; }',
    'mv -f -T -- "$t" "$n" || { rm -f -- "$t"; exit 5; }',
  ].join("\n");
  return `sh -c ${shQuote(script)} rrdsync-mark ${shQuote(destDir)} ${shQuote(name)} ${shQuote(markerTempName(name))}`;
}

/** The remote command removing a marker (a file or a planted symlink; a directory is refused). Exit 0: gone. */
export function removeMarkerCommand(destDir: string, name: RootMarker): string {
  const script = [
    '[ -d "$1" ] || exit 0',
    'cd -- "$1" || exit 3',
    'if [ -d "$2" ] && [ ! -L "$2" ]; then echo "$1/$2 is a directory: not removed" >&2; exit 4; fi',
    'rm -f -- "$2"',
  ].join("\n");
  return `sh -c ${shQuote(script)} rrdsync-unmark ${shQuote(destDir)} ${shQuote(name)}`;
}
