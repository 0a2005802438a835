// The one interface the engine talks to; rsync and sftp implement it and pass the same e2e suite.
import type { RootMarker } from "./marker.ts";

export interface BatchFile {
  /** path relative to the source dir, '/'-separated, no leading './' */
  path: string;
  size: number;
  /** the caller's stat found holes in it (undefined: not known, the transport looks) */
  sparse?: boolean;
  /**
   * Whole-tree runs: the file as the caller's walk saw it, during the run. With its inode change time, it spares
   * a second lstat of every file after the run (see wholeTreeOutcomes).
   */
  walked?: { size: number; mtimeNs: string; ino: string; ctimeNs: bigint };
}

export type FileOutcome =
  /** the destination confirmed it holds this file's content (bytes = bytes actually sent, if known) */
  | { ok: true; bytes: number; seen?: { size: number; mtimeNs: string; ino: string } }
  /**
   * not confirmed: stays pending; vanished = the source file disappeared (not a failure); newer = a whole-tree run
   * left it because the replica's copy is newer than ours (a conflict: engine/guard.ts)
   */
  | { ok: false; reason: string; vanished?: boolean; resend?: boolean; newer?: boolean };
// resend: a whole-tree run could not vouch for this file, but nothing is wrong with the destination:
// send it again at once in an ordinary batch, whose per-file outcomes are exact.

export interface BatchResult {
  /** one entry per file of the batch */
  outcomes: Map<string, FileOutcome>;
  /** set when the whole batch failed (connection lost, host key refused, ...): a message for people */
  error?: string;
  /** lines worth logging at INFO (itemize lines, stats) when the config asks for them */
  infoLines: string[];
  /** total bytes sent over the wire, if the transport knows */
  bytesSent: number;
  /**
   * whole-tree runs: how the run ended and the files its error lines name (relative paths), so a caller that gave
   * no file list can still tell which files failed; `unattributed`: error lines that name no file of the tree
   */
  tree?: { code: number; failed: string[]; vanished: string[]; unattributed: string[]; newer?: string[] };
}

/** A file whose inode last changed this long before a whole-tree run started was seen, as it is now, by the run's walk. */
export const CTIME_MARGIN_NS = 2_000_000_000n; // > any file system's timestamp granularity and the kernel's coarse clock lag

/**
 * A whole-tree run that exited 0 vouches for a file looked at during it whose inode last changed before the run
 * started (minus the margin): the run's walk saw that version, or a newer one (see rsync.ts wholeTreeOutcomes).
 */
export function runVouches(ctimeNs: bigint, startedNs: bigint): boolean {
  return ctimeNs < startedNs - CTIME_MARGIN_NS;
}

/** What a whole-tree batch covers, so a transport may walk the tree itself instead of listing every file. */
export interface TreeFilter {
  /** monitored extensions; [] = every regular file */
  extensions: string[];
  /** paths relative to the source dir that are never sent (rrdsync's own files inside the tree) */
  exclude: string[];
}

export interface SendOptions {
  /**
   * The batch is every monitored file of the tree (first sync, rebuilt state). rsync then walks the tree with
   * this filter, which pipelines far better than a 20,000-line --files-from; outcomes still cover exactly `files`.
   */
  wholeTree?: TreeFilter;
  /** progress: bytes of file data sent so far in this batch (for a progress line; only asked for on a terminal) */
  onBytes?: (bytes: number) => void;
}

