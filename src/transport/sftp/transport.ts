// The SFTP transport: the built-in ssh2 client, for standbys without rsync. Same interface, same per-file outcomes.
import { type BigIntStats, closeSync, constants, fstatSync, lstatSync, mkdirSync, openSync, readSync, statSync, utimesSync, writeSync } from "node:fs";
import { createNew } from "../../safe-files.ts";
import { homedir } from "node:os";
import { basename, dirname, join, posix } from "node:path";
import type { Stats as SftpStats, SFTPWrapper } from "ssh2";
import type { Target } from "../../config/types.ts";
import { forEachLimited, verifySftp } from "./verify.ts";
import { loadIdentity, SshAuthError, type SshIdentity } from "../ssh/auth.ts";
import { describeSftpError, isBareFailure, labelled, NO_SUCH_FILE, type SftpError, statvfs } from "./errors.ts";
import { clearJournal, readJournal, writeJournal } from "./journal.ts";
import { SshConnectError, SshSession } from "../ssh/session.ts";
import { isSftpTempName, tempNameFor } from "../temp-names.ts";
import { FENCED_MARKER, KEPT_DIR, MARKER_MAX_BYTES, PROMOTED_MARKER, type RootMarker } from "../marker.ts";
import { markerTempName } from "../root-markers.ts";
import { listedFile } from "../replica-list.ts";
import { withParents } from "../replica-check.ts";
import type {
  BatchFile, BatchResult, DeleteResult, FileOutcome, KeepResult, MarkerFound, MoveResult, PullResult, ReplicaFile, ReplicaState, ReplicaStateOptions, SendOptions, Transport, TransportLog, VerifyRequest, VerifyResult, Version,
} from "../types.ts";
import { fsPath, replicable, SFTP_CANNOT_CARRY, showName } from "../../names.ts";

/** writes in flight per file: 16 × 255 KiB keeps a fast link busy without holding much memory */
const WRITES_IN_FLIGHT = 16;
/** OpenSSH's sftp-server takes writes up to 255 KiB (limits@openssh.com); other servers announce less, or nothing */
const CHUNK_BYTES = 261_120;
/**
 * One read buffer for every file: reads are synchronous, and ssh2 copies a write's data into its packet before
 * write() returns, provided the write fits the server's limit (a larger one keeps the buffer for its remainder).
 * Fresh buffers per chunk cost an allocation and page faults per 255 KiB.
 */
const readBuffer = Buffer.allocUnsafe(CHUNK_BYTES);
/** A chunk of only zeros is not sent: the fresh temporary file reads as zeros there anyway, and keeps a hole. */
const ZEROS = Buffer.alloc(CHUNK_BYTES);
/**
 * Small requests (listings, lstat, mkdir, renames and deletes on the replica) in flight at once: over a WAN each is
 * a round trip, so a batch asks for all of its directories together instead of one slot at a time.
 */
const DIR_REQUESTS_IN_FLIGHT = 64;

/** A file opened here and, under its temporary name, on the standby. */
interface Prepared {
  f: BatchFile;
  fd: number;
  before: BigIntStats;
  tmp: string;
  handle: Buffer;
}

export class SftpTransport implements Transport {
  readonly description: string;
  private session: SshSession | null = null;
  private connecting: Promise<SshSession> | null = null;
  private identity: SshIdentity | null = null;
  /** remote directories proved real in this batch (relative paths; "" = the destination itself) */
  private dirs = new Map<string, Promise<void>>();
  /** temporary names being written on this connection: a leftover sweep never removes one of these */
  private writing = new Set<string>();
  /** leftover sweeps under way (a batch ends only after them: a closing session would drop their unlinks) */
  private sweeps = new Set<Promise<void>>();
  /** the batch could not note its directories (sftp-journal.ts): each one it writes is swept instead */
  private sweepEach = false;

  /** `journal`: where a batch notes the directories it writes temporary files into (beside the state DB) */
  constructor(private readonly opts: { target: Target; sourceDir: string; log?: TransportLog; env?: Record<string, string | undefined>; journal?: string }) {
    const t = opts.target;
    this.description = `sftp → ${t.user ? `${t.user}@` : ""}${t.host}:${t.destDir}`;
  }

  /** The connection, opened on first use and again after it dropped (the engine's backoff paces the attempts). */
  private connect(signal?: AbortSignal): Promise<SshSession> {
    if (this.session && this.session.ended === null) return Promise.resolve(this.session);
    // Callers that arrive while a login is under way share it.
    this.connecting ??= (async () => {
      // An SFTP channel can end while its connection lives on (sftp-server died): that connection goes too.
      this.session?.destroy();
      this.session = null;
      this.dirs.clear();
      if (this.identity === null) {
        this.identity = loadIdentity(this.opts.target, this.opts.env ?? process.env, homedir());
        for (const w of this.identity.warnings) this.opts.log?.warn(w);
      }
      this.session = await SshSession.open(this.opts.target, this.identity, signal);
      return this.session;
    })().finally(() => {
      this.connecting = null;
    });
    return this.connecting;
  }

  /** The connection, or why there is none (for people). */
  private connectOrError(signal?: AbortSignal): Promise<SshSession | string> {
    return this.connect(signal).catch((e: Error) => connectFailure(e));
  }

  private remote(rel: string): string {
    return rel === "" ? this.opts.target.destDir : posix.join(this.opts.target.destDir, rel);
  }

