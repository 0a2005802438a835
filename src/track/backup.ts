// Backup copies of text files as last synced, for the diffs and `rrdsync restore`. Small ones (nearly every text file
// of an RRD tree: strings.properties, ds.properties) live in the state DB, deflated, committed with the state row
// they belong to; a file per copy would cost a 4 KiB block and two renames each. Larger ones are files mirroring
// the tree under backup_dir (the seed's layout, which is also read as the copy of files without a row).
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync } from "node:fs";
import { copyToNew } from "../safe-files.ts";
import { dirname, join } from "node:path";
import type { BackupRow } from "../store/state.ts";
import { fsPath } from "../names.ts";

/** Copies up to this size go into the state DB; larger ones are files under backup_dir. */
export const SMALL_BACKUP_MAX = 64 * 1024;

/** How a copy in the DB is stored. */
export const enum Codec {
  Raw = 0,
  Deflate = 1,
}

/** The copy of a file as last synced: in memory (from the DB) or a file. */
export interface PreviousCopy {
  size: number;
  /** the copy's file, or null when it is held in the DB */
  path: string | null;
  /** the content (read from the file, or decoded from the DB) */
  bytes(): Buffer;
}

export function backupPath(backupDir: string, relPath: string): string {
  if (relPath === "" || relPath.startsWith("/") || relPath.split("/").some((s) => s === ".." || s === ".")) {
    throw new Error(`refusing backup path outside the backup dir: ${JSON.stringify(relPath)}`);
  }
  return join(backupDir, relPath);
}

/** A small copy for the DB: deflated when that is smaller (a 100-byte strings.properties → ~75 bytes). */
export function encodeBackup(content: Uint8Array): { data: Uint8Array; codec: Codec } {
  // A copy of a few hundred bytes saves a few dozen by deflating, for more CPU than the rest of its first sync:
  // kept as it is (200,000 strings.properties: ~4 MB more, ~2 s less).
  if (content.length < 512) return { data: content, codec: Codec.Raw };
  // a small window for small files: zlib's default state (~256 KiB per call) costs more than the compression
  const small = content.length <= 4096;
  const z = Bun.deflateSync(content as Uint8Array<ArrayBuffer>, small ? ({ level: 6, memLevel: 1, windowBits: 9 } as unknown as Bun.ZlibCompressionOptions) : undefined);
  return z.length < content.length ? { data: z, codec: Codec.Deflate } : { data: content, codec: Codec.Raw };
}

export function decodeBackup(data: Uint8Array, codec: number): Buffer {
  if (codec === Codec.Deflate) return Buffer.from(Bun.inflateSync(data as Uint8Array<ArrayBuffer>));
  if (codec === Codec.Raw) return Buffer.from(data);
  throw new Error(`unknown backup codec ${codec}`);
}

/** The previous copy of `rel`: its newest DB row, else (no row: seed or older rrdsync) the file at backup_dir/<rel>. */
export function previousCopy(backupDir: string, rel: string, row: BackupRow | null): PreviousCopy | null {
  if (row !== null && row.data !== null) {
    const { data, codec } = row;
    return { size: row.size, path: null, bytes: () => decodeBackup(data, codec) };
  }
  const path = row?.stored != null ? join(backupDir, row.stored) : backupPath(backupDir, rel);
  const st = statSync(fsPath(path), { throwIfNoEntry: false });
  if (st === undefined || !st.isFile()) return null;
  return { size: st.size, path, bytes: () => readFileSync(fsPath(path)) };
}

/**
 * The previous copies of a tree, looked up per file: its DB row, or a file at backup_dir/<path> without one (the
 * seed's copies, or an older rrdsync's). Whether any such file exists is checked once, so a first sync into an
 * empty backup_dir costs no stat per file.
 */
export function copyReader(backupDir: string, rowOf: (rel: string) => BackupRow | null): (rel: string) => PreviousCopy | null {
  let legacy: boolean | null = null;
  return (rel) => {
    const row = rowOf(rel);
    if (row === null) {
      legacy ??= hasLegacyCopies(backupDir);
      if (!legacy) return null;
    }
    return previousCopy(backupDir, rel, row);
  };
}

/** Does backup_dir hold copies that may have no row (the seed's, or an older rrdsync's)? */
export function hasLegacyCopies(backupDir: string): boolean {
  try {
    return readdirSync(backupDir).some((name) => !name.startsWith(".rrdsync-"));
  } catch {
    return false;
  }
}

/** Renames `from` to `to`, creating `to`'s directory the first time `made` meets it (a batch publishes thousands). */
export function renameCreatingDir(from: string, to: string, made: Set<string>): void {
  const dir = dirname(to);
  if (!made.has(dir)) {
    mkdirSync(fsPath(dir), { recursive: true });
    made.add(dir);
  }
  renameSync(fsPath(from), fsPath(to));
}

/** A rename in the tree: the file's backup follows it (its old versions follow in the state DB). */
export function moveBackup(backupDir: string, from: string, to: string): void {
  const src = backupPath(backupDir, from);
  if (!existsSync(fsPath(src))) return;
  renameCreatingDir(src, backupPath(backupDir, to), new Set());
}

export function removeBackup(backupDir: string, relPath: string): void {
  try {
    unlinkSync(fsPath(backupPath(backupDir, relPath)));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
}

/**
 * Copies of large text files are staged (copied under the backup dir's staging area while the transfer runs) and
 * published by a rename once the destination confirmed the file: the copy costs nothing after the transfer, the
 * publish is atomic. Backups are not fsynced one by one: a crash leaves the old copy or the new one, never a torn one.
 */
export class BackupStager {
  readonly stagingDir: string;
  private seq = 0;
  private madeDirs = new Set<string>();

  constructor(private readonly backupDir: string) {
    this.stagingDir = join(backupDir, ".rrdsync-staging");
    // Leftovers of a killed run were never published: they are garbage. Best effort: an unwritable backup dir
    // shows up as an audit gap per file when staging fails, not as a failed run.
    try {
      rmSync(this.stagingDir, { recursive: true, force: true });
    } catch {
      // reported per file by stage()
    }
  }

  stage(srcPath: string): string {
    if (this.seq === 0) mkdirSync(this.stagingDir, { recursive: true, mode: 0o750 });
    const tmp = join(this.stagingDir, `${process.pid}-${++this.seq}`);
    copyToNew(fsPath(srcPath), tmp);
    return tmp;
  }

  publish(staged: string, relPath: string): void {
    renameCreatingDir(staged, backupPath(this.backupDir, relPath), this.madeDirs);
  }

  discard(staged: string): void {
    rmSync(staged, { force: true });
  }
}