export interface Transport {
  /** "rsync → user@host:/dest" for logs */
  readonly description: string;
  /**
   * Does a whole-tree send walk the tree itself, needing no file list (rsync)? Then a first sync is one run. (A
   * transport chosen at first use may need to ask the standby to know.)
   */
  walksTree?(): Promise<boolean>;
  /**
   * Sends the files; resolves with one outcome per file. With `wholeTree`, `files` may still be a promise (the
   * engine is walking the tree while the transfer runs); it resolves before the transport needs it for outcomes.
   */
  sendBatch(files: BatchFile[] | Promise<BatchFile[]>, signal?: AbortSignal, opts?: SendOptions): Promise<BatchResult>;
  /**
   * Removes these files (gone from the source) from the replica, and nothing else: not other files in their
   * directories, not a directory that still holds anything. On success every path is absent on the replica;
   * `deleted` names those that were there.
   */
  deleteFiles(paths: string[], signal?: AbortSignal): Promise<DeleteResult>;
  /**
   * Renames files on the replica (a rename in the source, detected by inode): no data is sent. `moved` names the
   * destinations that now hold the file; the others are left to the caller (send + delete).
   */
  moveFiles(moves: Array<{ from: string; to: string }>, signal?: AbortSignal): Promise<MoveResult>;
  /**
   * Opens what the transport keeps between batches (its SSH connection) before a batch needs it, so the first
   * batch pays no login: for a daemon whose initial pass had nothing to send. Never fails: a standby that cannot
   * be reached is the next batch's error to report.
   */
  warm?(signal?: AbortSignal): Promise<void>;
  /**
   * Compares the replica with the source by content (`rrdsync verify`), changing nothing on either side. Each file
   * checked gets one verdict through `onFile`, each extra file on the replica goes to `onExtra`; both stream, so
   * a million files never sit in one map.
   */
  verifyFiles?(req: VerifyRequest, signal?: AbortSignal): Promise<VerifyResult>;
  /**
   * What the replica holds now at each of these paths (lstat: a symlink is never followed, and a file behind a
   * parent that is not a real directory counts as absent), and the promotion marker at its root: one round trip
   * over the connection the batch uses anyway (rsync: one remote `stat` through the master; SFTP: pipelined
   * lstats; local: lstat). Writes nothing. The engine decides from it whether the batch may write (issue 23).
   */
  replicaState(paths: string[], signal?: AbortSignal, opts?: ReplicaStateOptions): Promise<ReplicaState>;
  /**
   * Keeps the replica's current copy of each file under `under` (a directory relative to the destination, which
   * every code path leaves alone: KEPT_DIR), at the same relative path, before rrdsync writes over it: a hard link
   * where the file system allows, else a copy. `unfence --overwrite`, `verify --repair --overwrite`.
   */
  keepReplicaCopies(paths: string[], under: string, signal?: AbortSignal): Promise<KeepResult>;
  /**
   * Writes one of rrdsync's markers at the replica's root (the fence marker, when the target is fenced):
   * atomically (a random temporary name created exclusively, then renamed), never through a symlink, and never
   * over anything at the name that is not a regular file. null: written; else why not, for people.
   */
  writeRootMarker(name: RootMarker, text: string, signal?: AbortSignal): Promise<string | null>;
  /** Removes that marker (a regular file, or a symlink planted at its name; absent is fine). null: gone; else why not. */
  removeRootMarker(name: RootMarker, signal?: AbortSignal): Promise<string | null>;
  /** The first `bytes` of each file on the replica (an RRD's header, for the log of a conflict); missing ones are left out. */
  readReplicaHeads?(paths: string[], bytes: number, signal?: AbortSignal): Promise<Map<string, Buffer>>;
  /**
   * Every regular file the replica holds (not rrdsync's own names at its root, nor a transfer's leftovers), with
   * its version, through `onFile` (`rrdsync failback`): rsync: one remote GNU find through the master; SFTP: a
   * readdir walk; local: lstat. Never follows a symlink. Null, or why the listing could not be made.
   */
  listReplica(onFile: (path: string, v: Version) => void, signal?: AbortSignal): Promise<string | null>;
  /**
   * Copies these replica files into `into`, a local directory of the caller's, at the same relative paths, each
   * keeping its mtime (rsync -t from the standby through the master; SFTP reads; local: a copy). Only regular
   * files, never through a symlink. `pulled`: the files now there; `error`: the standby could not be asked.
   */
  pullFiles(paths: string[], into: string, signal?: AbortSignal, onFile?: (done: number) => void): Promise<PullResult>;
  /**
   * Removes the promotion marker at the destination's root, only while its text is still `text` (the one that was
   * read: a newer promotion is never removed).
   */
  clearMarker(text: string, signal?: AbortSignal): Promise<{ outcome: "cleared" | "gone" | "changed"; error: string | null }>;
  close(): Promise<void>;
}

