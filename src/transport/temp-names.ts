// Pure: the temporary names the transports write under on the replica, and the file each one stands for.
import { createHash } from "node:crypto";
import { basename, dirname } from "node:path";

/** rsync's --partial-dir: resumable pieces, kept away from final names */
export const PARTIAL_DIR = ".rrdsync-partial";
/** The SFTP transport writes each file under ".<name>" + this suffix, then renames it into place. */
export const SFTP_TMP_SUFFIX = ".rrdsync-tmp";
const NAME_MAX = 255;

/**
 * The SFTP transport's temporary name for a file, in its own directory (so the rename is atomic): fixed per file,
 * so a run killed mid-write leaves at most one, which the next send of that file overwrites and renames away.
 */
export function tempNameFor(relPath: string): string {
  const base = basename(relPath);
  const dir = dirname(relPath);
  let tmp = `.${base}${SFTP_TMP_SUFFIX}`;
  if (Buffer.byteLength(tmp) > NAME_MAX) tmp = `.${createHash("sha256").update(base).digest("hex").slice(0, 32)}${SFTP_TMP_SUFFIX}`;
  return dir === "." ? tmp : `${dir}/${tmp}`;
}

/** Is this directory entry one of the SFTP transport's temporary files (exactly its pattern, nothing looser)? */
export function isSftpTempName(name: string): boolean {
  return name.length > 1 + SFTP_TMP_SUFFIX.length && name.startsWith(".") && name.endsWith(SFTP_TMP_SUFFIX) && !name.includes("/");
}

/**
 * The file a temporary name on the replica stands for, so an error about it can name that file: rsync's mkstemp
 * name ".a.txt.XXXXXX", the SFTP transport's ".a.txt.rrdsync-tmp", a piece in rsync's partial dir. null if `name`
 * is none of these. Paths keep whatever prefix they came with (absolute, or relative to the destination).
 */
export function tempNameOwner(name: string): string | null {
  const slash = name.lastIndexOf("/");
  const dir = name.slice(0, slash + 1);
  const base = name.slice(slash + 1);
  if (dir === `${PARTIAL_DIR}/` || dir.endsWith(`/${PARTIAL_DIR}/`)) return dir.slice(0, -PARTIAL_DIR.length - 1) + base;
  const m = /^\.(.+)\.(?:[A-Za-z0-9]{6}|rrdsync-tmp)$/s.exec(base);
  return m ? dir + (m[1] as string) : null;
}