  async sendBatch(filesIn: BatchFile[] | Promise<BatchFile[]>, signal?: AbortSignal, opts: SendOptions = {}): Promise<BatchResult> {
    const connecting = this.connectOrError(signal);
    const all = await filesIn;
    // Refused one by one, each with the fix (they stay pending): no path of theirs is ever sent to the standby.
    const refused = all.filter((f) => !replicable(f.path));
    const files = refused.length === 0 ? all : all.filter((f) => replicable(f.path));
    const session = await connecting;
    if (typeof session === "string") return failAll(all, session);
    const onAbort = () => session.destroy();
    signal?.addEventListener("abort", onAbort, { once: true });
    this.dirs.clear();
    this.noteDirs(session, files);
    // Every directory the batch writes into, made (or checked) at once, not as each slot reaches its first file
    // there: a first sync into new directories would otherwise stall every slot two round trips per directory.
    // Alongside the quick check's listings: a directory that is missing holds nothing to skip, and one that
    // exists is only checked. One that fails here fails again, with its reason, for each file that needs it.
    const dirsReady = forEachLimited([...new Set(files.map((f) => parentOf(f.path)))], DIR_REQUESTS_IN_FLIGHT, (d) => this.ensureDir(session, d).catch(() => undefined));
    const outcomes = opts.wholeTree ? await this.quickCheck(session, files) : new Map<string, FileOutcome>();
    const toSend = outcomes.size === 0 ? files : files.filter((f) => !outcomes.has(f.path));
    let bytesSent = 0;
    let next = 0;
    const finishing: Array<Promise<void>> = [];
    const onBytes = (n: number) => opts.onBytes?.((bytesSent += n));
    const take = () => (next < toSend.length && session.ended === null ? this.prepare(session, toSend[next++] as BatchFile) : null);
    const worker = async () => {
      // A slot writes one file at a time, but a round trip costs more than a small file's data: the next file's
      // open goes out with this one's writes, and this one's confirmation and rename overlap the next file.
      // At most three files per slot (opening, writing, finishing), so data never piles up unconfirmed.
      let previous: Promise<void> = Promise.resolve();
      let upcoming = take();
      while (upcoming) {
        const current = await upcoming;
        upcoming = take();
        const { done } = "outcome" in current ? { done: Promise.resolve(current.outcome) } : await this.transmit(session, current, onBytes);
        const finished = done.then((o) => void outcomes.set(current.f.path, o));
        finishing.push(finished);
        await previous;
        previous = finished;
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.opts.target.sftpParallelFiles, toSend.length) }, worker));
    await Promise.all(finishing);
    await dirsReady;
    await Promise.all(this.sweeps);
    signal?.removeEventListener("abort", onAbort);
    // A dropped connection fails the rest of the batch as one error, as a failed rsync does; what was renamed
    // into place before it dropped is confirmed.
    const error = signal?.aborted ? "interrupted" : session.ended;
    // A batch that ended whole leaves no temporary file behind (each failed one was removed): the note goes.
    if (error === null && this.opts.journal && !this.sweepEach) clearJournal(this.opts.journal);
    for (const f of files) {
      const o = outcomes.get(f.path);
      if (error !== null && (o === undefined || !o.ok)) outcomes.set(f.path, { ok: false, reason: error });
    }
    for (const f of refused) outcomes.set(f.path, { ok: false, reason: SFTP_CANNOT_CARRY });
    return { outcomes, error: error ?? undefined, infoLines: [], bytesSent };
  }

  /**
   * rsync's quick check for a whole-tree run (first sync, rebuilt state): a file the replica already holds with
   * the same size and mtime (whole seconds, as SFTP carries them) is confirmed without sending it. An empty
   * replica costs one readdir; otherwise every directory of the batch (and its parents) is listed at once, not
   * waiting for its parent's listing, and a file counts only where each of its parents is a directory (not a
   * symlink) in its parent's listing.
   */
  private async quickCheck(s: SshSession, files: BatchFile[]): Promise<Map<string, FileOutcome>> {
    const { sftp } = s;
    const same = new Map<string, FileOutcome>();
    const listings = new Map<string, Map<string, SftpStats> | null>();
    const list = async (rel: string) => {
      const entries = await s.call<Array<{ filename: string; attrs: SftpStats }>>((cb) => sftp.readdir(this.remote(rel), cb)).catch(() => null);
      listings.set(rel, entries && new Map(entries.map((e) => [e.filename, e.attrs])));
    };
    // An empty (or missing) replica, as on a first sync: nothing to compare, one readdir spent.
    await list("");
    if ((listings.get("")?.size ?? 0) === 0) return same;
    const dirs = new Set<string>();
    for (const f of files) for (let d = parentOf(f.path); d !== "" && !dirs.has(d); d = parentOf(d)) dirs.add(d);
    await forEachLimited([...dirs], DIR_REQUESTS_IN_FLIGHT, list);
    const isDir = (rel: string): boolean => rel === "" || (isDir(parentOf(rel)) && listings.get(parentOf(rel))?.get(basename(rel))?.isDirectory() === true);
    for (const f of files) {
      const dir = parentOf(f.path);
      const remote = isDir(dir) ? listings.get(dir)?.get(basename(f.path)) : undefined;
      if (!remote?.isFile()) continue;
      let st: BigIntStats;
      try {
        st = lstatSync(join(this.opts.sourceDir, f.path), { bigint: true });
      } catch {
        continue; // the send reports it
      }
      if (BigInt(remote.size) === st.size && BigInt(remote.mtime) === st.mtimeNs / 1_000_000_000n) {
        same.set(f.path, { ok: true, bytes: 0, seen: { size: Number(st.size), mtimeNs: st.mtimeNs.toString(), ino: st.ino.toString() } });
      } else if (BigInt(remote.mtime) > st.mtimeNs / 1_000_000_000n) {
        // as rsync --update leaves it: newer on the standby than ours, never written over (a conflict: engine/guard.ts)
        same.set(f.path, { ok: false, newer: true, reason: "newer on the standby than ours: not sent (a conflict)" });
      }
    }
    return same;
  }

  /**
   * A file's first step: opened here (never through a symlink) and under its temporary name on the standby, in
   * its own directory so the final rename is atomic. A failure here is the file's outcome.
   */
  private async prepare(s: SshSession, f: BatchFile): Promise<Prepared | { f: BatchFile; outcome: FileOutcome }> {
    const { sftp } = s;
    // Local reads are synchronous: page-cached reads take microseconds, and the thread-pool round trip of the
    // promise API cost more than the read itself (measured: a third of the SFTP transport's time on small files).
    let fd: number;
    try {
      // O_NOFOLLOW: a file replaced by a symlink since the walk is not followed out of the tree.
      fd = openSync(join(this.opts.sourceDir, f.path), constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return { f, outcome: { ok: false, vanished: true, reason: "vanished from the source" } };
      if (code === "ELOOP") return { f, outcome: { ok: false, reason: "became a symlink: not sent" } };
      return { f, outcome: { ok: false, reason: `cannot read: ${code ?? (e as Error).message}` } };
    }
    const tmp = this.remote(tempNameFor(f.path));
    try {
      const before = fstatSync(fd, { bigint: true });
      if (!before.isFile()) {
        closeSync(fd);
        return { f, outcome: { ok: false, reason: "not a regular file: not sent" } };
      }
      await this.ensureDir(s, parentOf(f.path));
      // Private while it is written (its own mode comes with the mtime, before the rename). A temporary file a
      // killed run left behind that cannot be reopened for writing is removed and made anew.
      // Created exclusively ("wx"): whatever already sits at the name (a killed run's leftover, or a symlink
      // someone planted on the standby) is removed, never written through.
      this.writing.add(tmp);
      const openTmp = () => labelled("create", tmp, s.call<Buffer>((cb) => sftp.open(tmp, "wx", { mode: 0o600 }, cb)));
      const handle = await openTmp().catch(async () => {
        await s.call((cb) => sftp.unlink(tmp, cb)).catch(() => undefined);
        return openTmp();
      });
      return { f, fd, before, tmp, handle };
    } catch (e) {
      closeSync(fd);
      return { f, outcome: await this.failed(s, f, tmp, e) };
    }
  }

  /**
   * A file that failed on the standby: its temporary file goes, and the reason names the operation and the path.
   * A bare "Failure" is looked into first (statvfs of its directory, while the temporary file still takes its
   * space): a full disk or a read-only file system is named as such.
   */
  private async failed(s: SshSession, f: BatchFile, tmp: string, e: unknown): Promise<FileOutcome> {
    const { sftp } = s;
    const fs = isBareFailure(e) && s.ended === null ? await statvfs(sftp, posix.dirname(tmp)) : null;
    if (s.ended === null) sftp.unlink(tmp, () => undefined);
    this.writing.delete(tmp);
    return { ok: false, reason: describeSftpError(e, this.remote(f.path), fs, f.size) };
  }

  /**
   * The data, mode and mtime, then the rename over the final name. Resolves once the last write is queued, with
   * the outcome to come.
   */
  private async transmit(s: SshSession, p: Prepared, onBytes: (n: number) => void): Promise<{ done: Promise<FileOutcome> }> {
    const { sftp } = s;
    const { f, fd, before, tmp, handle } = p;
    const size = Number(before.size);
    const mode = Number(before.mode & 0o7777n);
    const mtime = Number(before.mtimeNs / 1_000_000_000n);
    let writes: { done: Promise<number>; length: number; dataEnd: number };
    try {
      writes = await writeAll(s, handle, tmp, fd, size, onBytes);
    } catch (e) {
      sftp.close(handle, () => undefined);
      closeSync(fd);
      return { done: this.failed(s, f, tmp, e) };
    }
    // Mode and mtime before the rename: the final name never shows the file with other attributes. Queued right
    // behind the last writes: the server handles requests in order. The size too when the file ends in zeros
    // that were not sent (ftruncate leaves a hole, as rsync --sparse does).
    const attrs = { mode, mtime, atime: mtime, ...(writes.dataEnd < writes.length ? { size: writes.length } : {}) };
    const settled = Promise.allSettled([
      writes.done,
      labelled("set mode and mtime of", tmp, s.call((cb) => sftp.fsetstat(handle, attrs, cb))),
      labelled("close", tmp, s.call((cb) => sftp.close(handle, cb))),
    ]);
    const done = (async (): Promise<FileOutcome> => {
      let seen: { size: number; mtimeNs: string; ino: string };
      let sent: number;
      try {
        const results = await settled;
        const rejected = results.find((r) => r.status === "rejected");
        if (rejected) return await this.failed(s, f, tmp, rejected.reason);
        sent = (results[0] as PromiseFulfilledResult<number>).value;
        // Read while it changed: what arrived may be a mix, so it is not recorded as the version planned (the
        // engine sees a different identity and sends it again).
        const after = fstatSync(fd, { bigint: true });
        const moved = after.size !== before.size || after.mtimeNs !== before.mtimeNs || after.ctimeNs !== before.ctimeNs || sent !== size;
        const st = moved ? after : before;
        seen = { size: Number(st.size), mtimeNs: st.mtimeNs.toString(), ino: st.ino.toString() };
      } finally {
        closeSync(fd);
      }
      try {
        await labelled(`rename ${tmp} to`, this.remote(f.path), this.renameOver(s, tmp, this.remote(f.path)));
      } catch (e) {
        return this.failed(s, f, tmp, e);
      }
      this.writing.delete(tmp);
      return { ok: true, bytes: sent, seen };
    })();
    return { done };
  }

  /** posix-rename@openssh.com replaces atomically; plain SFTP rename refuses an existing target. */
  private async renameOver(s: SshSession, from: string, to: string): Promise<void> {
    const { sftp } = s;
    if (hasExtension(sftp, "posix-rename@openssh.com")) {
      await s.call((cb) => sftp.ext_openssh_rename(from, to, cb));
      return;
    }
    // Not atomic: a reader may find the name missing for a moment (never half a file).
    await s.call((cb) => sftp.unlink(to, cb)).catch(() => undefined);
    await s.call((cb) => sftp.rename(from, to, cb));
  }

  /**
   * mkdir -p below the destination, each directory asked once per batch (concurrent workers share the attempt;
   * the next batch asks again: a symlink can be planted while a kept-open connection idles). Each level by lstat:
   * a symlink where a directory belongs would lead the writes out of the destination, so it is refused (the
   * destination itself may be a symlink).
   */
  private ensureDir(s: SshSession, rel: string): Promise<void> {
    const { sftp } = s;
    let p = this.dirs.get(rel);
    if (!p) {
      p = (async () => {
        const abs = this.remote(rel);
        // The parent is asked at the same time (one round trip for the whole chain, not one per level); a
        // missing directory needs it, and one that exists is only safe when its parents are real directories too.
        const parent = rel === "" ? null : this.ensureDir(s, parentOf(rel));
        parent?.catch(() => undefined); // awaited below; its failure is this directory's
        const st = await this.lstatOrNull(s, rel);
        if (st && !st.isDirectory()) throw notADirectory(abs, st);
        if (parent !== null) await parent;
        else if (!st && this.opts.target.destDir !== "/") await this.ensureAbsDir(s, dirname(this.opts.target.destDir));
        if (st) {
          if (this.sweepEach) void this.sweepLeftovers(s, rel);
          return;
        }
        await labelled("mkdir", abs, s.call((cb) => sftp.mkdir(abs, { mode: 0o755 }, cb))).catch(async (e: SftpError) => {
          // made meanwhile by someone else: fine (a symlink planted meanwhile is not)
          const again = await this.lstatOrNull(s, rel).catch(() => null);
          if (!again?.isDirectory()) throw e;
        });
      })();
      this.dirs.set(rel, p);
      p.catch(() => this.dirs.delete(rel));
    }
    return p;
  }

  /** lstat below the destination (stat for the destination itself, which may be a symlink); null if absent. */
  private lstatOrNull(s: SshSession, rel: string): Promise<SftpStats | null> {
    const { sftp } = s;
    const abs = this.remote(rel);
    return labelled("stat", abs, s.call<SftpStats>((cb) => (rel === "" ? sftp.stat(abs, cb) : sftp.lstat(abs, cb)))).catch((e: SftpError) => {
      if (e.code === NO_SUCH_FILE) return null;
      throw e;
    });
  }

  /**
   * Is every directory on the way to `rel` (below the destination) a real directory, not a symlink? Asked without
   * creating anything, memoised in `memo` for one call of deleteFiles or moveFiles.
   */
  private realDir(s: SshSession, rel: string, memo: Map<string, Promise<boolean>>): Promise<boolean> {
    if (rel === "" || this.dirs.has(rel)) return rel === "" ? Promise.resolve(true) : (this.dirs.get(rel) as Promise<void>).then(() => true, () => false);
    let p = memo.get(rel);
    if (!p) {
      p = this.realDir(s, parentOf(rel), memo).then(async (parentOk) => parentOk && ((await this.lstatOrNull(s, rel).catch(() => null))?.isDirectory() ?? false));
      memo.set(rel, p);
    }
    return p;
  }

  /**
   * Before a batch writes: sweeps the directories an unfinished earlier batch noted (a kill -9, a dropped
   * connection: its temporary files may be there, and their files may be gone from the source since), then notes
   * this batch's directories with them until it ends whole. Costs a small local write per batch instead of a
   * listing of every directory written. Where the note cannot be written, each directory written is swept.
   */
  private noteDirs(s: SshSession, files: BatchFile[]): void {
    const journal = this.opts.journal;
    const earlier = journal ? readJournal(journal) : [];
    const dirs = new Set(earlier);
    for (const f of files) dirs.add(parentOf(f.path));
    this.sweepEach = !journal || !writeJournal(journal, dirs);
    const memo = new Map<string, Promise<boolean>>();
    for (const d of earlier) {
      // Never through a symlink planted since: only a real directory below the destination is swept.
      const sweep: Promise<void> = this.realDir(s, d, memo).then((real) => (real ? this.sweepLeftovers(s, d) : undefined), () => undefined)
        .finally(() => this.sweeps.delete(sweep));
      this.sweeps.add(sweep);
    }
  }

  /**
   * Removes the temporary files (exactly our pattern) a killed run left in a directory: their files may be gone
   * from the source since, and would stay on the replica for good. In the background: a name being written on this
   * connection is never removed (the listing and the check-then-unlink of each name happen in one turn, and the
   * server handles requests in order, so an unlink never overtakes our own open).
   */
  private sweepLeftovers(s: SshSession, rel: string): Promise<void> {
    const { sftp } = s;
    const abs = this.remote(rel);
    const sweep: Promise<void> = s.call<Array<{ filename: string; attrs: SftpStats }>>((cb) => sftp.readdir(abs, cb)).then(async (list) => {
      const unlinks: Array<Promise<void>> = [];
      for (const e of list) {
        if (!isSftpTempName(e.filename) || e.attrs.isDirectory()) continue;
        const tmp = posix.join(abs, e.filename);
        if (!this.writing.has(tmp)) unlinks.push(s.call((cb) => sftp.unlink(tmp, cb)));
      }
      await Promise.allSettled(unlinks);
    }).catch(() => undefined).finally(() => this.sweeps.delete(sweep));
    this.sweeps.add(sweep);
    return sweep;
  }

  /** The destination's own parents (remote_dest_dir may not exist yet), as `mkdir -p` would. */
  private async ensureAbsDir(s: SshSession, abs: string): Promise<void> {
    const { sftp } = s;
    const st = await s.call<SftpStats>((cb) => sftp.stat(abs, cb)).catch(() => null);
    if (st?.isDirectory()) return;
    if (dirname(abs) !== abs) await this.ensureAbsDir(s, dirname(abs));
    await s.call((cb) => sftp.mkdir(abs, { mode: 0o755 }, cb)).catch(() => undefined);
  }

  async deleteFiles(paths: string[], signal?: AbortSignal): Promise<DeleteResult> {
    const deleted = new Set<string>();
    if (paths.length === 0) return { deleted, error: null };
    const s = await this.connectOrError(signal);
    if (typeof s === "string") return { deleted, error: s };
    const { sftp } = s;
    const failures: string[] = [];
    this.dirs.clear();
    const memo = new Map<string, Promise<boolean>>();
    // Small requests with no data: many at once, so a WAN's round trip is paid a few times, not per file.
    await forEachLimited(paths, DIR_REQUESTS_IN_FLIGHT, async (p) => {
      if (!replicable(p)) return void failures.push(`${showName(p)}: ${SFTP_CANNOT_CARRY}`);
      const abs = this.remote(p);
      // Through a symlink where a directory belongs, the name is not in the replica's tree: nothing to delete
      // there, and nothing is deleted where it points (as rsync --delete does).
      const parentOk = await this.realDir(s, parentOf(p), memo).catch(() => false);
      if (!parentOk) return;
      const st = await this.lstatOrNull(s, p).catch((e: SftpError) => e);
      if (st === null) return; // already absent
      if (st instanceof Error) return void failures.push(describeSftpError(st, abs));
      if (st.isDirectory()) return; // only files are deleted; a directory is left to the rmdir below
      await labelled("remove", abs, s.call((cb) => sftp.unlink(abs, cb))).then(
        () => void deleted.add(p),
        (e: SftpError) => void (e.code === NO_SUCH_FILE || failures.push(describeSftpError(e, abs))),
      );
    });
    // Directories the deleted files leave empty go too, deepest first, as rsync --delete removes them; one that
    // still holds anything stays (rmdir refuses).
    const parents = new Set<string>();
    for (const p of deleted) for (let d = dirname(p); d !== "."; d = dirname(d)) parents.add(d);
    for (const d of [...parents].sort((a, b) => b.split("/").length - a.split("/").length)) {
      if (this.sourceHasDir(d)) continue;
      await s.call((cb) => sftp.rmdir(this.remote(d), cb)).catch(() => undefined);
      this.dirs.delete(d);
    }
    if (s.ended !== null) return { deleted: new Set(), error: s.ended };
    return { deleted, error: failures.length > 0 ? failures.slice(0, 3).join("; ") : null };
  }

  private sourceHasDir(rel: string): boolean {
    try {
      return statSync(fsPath(join(this.opts.sourceDir, rel))).isDirectory();
    } catch {
      return false;
    }
  }

  async moveFiles(moves: Array<{ from: string; to: string }>, signal?: AbortSignal): Promise<MoveResult> {
    const moved = new Set<string>();
    if (moves.length === 0) return { moved, error: null };
    const s = await this.connectOrError(signal);
    if (typeof s === "string") return { moved, error: s };
    const { sftp } = s;
    this.dirs.clear();
    const memo = new Map<string, Promise<boolean>>();
    const move = async (m: { from: string; to: string }) => {
      // not moved: the engine sends it under the new name (refused there too if that is not UTF-8)
      if (s.ended !== null || !replicable(m.from) || !replicable(m.to)) return;
      try {
        // Never from behind a symlink (a file outside the destination), never into a directory; ensureDir refuses
        // a symlink on the way to the new name.
        if (!(await this.realDir(s, parentOf(m.from), memo))) return;
        const [from, to] = await Promise.all([
          s.call<SftpStats>((cb) => sftp.lstat(this.remote(m.from), cb)),
          s.call<SftpStats>((cb) => sftp.lstat(this.remote(m.to), cb)).catch(() => null),
        ]);
        if (!from.isFile() || to?.isDirectory()) return;
        await this.ensureDir(s, parentOf(m.to));
        await this.renameOver(s, this.remote(m.from), this.remote(m.to));
        moved.add(m.to);
      } catch {
        // not there or not movable: the caller sends it instead
      }
    };
    // Two moves that share a name (a → b, b → c) go one at a time, in order; a move whose names no other move
    // touches commutes with all of them, so those go at once (a renamed directory of 1,000 RRDs over a WAN: a
    // few round trips, not four per file).
    const uses = new Map<string, number>();
    for (const m of moves) for (const n of [m.from, m.to]) uses.set(n, (uses.get(n) ?? 0) + 1);
    const alone = (m: { from: string; to: string }) => uses.get(m.from) === 1 && uses.get(m.to) === 1;
    await Promise.all([
      forEachLimited(moves.filter(alone), DIR_REQUESTS_IN_FLIGHT, move),
      (async () => {
        for (const m of moves.filter((m) => !alone(m))) await move(m);
      })(),
    ]);
    return { moved, error: s.ended };
  }

  /**
   * The replica's state of these files: every lstat (and each parent directory's, and the marker's) sent at once
   * over the open session, so a batch pays about one round trip. SFTP carries mtimes in whole seconds.
   */
  async replicaState(paths: string[], signal?: AbortSignal, opts: ReplicaStateOptions = {}): Promise<ReplicaState> {
    const parents = opts.parents !== false;
    const s = await this.connectOrError(signal);
    if (typeof s === "string") return { files: new Map(), marker: null, fence: null, error: s };
    const { sftp } = s;
    const seen = new Map<string, ReplicaFile>();
    const failures: string[] = [];
    // Every lstat sent at once with a plain callback (a promise per file cost as much as the request): sftp-server
    // answers them in order, so the batch pays about one round trip.
    const asked = (parents ? withParents(paths) : paths).filter((rel) => {
      if (replicable(rel)) return true;
      seen.set(rel, { kind: "absent" }); // never sent either: nothing of ours there
      return false;
    });
    const lstats = new Promise<void>((resolve) => {
      let left = asked.length;
      if (left === 0) return resolve();
      for (const rel of asked) {
        const abs = this.remote(rel);
        const done = (err: SftpError | undefined, st?: SftpStats) => {
          if (err) {
            if (err.code === NO_SUCH_FILE) seen.set(rel, { kind: "absent" });
            else failures.push(describeSftpError(err, abs));
          } else if (st) {
            seen.set(rel, st.isFile() ? { kind: "file", size: st.size, mtimeNs: BigInt(st.mtime) * 1_000_000_000n }
              : { kind: "other", what: st.isDirectory() ? "directory" : st.isSymbolicLink() ? "symlink" : "special file" });
          }
          if (--left === 0) resolve();
        };
        if (s.ended !== null) done(Object.assign(new Error(s.ended), { code: -1 }) as SftpError);
        else sftp.lstat(abs, done as (err: Error | undefined, st: SftpStats) => void);
      }
    });
    const [marker, fence] = await Promise.all([this.readMarker(s, PROMOTED_MARKER), this.readMarker(s, FENCED_MARKER), lstats]);
    if (s.ended !== null) return { files: new Map(), marker: null, fence: null, error: s.ended };
    if (failures.length > 0) return { files: new Map(), marker: null, fence: null, error: `the replica check on the standby failed: ${failures[0]}` };
    const files = new Map<string, ReplicaFile>();
    for (const p of paths) {
      let behind = false;
      for (let i = parents ? p.indexOf("/") : -1; i > 0 && !behind; i = p.indexOf("/", i + 1)) {
        const d = seen.get(p.slice(0, i));
        behind = d?.kind !== "other" || d.what !== "directory";
      }
      files.set(p, behind ? { kind: "absent" } : (seen.get(p) ?? { kind: "absent" }));
    }
    return { files, marker, fence };
  }

  /** A marker at the destination's root: its text, why it cannot be read, or null when there is none. */
  private async readMarker(s: SshSession, name: RootMarker): Promise<MarkerFound | null> {
    const { sftp } = s;
    const abs = posix.join(this.opts.target.destDir, name);
    const st = await s.call<SftpStats>((cb) => sftp.lstat(abs, cb)).catch((e: SftpError) => (e.code === NO_SUCH_FILE ? null : e));
    if (st === null) return null;
    if (st instanceof Error) return { unreadable: st.message };
    if (!st.isFile()) return { unreadable: "not a regular file" };
    try {
      return { text: (await this.readHead(s, abs, MARKER_MAX_BYTES)).toString("utf8") };
    } catch (e) {
      return { unreadable: (e as Error).message };
    }
  }

  /** Up to `bytes` from the start of a remote file. */
  private async readHead(s: SshSession, abs: string, bytes: number): Promise<Buffer> {
    const { sftp } = s;
    const h = await s.call<Buffer>((cb) => sftp.open(abs, "r", cb));
    try {
      const buf = Buffer.alloc(bytes);
      const n = await s.call<number>((cb) => sftp.read(h, buf, 0, bytes, 0, (err, read) => cb(err, read)));
      return buf.subarray(0, n);
    } finally {
      sftp.close(h, () => undefined);
    }
  }

  async readReplicaHeads(paths: string[], bytes: number, signal?: AbortSignal): Promise<Map<string, Buffer>> {
    const heads = new Map<string, Buffer>();
    const s = await this.connectOrError(signal);
    if (typeof s === "string") return heads;
    await forEachLimited(paths.filter(replicable), DIR_REQUESTS_IN_FLIGHT, async (p) => {
      const st = await this.lstatOrNull(s, p).catch(() => null);
      if (!st?.isFile()) return;
      const head = await this.readHead(s, this.remote(p), bytes).catch(() => null);
      if (head) heads.set(p, head);
    });
    return heads;
  }

  /**
   * Each replica copy kept under `under` before rrdsync replaces it: a hard link (hardlink@openssh.com) where the
   * server has it, else the copy is renamed there (the send then makes the file anew). Never through a symlink.
   */
  async keepReplicaCopies(paths: string[], under: string, signal?: AbortSignal): Promise<KeepResult> {
    const kept = new Set<string>();
    if (paths.length === 0) return { kept, error: null };
    const s = await this.connectOrError(signal);
    if (typeof s === "string") return { kept, error: s };
    const { sftp } = s;
    this.dirs.clear();
    const memo = new Map<string, Promise<boolean>>();
    const link = hasExtension(sftp, "hardlink@openssh.com");
    await forEachLimited(paths.filter(replicable), DIR_REQUESTS_IN_FLIGHT, async (p) => {
      try {
        if (!(await this.realDir(s, parentOf(p), memo))) return;
        const st = await this.lstatOrNull(s, p);
        if (!st?.isFile()) return;
        const to = `${under}/${p}`;
        await this.ensureDir(s, parentOf(to));
        if (await this.lstatOrNull(s, to)) return; // never over something already kept
        if (link) await s.call((cb) => sftp.ext_openssh_hardlink(this.remote(p), this.remote(to), cb));
        else await this.renameOver(s, this.remote(p), this.remote(to));
        kept.add(p);
      } catch {
        // not kept: the caller does not write over it
      }
    });
    return { kept, error: s.ended };
  }

  /**
   * A marker at the destination's root: written under a random name opened exclusively ("wx": never through a
   * symlink), then renamed over the marker's name; refused when something other than a regular file sits there.
   */
  async writeRootMarker(name: RootMarker, text: string, signal?: AbortSignal): Promise<string | null> {
    const s = await this.connectOrError(signal);
    if (typeof s === "string") return s;
    const { sftp } = s;
    const abs = this.remote(name);
    const tmp = this.remote(markerTempName(name));
    try {
      const st = await this.lstatOrNull(s, name);
      if (st !== null && !st.isFile()) return `${abs} on the standby is ${st.isSymbolicLink() ? "a symlink" : "not a regular file"}: not written through (it keeps the target fenced; remove it by hand)`;
      const h = await labelled("create", tmp, s.call<Buffer>((cb) => sftp.open(tmp, "wx", { mode: 0o644 }, cb)));
      const data = Buffer.from(text);
      try {
        await labelled("write", tmp, s.call((cb) => sftp.write(h, data, 0, data.length, 0, cb)));
      } finally {
        await s.call((cb) => sftp.close(h, cb)).catch(() => undefined);
      }
      await labelled(`rename ${tmp} to`, abs, this.renameOver(s, tmp, abs));
      return null;
    } catch (e) {
      if (s.ended === null) sftp.unlink(tmp, () => undefined);
      return `${name} not written on the standby: ${describeSftpError(e, abs)}`;
    }
  }

  /** Removes a marker at the destination's root (a file, or a symlink planted at its name; absent is fine). */
  async removeRootMarker(name: RootMarker, signal?: AbortSignal): Promise<string | null> {
    const s = await this.connectOrError(signal);
    if (typeof s === "string") return s;
    const { sftp } = s;
    const abs = this.remote(name);
    try {
      const st = await this.lstatOrNull(s, name);
      if (st === null) return null;
      if (st.isDirectory()) return `${abs} on the standby is a directory: not removed (remove it by hand)`;
      await labelled("remove", abs, s.call((cb) => sftp.unlink(abs, cb)));
      return null;
    } catch (e) {
      return `${name} not removed on the standby: ${describeSftpError(e, abs)}`;
    }
  }

  /**
   * The replica's files: a readdir walk (each listing's attributes are the server's lstat: a symlinked directory is
   * never entered), directories listed DIR_REQUESTS_IN_FLIGHT at a time. SFTP carries mtimes in whole seconds.
   */
  async listReplica(onFile: (path: string, v: Version) => void, signal?: AbortSignal): Promise<string | null> {
    const s = await this.connectOrError(signal);
    if (typeof s === "string") return s;
    const { sftp } = s;
    let failure: string | null = null;
    let level = [""];
    while (level.length > 0 && failure === null) {
      const next: string[] = [];
      await forEachLimited(level, DIR_REQUESTS_IN_FLIGHT, async (rel) => {
        if (failure !== null || signal?.aborted) return;
        const abs = this.remote(rel);
        const list = await s.call<Array<{ filename: string; attrs: SftpStats }>>((cb) => sftp.readdir(abs, cb)).catch((e: SftpError) => e);
        if (list instanceof Error) {
          if (rel === "" && list.code === NO_SUCH_FILE) return; // no destination yet: nothing there
          failure = `cannot list ${abs} on the standby: ${describeSftpError(list, abs)}`;
          return;
        }
        for (const e of list) {
          if (e.filename === "." || e.filename === "..") continue;
          const r = rel === "" ? e.filename : `${rel}/${e.filename}`;
          if (e.attrs.isDirectory()) {
            if (!(rel === "" && e.filename === KEPT_DIR)) next.push(r);
          } else if (e.attrs.isFile() && listedFile(r)) {
            onFile(r, { size: e.attrs.size, mtimeNs: BigInt(e.attrs.mtime) * 1_000_000_000n });
          }
        }
      });
      level = next;
    }
    if (signal?.aborted) return "interrupted";
    return failure ?? s.ended;
  }

  /** SFTP reads, several files at once; each copy written here under `into` (created new) with the standby's mtime. */
  async pullFiles(paths: string[], into: string, signal?: AbortSignal, onFile?: (done: number) => void): Promise<PullResult> {
    const pulled = new Set<string>();
    if (paths.length === 0) return { pulled, error: null };
    const s = await this.connectOrError(signal);
    if (typeof s === "string") return { pulled, error: s };
    const memo = new Map<string, Promise<boolean>>();
    await forEachLimited(paths.filter(replicable), Math.max(4, this.opts.target.sftpParallelFiles), async (p) => {
      if (signal?.aborted || s.ended !== null) return;
      try {
        if (!(await this.realDir(s, parentOf(p), memo))) return;
        if (await this.pullOne(s, p, join(into, p))) {
          pulled.add(p);
          onFile?.(pulled.size);
        }
      } catch {
        // gone meanwhile, or unreadable: not pulled (the caller names it)
      }
    });
    if (signal?.aborted) return { pulled, error: "interrupted" };
    return { pulled, error: s.ended };
  }

  private async pullOne(s: SshSession, rel: string, to: string): Promise<boolean> {
    const { sftp } = s;
    const abs = this.remote(rel);
    const st = await this.lstatOrNull(s, rel);
    if (!st?.isFile()) return false;
    const h = await s.call<Buffer>((cb) => sftp.open(abs, "r", cb));
    let fd: number | null = null;
    try {
      const fst = await s.call<SftpStats>((cb) => sftp.fstat(h, cb));
      if (!fst.isFile()) return false;
      mkdirSync(dirname(to), { recursive: true, mode: 0o700 });
      fd = createNew(to, 0o600);
      const buf = Buffer.allocUnsafe(CHUNK_BYTES);
      for (let pos = 0; ; ) {
        const n = await s.call<number>((cb) => sftp.read(h, buf, 0, CHUNK_BYTES, pos, (err, read) => cb(err, read)));
        if (n <= 0) break;
        for (let off = 0; off < n; ) off += writeSync(fd, buf, off, n - off, pos + off);
        pos += n;
      }
      closeSync(fd);
      fd = null;
      utimesSync(to, fst.atime, fst.mtime);
      return true;
    } catch (e) {
      // the end of the file reads as an EOF status in ssh2
      if ((e as SftpError).code === 1 && fd !== null) {
        closeSync(fd);
        fd = null;
        return true;
      }
      throw e;
    } finally {
      if (fd !== null) closeSync(fd);
      sftp.close(h, () => undefined);
    }
  }

  async clearMarker(text: string, signal?: AbortSignal): Promise<{ outcome: "cleared" | "gone" | "changed"; error: string | null }> {
    const s = await this.connectOrError(signal);
    if (typeof s === "string") return { outcome: "changed", error: s };
    const found = await this.readMarker(s, PROMOTED_MARKER);
    if (found === null) return { outcome: "gone", error: null };
    if (!("text" in found) || found.text.replace(/\n+$/, "") !== text.replace(/\n+$/, "")) return { outcome: "changed", error: null };
    const abs = posix.join(this.opts.target.destDir, PROMOTED_MARKER);
    try {
      await s.call((cb) => s.sftp.unlink(abs, cb));
      return { outcome: "cleared", error: null };
    } catch (e) {
      if ((e as SftpError).code === NO_SUCH_FILE) return { outcome: "gone", error: null };
      return { outcome: "changed", error: `cannot remove the promotion marker on the standby: ${describeSftpError(e, abs)}` };
    }
  }

  /** Compares the replica with the source: listings, and each file of the same size read back (sftp-verify.ts). */
  async verifyFiles(req: VerifyRequest, signal?: AbortSignal): Promise<VerifyResult> {
    const s = await this.connectOrError(signal);
    if (typeof s === "string") return { error: s, bytesRead: 0 };
    const onAbort = () => s.destroy();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const r = await verifySftp(s, { sourceDir: this.opts.sourceDir, remote: (rel) => this.remote(rel), parallel: this.opts.target.sftpParallelFiles }, req);
      return signal?.aborted ? { error: "interrupted", bytesRead: r.bytesRead } : r;
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /** For `check`: log in, then create the destination and write and remove a file there, as a transfer would. */
  async probeDestination(): Promise<{ login: string | null; dest: string | null; detail: string }> {
    const s = await this.connectOrError();
    if (typeof s === "string") return { login: s, dest: null, detail: "" };
    const { sftp } = s;
    const detail = hasExtension(sftp, "posix-rename@openssh.com") ? "files replaced atomically (posix-rename@openssh.com)" : "the standby's SFTP server lacks posix-rename@openssh.com: a replaced file is missing for a moment";
    const probe = this.remote(`.rrdsync-check-${process.pid}`);
    try {
      await this.ensureDir(s, "");
      const h = await labelled("create", probe, s.call<Buffer>((cb) => sftp.open(probe, "w", cb)));
      await labelled("close", probe, s.call((cb) => sftp.close(h, cb)));
      await labelled("remove", probe, s.call((cb) => sftp.unlink(probe, cb)));
      return { login: null, dest: null, detail };
    } catch (e) {
      return { login: null, dest: `${this.opts.target.destDir} on the standby is not writable: ${describeSftpError(e, probe, isBareFailure(e) ? await statvfs(sftp, this.opts.target.destDir) : null)}`, detail };
    } finally {
      await this.close();
    }
  }

  async warm(signal?: AbortSignal): Promise<void> {
    await this.connectOrError(signal);
  }

  async close(): Promise<void> {
    this.session?.close();
    this.session = null;
  }
}

/**
 * Streams the file into the open remote handle with several writes in flight. Resolves once the last write is
 * sent, with a promise of the bytes covered (so the caller can queue its next requests behind the writes), how
 * many bytes were read, and where the last data sent ends. A chunk of only zeros is skipped: the temporary file is new, so it reads as
 * zeros there anyway, stays a hole (a sparse RRD stays sparse), and costs no bandwidth.
 */
async function writeAll(s: SshSession, handle: Buffer, tmp: string, fd: number, size: number, onBytes: (n: number) => void): Promise<{ done: Promise<number>; length: number; dataEnd: number }> {
  const { sftp } = s;
  let pos = 0;
  let covered = 0;
  let end = 0;
  const inFlight = new Set<Promise<void>>();
  let failed: Error | null = null;
  const limit = Math.min(CHUNK_BYTES, maxWriteLength(sftp));
  while (pos < size && failed === null) {
    const len = Math.min(limit, size - pos);
    const buf = readBuffer;
    const bytesRead = readSync(fd, buf, 0, len, pos);
    if (bytesRead === 0) break; // shrank while read: the after-stat tells the caller
    const at = pos;
    pos += bytesRead;
    if (buf.compare(ZEROS, 0, bytesRead, 0, bytesRead) === 0) {
      covered += bytesRead;
      onBytes(bytesRead);
      continue;
    }
    end = pos;
    const w: Promise<void> = labelled("write", tmp, s.call((cb) => sftp.write(handle, buf, 0, bytesRead, at, cb))).then(
      () => {
        covered += bytesRead;
        onBytes(bytesRead);
      },
      (e: Error) => {
        failed ??= e;
      },
    ).finally(() => inFlight.delete(w));
    inFlight.add(w);
    if (inFlight.size >= WRITES_IN_FLIGHT) await Promise.race(inFlight);
  }
  // Wrapped: an async function returning a bare promise would wait for it.
  const done = Promise.all(inFlight).then(() => {
    if (failed) throw failed;
    return covered;
  });
  return { done, length: pos, dataEnd: end };
}

/** The largest write the server takes in one request (ssh2 learns it from limits@openssh.com; no public accessor). */
function maxWriteLength(sftp: SFTPWrapper): number {
  const n = (sftp as unknown as { _maxWriteLen?: number })._maxWriteLen;
  return typeof n === "number" && n > 0 ? n : 32_768 - 1024;
}

function hasExtension(sftp: SFTPWrapper, name: string): boolean {
  // ssh2 keeps the server's advertised extensions here; it has no public accessor.
  const ext = (sftp as unknown as { _extensions?: Record<string, string> })._extensions;
  return ext?.[name] !== undefined;
}

/** "a/b/c" → "a/b"; "c" → "" (the destination itself) */
function parentOf(rel: string): string {
  const d = dirname(rel);
  return d === "." ? "" : d;
}

function connectFailure(e: Error): string {
  if (e instanceof SshConnectError || e instanceof SshAuthError) return e.message;
  return `ssh: ${e.message}`;
}

function failAll(files: BatchFile[], error: string): BatchResult {
  const outcomes = new Map<string, FileOutcome>();
  for (const f of files) outcomes.set(f.path, { ok: false, reason: error });
  return { outcomes, error, infoLines: [], bytesSent: 0 };
}

/** Our refusal of a symlink (or a file) where a replica directory belongs. */
function notADirectory(abs: string, st: SftpStats): SftpError {
  return Object.assign(new Error(`${abs} on the standby is ${st.isSymbolicLink() ? "a symlink" : "not a directory"}: not written through`), { code: "ENOTDIR" });
}