/**
 * A file's verdict: the replica's copy has the same bytes; other bytes; is missing; has a later mtime (whole
 * seconds) than the source's, so it was written there after ours (its content is not compared); or could not be
 * checked.
 */
export type FileVerdict = "same" | "differs" | "missing" | "newer" | { error: string };

export interface VerifyRequest {
  /** the source files to compare (paths relative to the source dir); a transport that walks `tree` never asks */
  files: () => BatchFile[];
  /** the files are every monitored file under this directory ("" = the whole tree): rsync may walk it itself */
  tree?: { root: string; filter: TreeFilter };
  /** where to look for extra files on the replica (files not in the source), with the same filter; `match` narrows */
  extras?: { under: string; filter: TreeFilter; match: (rel: string) => boolean };
  /**
   * Every file found the same must be named through onFile (a --combined report, a per-file progress line);
   * otherwise a transport may only count them (VerifyResult.sameUnnamed), which spares rsync a line per file.
   */
  nameSame?: boolean;
  onFile: (path: string, verdict: FileVerdict) => void;
  onExtra: (path: string) => void;
  /** files judged so far (for a progress line) */
  onChecked?: (n: number) => void;
}

export interface VerifyResult {
  /** the check could not be completed (connection, host key, the standby refused): a message for people */
  error?: string;
  /** file data read back from the standby to compare (SFTP), 0 when the standby hashed its own files (rsync) */
  bytesRead: number;
  /** files found the same that were not named through onFile (only when `nameSame` was not asked) */
  sameUnnamed?: number;
}

export interface MoveResult {
  moved: Set<string>;
  error: string | null;
}

export interface DeleteResult {
  deleted: Set<string>;
  /** the destination could not be reached or refused: nothing can be assumed deleted */
  error: string | null;
}

/** A version of a file as a quick check sees it: size and mtime (nanoseconds). */
export interface Version {
  size: number;
  mtimeNs: bigint;
}

/** What the replica holds at a file's name (`replicaState`). */
export type ReplicaFile =
  /** nothing there, or nothing of the tree's (a parent on the replica is a symlink or a file) */
  | { kind: "absent" }
  | ({ kind: "file" } & Version)
  /** a directory, a symlink or a device at the name: not a file anyone collects data in; the transports never write through it */
  | { kind: "other"; what: string };

/** The promotion marker (rrdsync promote) at the destination's root, as found: its text, or why it could not be read. */
export type MarkerFound = { text: string } | { unreadable: string };

export interface ReplicaState {
  /** one entry per path asked */
  files: Map<string, ReplicaFile>;
  /** the promotion marker at the destination's root; null: there is none */
  marker: MarkerFound | null;
  /** the fence marker there (FENCED_MARKER, read in the same round trip); null: there is none */
  fence: MarkerFound | null;
  /** the replica could not be asked (connection, refusal): nothing is known, nothing may be written */
  error?: string;
}

export interface ReplicaStateOptions {
  /**
   * false: the parent directories are not looked at (a file behind a symlinked parent then shows what is behind
   * it). The guard asks so first, and asks again with the parents only for a file that looks like a conflict: the
   * transports never write through a symlink, so only a conflict needs that proof. Default true.
   */
  parents?: boolean;
}

export interface PullResult {
  pulled: Set<string>;
  error: string | null;
}

export interface KeepResult {
  /** the files whose replica copy is now kept under the given directory */
  kept: Set<string>;
  error: string | null;
}

/** What a transport may tell the admin outside a batch's result (a key others can read, the transport chosen). */
export interface TransportLog {
  info(message: string): void;
  warn(message: string): void;
}
