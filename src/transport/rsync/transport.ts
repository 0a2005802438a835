// The rsync transport: one rsync process per batch, paths NUL-separated on stdin, per-file outcomes from its
// itemize output, and after a partial failure from a dry run of what the replica really holds.
import { type BigIntStats, lstatSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { RsyncOptions, Target } from "../../config/types.ts";
import { attributeErrors, decodeRsyncName, isFileItem, ITEMIZE_MARKER, namesInErrorLine, parseItemizeLine, parseNewerLine } from "./itemize.ts";
import { probeRemoteRsync } from "../probe.ts";
import { checkCommand, checkInput, headsCommand, localHeads, localReplicaState, parseCheckOutput, parseHeads } from "../replica-check.ts";
import { keepLocally, keepScript, moveLocally, moveScript } from "../replica-moves.ts";
import type { RootMarker } from "../marker.ts";
import { removeMarkerCommand, removeMarkerLocally, writeMarkerCommand, writeMarkerLocally } from "../root-markers.ts";
import { clearMarkerCommand, clearMarkerLocally, listCommand, listLocally, parseListing, pullLocally } from "../replica-list.ts";
import { buildDeleteArgv, buildHeldArgv, buildPullArgv, buildRsyncArgv, comparesNanoseconds, deleteRules, NO_MASTER, sshCommand } from "./args.ts";
import { explainFailureOnline, rootCause } from "./errors.ts";
import { KEEP_STDERR_LINES, type ProcRun, runChild, runCollect, type Spawned } from "./proc.ts";
import { SshMaster } from "../ssh/master.ts";
import { existsInSource, isDirInSource, rootIdOf, sourceCtime } from "../in-source.ts";
import { tempNameOwner } from "../temp-names.ts";
import { tiedToUs } from "../tied.ts";
import { type BatchFile, type BatchResult, type DeleteResult, type FileOutcome, type KeepResult, type MoveResult, type PullResult, type ReplicaState, type ReplicaStateOptions, runVouches, type SendOptions, type Transport, type TreeFilter, type VerifyRequest, type VerifyResult, type Version } from "../types.ts";
import { fsPath, listEntry } from "../../names.ts";

/** rsync's exit codes for "some files were not transferred" and "some source files vanished". */
const PARTIAL = new Set([23, 24]);
/**
 * How long after a batch the next one's rsync is started ahead (a spare): a --once run that ends sooner starts none.
 * In the daemon the next batch is at least a debounce away.
 */
const SPARE_DELAY_MS = 250;
/** How long a master that answered `ssh -O check` is taken as alive without asking again (a batch's check, then its transfer). */
const RECHECK_AFTER_MS = 1000;
/** rsync's exit codes that say the connection itself failed (255: ssh; 12: the data stream; 30, 35: timeouts) */
const CONNECTION_LOST = new Set([255, 12, 30, 35]);
/** `--info=progress2`: "    123,456,789  45%   12.34MB/s    0:00:10 (xfr#…)" */
const PROGRESS2 = /^\s*([\d,]+)\s+\d+%\s/;
/** rsync's closing stats line (--info=stats1): "sent 100,137 bytes  received 38 bytes  200,350.00 bytes/sec" */
const SENT_LINE = /^sent ([\d,.']+) bytes\s+received [\d,.']+ bytes/;

export class RsyncTransport implements Transport {
  readonly description: string;
  private running: Spawned | null = null;
  private madeLocalDest = false;
  /** whether the receiving rsync compares nanoseconds (asked once, the first time a batch needs checking) */
  private nanoseconds: Promise<boolean> | null = null;
  /** the one ssh connection every batch, delete and move runs through (remote targets) */
  private readonly master: SshMaster | null;
  /** when the master last answered `ssh -O check` (performance.now()) */
  private checkedAt = Number.NEGATIVE_INFINITY;
  /**
   * rsync for the next list batch, started ahead through the master: its session, the standby's rsync and the
   * protocol handshake (4 of a batch's 8 round trips) are done while it waits for its file list on stdin. Nothing
   * is read, compared or written before the list arrives (the standby's rsync enters the destination only after
   * it got the list), so it sends exactly what a batch started now would send.
   */
  private spare: { proc: Spawned; argv: string; root: string | null } | null = null;
  /** the next batch's replica check, started ahead the same way (replica-check.ts: it reads nothing before its paths) */
  private spareCheck: { proc: Spawned; argv: string } | null = null;
  private spareTimer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;

  constructor(private readonly opts: { target: Target; rsync: RsyncOptions; sourceDir: string; master?: SshMaster }) {
    const t = opts.target;
    this.master = opts.master ?? (t.host === "" ? null : new SshMaster(t));
    this.description = t.host === "" ? `rsync → ${t.destDir}` : `rsync → ${t.user ? `${t.user}@` : ""}${t.host}:${t.destDir}`;
  }

  /** rsync walks a whole tree itself: a first sync is one run (see engine/first-sync-run.ts). */
  async walksTree(): Promise<boolean> {
    return true;
  }

  /** The master connection, started or checked; why not, for people (null: ready, or a local target). */
  private async connect(signal?: AbortSignal): Promise<string | null> {
    // A batch's replica check and its transfer come right after each other: the master answered the check's
    // `ssh -O check` a moment ago, so the transfer does not ask again (a master gone since fails the transfer,
    // as the connection lost, and the next attempt starts a new one).
    if (this.master !== null && this.master.running && performance.now() - this.checkedAt < RECHECK_AFTER_MS) return null;
    const failed = await this.master?.ensure(signal);
    if (!failed) {
      this.checkedAt = performance.now();
      return null;
    }
    this.checkedAt = Number.NEGATIVE_INFINITY;
    return signal?.aborted ? "interrupted" : explainFailureOnline(failed.code, failed.stderr, this.opts.target);
  }

  /**
   * Why a command failed, for people; a master that went away meanwhile says so. `largest`: the batch's largest
   * file, for a full disk that rsync did not name.
   */
  private async explain(code: number, stderr: string[], largest?: { path: string; size: number }): Promise<string> {
    const t = this.opts.target;
    if (this.master === null || !stderr.some((l) => l.includes(NO_MASTER))) return explainFailureOnline(code, stderr, t, largest, this.master?.controlPath);
    return `the ssh connection to ${t.host.includes(":") ? `[${t.host}]` : t.host}:${t.port} was lost; a new one is opened for the next attempt`;
  }

  /** A command through the master failed at the connection level: the next one starts a new master. */
  private lost(code: number): void {
    if (!CONNECTION_LOST.has(code)) return;
    this.master?.discard();
    this.checkedAt = Number.NEGATIVE_INFINITY;
  }

  async sendBatch(filesIn: BatchFile[] | Promise<BatchFile[]>, signal?: AbortSignal, opts: SendOptions = {}): Promise<BatchResult> {
    const tree = opts.wholeTree;
    // A list run needs the list up front; a whole-tree run only needs it to report outcomes at the end.
    let files: BatchFile[] = tree ? [] : await filesIn;
    const { target, rsync } = this.opts;
    if (target.host === "" && !this.madeLocalDest) {
      try {
        mkdirSync(target.destDir, { recursive: true });
      } catch (e) {
        return failAll(await filesIn, `cannot create ${target.destDir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
      this.madeLocalDest = true;
    }
    const confirmed = new Map<string, number>();
    const infoLines: string[] = [];
    const wantItemize = rsync.verbose || rsync.itemizeChanges;
    let bytesSent = 0;
    const unreachable = await this.connect(signal);
    if (unreachable !== null) return failAll(await filesIn, unreachable);
    const controlPath = this.master?.controlPath;
    const sparse = !tree && files.some((f) => f.sparse ?? isSparse(this.opts.sourceDir, f.path));
    const argv = buildRsyncArgv({ ...this.opts, controlPath }, tree, opts.onBytes !== undefined, sparse);
    const sizeOf = opts.onBytes && !tree ? new Map(files.map((f) => [f.path, f.size])) : null;
    let doneBytes = 0;

    const startedNs = BigInt(Date.now()) * 1_000_000n;
    const wire: { bytes: number | null } = { bytes: null };
    const newer: string[] = [];
    const run = await this.run(argv, tree ? null : files.map((f) => listEntry(f.path)), (line) => {
      const item = parseItemizeLine(line);
      const sent = item ? null : SENT_LINE.exec(line);
      if (sent) {
        wire.bytes = Number(sent[1]?.replace(/[,.']/g, ""));
        if (rsync.stats) infoLines.push(line);
      } else if (item) {
        bytesSent += item.bytes;
        if (isFileItem(item.flags)) {
          confirmed.set(item.path, item.bytes);
          if (sizeOf) opts.onBytes?.((doneBytes += sizeOf.get(item.path) ?? 0));
        }
        if (wantItemize && item.flags[0] !== ".") infoLines.push(`${item.flags} ${item.path}`);
      } else if (tree && line.endsWith(" is newer") && parseNewerLine(line) !== null) {
        // --update left it: the standby's copy is newer than ours (a conflict, first-sync-run.ts)
        newer.push(parseNewerLine(line) as string);
      } else if (tree && opts.onBytes && PROGRESS2.test(line)) {
        opts.onBytes(Number((PROGRESS2.exec(line) as RegExpExecArray)[1]?.replaceAll(",", "")));
      } else if (rsync.stats && line.trim() !== "" && !line.startsWith(ITEMIZE_MARKER)) {
        if (infoLines.length < 10_000) infoLines.push(line);
      }
    }, signal, tree ? undefined : (this.takeSpare(argv) ?? undefined));
    if (typeof run === "string") return failAll(await filesIn, `cannot run rsync: ${run} (is rsync installed and on PATH?)`);
    const { code, stderr } = run;
    // rsync's own total (file list, checksums, protocol included) where it printed one; else the per-file %b sum
    if (wire.bytes !== null && Number.isFinite(wire.bytes)) bytesSent = wire.bytes;
    this.lost(code);
    if (!signal?.aborted && (code === 0 || PARTIAL.has(code))) this.scheduleSpare();
    if (tree) files = await filesIn;

    if (code === 0) {
      if (tree) return { outcomes: wholeTreeOutcomes(this.opts.sourceDir, files, startedNs), infoLines, bytesSent, tree: { ...treeErrors(0, stderr, this.opts), newer } };
      const outcomes = new Map<string, FileOutcome>();
      for (const f of files) outcomes.set(f.path, { ok: true, bytes: confirmed.get(f.path) ?? 0 });
      return { outcomes, infoLines, bytesSent };
    }
    if (signal?.aborted) return failAll(files, "interrupted");
    if (!PARTIAL.has(code)) return failAll(files, await this.explain(code, stderr, largestOf(files)));
    // Exit 23/24: some file failed somewhere, maybe on the receiver, which names only its temporary file, after the
    // sender already itemized the file as sent. Nothing is taken on trust: what the replica now holds is compared.
    // Error lines name absolute paths under these; the longer first, should one hold the other.
    const roots = [target.destDir, this.opts.sourceDir].sort((a, b) => b.length - a.length);
    const errors = attributeErrors(stderr, new Set(files.map((f) => f.path)), roots);
    const cause = rootCause(stderr);
    if (tree) {
      // A caller that listed the files gets outcomes proven by a dry run over the tree; the first sync, which lists
      // none (its walk goes beside the run), reads the error lines (`tree`) and gives up on any it cannot place.
      const held = files.length > 0 ? await this.heldByReplica(null, tree, signal) : new Set<string>();
      return { outcomes: wholeTreeOutcomes(this.opts.sourceDir, files, startedNs, { code, held, errors, cause }), infoLines, bytesSent, tree: { ...treeErrors(code, stderr, this.opts), newer } };
    }
    const candidates = files.filter((f) => confirmed.has(f.path) && !errors.has(f.path));
    const held = candidates.length > 0 ? await this.heldByReplica(candidates, undefined, signal) : new Set<string>();
    const outcomes = new Map<string, FileOutcome>();
    for (const f of files) {
      const ctimeNs = sourceCtime(this.opts.sourceDir, f.path);
      if (held.has(f.path)) {
        outcomes.set(f.path, { ok: true, bytes: confirmed.get(f.path) ?? 0 });
      } else if (ctimeNs === null) {
        outcomes.set(f.path, { ok: false, vanished: true, reason: "vanished from the source" });
      } else {
        // Not on the replica as the source has it now: it failed, or it changed while rsync ran (the check
        // compares the source as it is after the run); either way it goes again.
        const changed = !runVouches(ctimeNs, startedNs) && !errors.has(f.path);
        outcomes.set(f.path, { ok: false, reason: errors.get(f.path) ?? (changed ? `changed while rsync ran (exit ${code}); it goes again` : notHeld(code, cause)) });
      }
    }
    return { outcomes, infoLines, bytesSent };
  }

  /**
   * The paths (of `files`, or of the whole tree) that the replica holds as the source has them now, by a dry run
   * (buildHeldArgv). Empty when that run fails: nothing is proven then.
   */
  private async heldByReplica(files: BatchFile[] | null, tree: TreeFilter | undefined, signal?: AbortSignal): Promise<Set<string>> {
    const held = new Set<string>();
    this.nanoseconds ??= receiverComparesNanoseconds(this.opts.target, this.master?.controlPath);
    const r = await this.run(buildHeldArgv({ ...this.opts, controlPath: this.master?.controlPath }, tree, await this.nanoseconds), files ? files.map((f) => listEntry(f.path)) : null, (line) => {
      const item = parseItemizeLine(line);
      // ".f": nothing to send, the content is there (attribute letters may follow: they are not content)
      if (item && item.flags[0] === "." && isFileItem(item.flags)) held.add(item.path);
    }, signal);
    return typeof r !== "string" && (r.code === 0 || PARTIAL.has(r.code)) ? held : new Set();
  }

  /** runChild, as the process close() stops; the reason if it cannot be started. */
  private async run(argv: string[], input: Iterable<string | Uint8Array> | null, onLine: (line: string) => void, signal?: AbortSignal, started?: Spawned): Promise<ProcRun | string> {
    try {
      return await runChild(argv, input, onLine, signal, (p) => (this.running = p), started);
    } catch (e) {
      return (e as Error).message;
    } finally {
      this.running = null;
    }
  }

  async deleteFiles(paths: string[], signal?: AbortSignal): Promise<DeleteResult> {
    const deleted = new Set<string>();
    if (paths.length === 0) return { deleted, error: null };
    // rsync never follows a symlink on the receiver while deleting (no --keep-dirlinks): a symlink planted where
    // a directory was is not a directory to the include rules, so it is excluded and neither it nor anything
    // behind it is touched.
    const unreachable = await this.connect(signal);
    if (unreachable !== null) return { deleted, error: unreachable };
    const r = await this.run(buildDeleteArgv({ ...this.opts, controlPath: this.master?.controlPath }), deleteRules(paths).map(listEntry), (line) => {
      const item = parseItemizeLine(line);
      if (item?.flags.startsWith("*deleting")) deleted.add(item.path);
    }, signal);
    if (typeof r === "string") return { deleted, error: "cannot run rsync (is rsync installed and on PATH?)" };
    this.lost(r.code);
    // "cannot delete non-empty directory" is a warning with exit 0: that directory holds other files, as intended.
    if (r.code === 0) return { deleted, error: null };
    return { deleted: new Set(), error: await this.explain(r.code, r.stderr) };
  }

  async moveFiles(moves: Array<{ from: string; to: string }>, signal?: AbortSignal): Promise<MoveResult> {
    const moved = new Set<string>();
    if (moves.length === 0) return { moved, error: null };
    const t = this.opts.target;
    if (t.host === "") {
      for (const m of moves) if (moveLocally(t.destDir, m.from, m.to)) moved.add(m.to);
      return { moved, error: null };
    }
    // One ssh session runs a small sh script from stdin (argv stays an array; the paths are quoted for sh),
    // which reports each move it did.
    const unreachable = await this.connect(signal);
    if (unreachable !== null) return { moved, error: unreachable };
    const r = await this.run([...sshCommand(t, this.master?.controlPath), "--", `${t.user ? `${t.user}@` : ""}${t.host}`, "sh -s"], [fsPath(moveScript(t.destDir, moves))], (line) => {
      const m = /^rrdsync-moved (\d+)$/.exec(line);
      const move = m ? moves[Number(m[1])] : undefined;
      if (move) moved.add(move.to);
    }, signal);
    if (typeof r === "string") return { moved, error: "cannot run ssh (is openssh-client installed and on PATH?)" };
    this.lost(r.code);
    return { moved, error: r.code === 255 ? await this.explain(r.code, r.stderr) : null };
  }

  /**
   * One command through the master (no login of its own): GNU stat of the paths (and their parents) read from
   * stdin, and the marker, in one round trip plus the session's opening (replica-check.ts). A local destination:
   * lstat here.
   */
  async replicaState(paths: string[], signal?: AbortSignal, opts: ReplicaStateOptions = {}): Promise<ReplicaState> {
    const parents = opts.parents !== false;
    const t = this.opts.target;
    if (t.host === "") return localReplicaState(t.destDir, paths);
    const unreachable = await this.connect(signal);
    if (unreachable !== null) return { files: new Map(), marker: null, fence: null, error: unreachable };
    // The batch this check is for starts its rsync now (a spare, unless one waits already): its session, the
    // standby's rsync and the protocol handshake overlap the check; nothing is read or written before its list.
    if (paths.length > 0) this.startSpare();
    const argv = [...sshCommand(t, this.master?.controlPath), "--", remoteLogin(t), checkCommand(t.destDir)];
    let r: Awaited<ReturnType<typeof runCollect>>;
    try {
      r = await runCollect(argv, checkInput(paths, parents), signal, (p) => (this.running = p), this.takeSpareCheck(argv) ?? undefined);
    } catch {
      return { files: new Map(), marker: null, fence: null, error: "cannot run ssh (is openssh-client installed and on PATH?)" };
    } finally {
      this.running = null;
    }
    this.lost(r.code);
    if (signal?.aborted) return { files: new Map(), marker: null, fence: null, error: "interrupted" };
    if (r.code === 255) return { files: new Map(), marker: null, fence: null, error: await this.explain(r.code, r.stderr) };
    return parseCheckOutput(r.stdout, paths, r.code, r.stderr, parents);
  }

  async readReplicaHeads(paths: string[], bytes: number, signal?: AbortSignal): Promise<Map<string, Buffer>> {
    const t = this.opts.target;
    if (paths.length === 0) return new Map();
    if (t.host === "") return localHeads(t.destDir, paths, bytes);
    if ((await this.connect(signal)) !== null) return new Map();
    try {
      const r = await runCollect([...sshCommand(t, this.master?.controlPath), "--", remoteLogin(t), headsCommand(t.destDir, paths, bytes)], null, signal);
      return r.code === 0 ? parseHeads(r.stdout) : new Map();
    } catch {
      return new Map();
    }
  }

  /** One remote GNU find through the master (replica-list.ts); a local destination: lstat here. */
  async listReplica(onFile: (path: string, v: Version) => void, signal?: AbortSignal): Promise<string | null> {
    const t = this.opts.target;
    if (t.host === "") return listLocally(t.destDir, onFile);
    const unreachable = await this.connect(signal);
    if (unreachable !== null) return unreachable;
    let r: Awaited<ReturnType<typeof runCollect>>;
    try {
      r = await runCollect([...sshCommand(t, this.master?.controlPath), "--", remoteLogin(t), listCommand(t.destDir)], null, signal, (p) => (this.running = p));
    } catch {
      return "cannot run ssh (is openssh-client installed and on PATH?)";
    } finally {
      this.running = null;
    }
    this.lost(r.code);
    if (signal?.aborted) return "interrupted";
    if (r.code === 255) return await this.explain(r.code, r.stderr);
    if (r.code !== 0) return `the listing of the standby failed: ${(r.stderr.find((l) => l.trim() !== "") ?? `exit ${r.code}`).trim()}${r.stderr.some((l) => /-printf|unknown predicate/.test(l)) ? " (it needs GNU findutils' find there; or use the sftp transport)" : ""}`;
    return parseListing(r.stdout, onFile);
  }

  /** rsync from the standby through the master, the paths NUL-separated on stdin; mtimes kept (-t), no symlinks. */
  async pullFiles(paths: string[], into: string, signal?: AbortSignal, onFile?: (done: number) => void): Promise<PullResult> {
    const t = this.opts.target;
    if (paths.length === 0) return { pulled: new Set(), error: null };
    if (t.host === "") {
      const pulled = pullLocally(t.destDir, paths, into);
      onFile?.(pulled.size);
      return { pulled, error: null };
    }
    const unreachable = await this.connect(signal);
    if (unreachable !== null) return { pulled: new Set(), error: unreachable };
    let done = 0;
    const r = await this.run(buildPullArgv({ target: t, controlPath: this.master?.controlPath }, into), paths.map(listEntry), (line) => {
      const item = parseItemizeLine(line);
      if (item && isFileItem(item.flags)) onFile?.(++done);
    }, signal);
    if (typeof r === "string") return { pulled: new Set(), error: "cannot run rsync (is rsync installed and on PATH?)" };
    this.lost(r.code);
    if (signal?.aborted) return { pulled: new Set(), error: "interrupted" };
    if (r.code !== 0 && !PARTIAL.has(r.code)) return { pulled: new Set(), error: await this.explain(r.code, r.stderr) };
    // What arrived is what is there now (a file gone on the standby meanwhile is simply not pulled).
    const pulled = new Set<string>();
    for (const p of paths) if (lstatSync(fsPath(join(into, p)), { throwIfNoEntry: false })?.isFile()) pulled.add(p);
    return { pulled, error: null };
  }

  async clearMarker(text: string, signal?: AbortSignal): Promise<{ outcome: "cleared" | "gone" | "changed"; error: string | null }> {
    const t = this.opts.target;
    if (t.host === "") return { outcome: clearMarkerLocally(t.destDir, text), error: null };
    const unreachable = await this.connect(signal);
    if (unreachable !== null) return { outcome: "changed", error: unreachable };
    try {
      const r = await runCollect([...sshCommand(t, this.master?.controlPath), "--", remoteLogin(t), clearMarkerCommand(t.destDir)], [text], signal);
      this.lost(r.code);
      if (r.code === 0) return { outcome: "cleared", error: null };
      if (r.code === 5) return { outcome: "changed", error: null };
      return { outcome: "changed", error: r.code === 255 ? await this.explain(r.code, r.stderr) : `cannot remove the promotion marker on the standby: ${(r.stderr[0] ?? `exit ${r.code}`).trim()}` };
    } catch {
      return { outcome: "changed", error: "cannot run ssh (is openssh-client installed and on PATH?)" };
    }
  }

  async keepReplicaCopies(paths: string[], under: string, signal?: AbortSignal): Promise<KeepResult> {
    const kept = new Set<string>();
    const t = this.opts.target;
    if (paths.length === 0) return { kept, error: null };
    if (t.host === "") {
      for (const p of paths) if (keepLocally(t.destDir, under, p)) kept.add(p);
      return { kept, error: null };
    }
    const unreachable = await this.connect(signal);
    if (unreachable !== null) return { kept, error: unreachable };
    const r = await this.run([...sshCommand(t, this.master?.controlPath), "--", remoteLogin(t), "sh -s"], [fsPath(keepScript(t.destDir, under, paths))], (line) => {
      const m = /^rrdsync-kept (\d+)$/.exec(line);
      const p = m ? paths[Number(m[1])] : undefined;
      if (p !== undefined) kept.add(p);
    }, signal);
    if (typeof r === "string") return { kept, error: "cannot run ssh (is openssh-client installed and on PATH?)" };
    this.lost(r.code);
    return { kept, error: r.code === 255 ? await this.explain(r.code, r.stderr) : null };
  }

  /** The marker written by one command through the master (root-markers.ts), its text on stdin; a local destination here. */
  async writeRootMarker(name: RootMarker, text: string, signal?: AbortSignal): Promise<string | null> {
    const t = this.opts.target;
    if (t.host === "") return writeMarkerLocally(t.destDir, name, text);
    return this.remoteMarkerCommand(writeMarkerCommand(t.destDir, name), [text], `${name} not written on the standby`, signal);
  }

  async removeRootMarker(name: RootMarker, signal?: AbortSignal): Promise<string | null> {
    const t = this.opts.target;
    if (t.host === "") return removeMarkerLocally(t.destDir, name);
    return this.remoteMarkerCommand(removeMarkerCommand(t.destDir, name), null, `${name} not removed on the standby`, signal);
  }

  private async remoteMarkerCommand(command: string, input: string[] | null, what: string, signal?: AbortSignal): Promise<string | null> {
    const t = this.opts.target;
    const unreachable = await this.connect(signal);
    if (unreachable !== null) return unreachable;
    let r: Awaited<ReturnType<typeof runCollect>>;
    try {
      r = await runCollect([...sshCommand(t, this.master?.controlPath), "--", remoteLogin(t), command], input, signal, (p) => (this.running = p));
    } catch {
      return "cannot run ssh (is openssh-client installed and on PATH?)";
    } finally {
      this.running = null;
    }
    this.lost(r.code);
    if (r.code === 0) return null;
    if (r.code === 255) return this.explain(r.code, r.stderr);
    return `${what}: ${r.stderr.find((l) => l.trim() !== "")?.trim() ?? `exit ${r.code}`}`;
  }

  async warm(signal?: AbortSignal): Promise<void> {
    if (this.master === null || (await this.master.ensure(signal)) !== null) return;
    // The next batch's rsync and replica check, waiting for their lists: the batch pays neither's start-up.
    this.startSpare();
    this.startSpareCheck();
  }

  private scheduleSpare(): void {
    if (this.master === null || this.closed) return;
    if (this.spareTimer) clearTimeout(this.spareTimer);
    this.spareTimer = setTimeout(() => {
      this.spareTimer = null;
      this.startSpare();
      this.startSpareCheck();
    }, SPARE_DELAY_MS);
    this.spareTimer.unref();
  }

  /** The next list batch's rsync, started now through the master (unless one waits already). */
  private startSpare(): void {
    const controlPath = this.master?.controlPath;
    if (this.spare !== null && this.spare.proc.exitCode === null) return;
    if (this.closed || !controlPath || !this.master?.running) return;
    const argv = buildRsyncArgv({ ...this.opts, controlPath });
    // Taken before the spawn: a root replaced at any time after it (before or after rsync enters the tree) makes
    // this differ from the root at takeSpare, so the spare is never used for a tree it did not start in.
    const root = rootIdOf(this.opts.sourceDir);
    try {
      this.spare = { proc: Bun.spawn(tiedToUs(argv), { stdin: "pipe", stdout: "pipe", stderr: "pipe" }), argv: argv.join("\0"), root };
    } catch {
      // the batch will say why rsync cannot run
    }
  }

  /**
   * The next batch's replica check, started ahead as the spare rsync is: its session open and its remote shell
   * waiting for the paths, so the check costs the batch one round trip. It looks at nothing before they arrive.
   */
  private startSpareCheck(): void {
    const controlPath = this.master?.controlPath;
    const t = this.opts.target;
    if (this.spareCheck !== null || this.closed || !controlPath || !this.master?.running) return;
    const argv = [...sshCommand(t, controlPath), "--", remoteLogin(t), checkCommand(t.destDir)];
    try {
      this.spareCheck = { proc: Bun.spawn(tiedToUs(argv), { stdin: "pipe", stdout: "pipe", stderr: "pipe" }), argv: argv.join("\0") };
    } catch {
      // the check will say why
    }
  }

  /** The spare check, if it still waits and was started for exactly this command line; else it is dropped. */
  private takeSpareCheck(argv: string[]): Spawned | null {
    const s = this.spareCheck;
    this.spareCheck = null;
    if (!s) return null;
    if (s.proc.exitCode === null && s.argv === argv.join("\0")) return s.proc;
    s.proc.kill("SIGTERM");
    return null;
  }

  /**
   * The spare, if it is still waiting and was started for exactly this command line in the source root that is
   * there now; else it is dropped (rsync enters the source directory during its handshake, so a spare started
   * before `mv src src.old; mkdir src` would send the old tree's files).
   */
  private takeSpare(argv: string[]): Spawned | null {
    const s = this.spare;
    this.spare = null;
    if (this.spareTimer) clearTimeout(this.spareTimer);
    this.spareTimer = null;
    if (!s) return null;
    if (s.proc.exitCode === null && s.argv === argv.join("\0") && s.root !== null && s.root === rootIdOf(this.opts.sourceDir)) return s.proc;
    s.proc.kill("SIGTERM");
    return null;
  }

  /** A --checksum dry run: the standby hashes its own copies (src/transport/rsync/verify.ts). */
  async verifyFiles(req: VerifyRequest, signal?: AbortSignal): Promise<VerifyResult> {
    const unreachable = await this.connect(signal);
    if (unreachable !== null) return { error: unreachable, bytesRead: 0 };
    const { rsyncVerify } = await import("./verify.ts");
    // Through the master, as the transfers go: the dry run and the listing for extras share one login.
    return rsyncVerify({ ...this.opts, controlPath: this.master?.controlPath }, req, signal, (code, stderr) => {
      this.lost(code);
      return this.explain(code, stderr);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.takeSpare([]); // no command line matches: the spare is stopped
    this.takeSpareCheck([]);
    this.running?.kill("SIGTERM");
    await this.master?.close();
  }
}

const RESEND_STARTED: FileOutcome = Object.freeze({ ok: false, resend: true, reason: "changed while the whole-tree run started" });


/** What a whole-tree run that exited 23/24 left to go on: the files the replica holds now (by a dry run), the errors. */
export interface AfterPartial {
  code: number;
  held: ReadonlySet<string>;
  errors: ReadonlyMap<string, string>;
  cause: string;
}

/**
 * Whole-tree outcomes without per-file output. Exit 0 means rsync sent (or found identical) every file its walk
 * saw, and its walk saw every file that existed unchanged from before it started: such a file is confirmed.
 * After exit 23/24 (`after`) a file is confirmed only if, on top of that, the dry run found it on the replica as
 * it is in the source; one it did not find there stays pending, with the error that names it. A file that changed
 * around the start is sent again at once in an ordinary list batch, whose outcomes are exact.
 */
export function wholeTreeOutcomes(sourceDir: string, files: BatchFile[], startedNs: bigint, after?: AfterPartial): Map<string, FileOutcome> {
  const outcomes = new Map<string, FileOutcome>();
  for (const f of files) {
    // The walk's view serves when rsync exited 0: a file that changed after the walk keeps the walk's (older)
    // identity in the state, so the next pass sees the change and sends it again; a newer identity than the
    // one sent can never be recorded. After exit 23/24 each file is looked at again.
    if (f.walked && !after) {
      // the walk's own record serves as what rsync saw (a million files: no second object each)
      outcomes.set(f.path, runVouches(f.walked.ctimeNs, startedNs) ? { ok: true, bytes: f.size, seen: f.walked } : RESEND_STARTED);
      continue;
    }
    let st: BigIntStats;
    try {
      st = lstatSync(fsPath(join(sourceDir, f.path)), { bigint: true });
    } catch {
      outcomes.set(f.path, { ok: false, vanished: true, reason: "vanished from the source" });
      continue;
    }
    const settled = runVouches(st.ctimeNs, startedNs);
    if (settled && (!after || after.held.has(f.path))) {
      outcomes.set(f.path, { ok: true, bytes: f.size, seen: { size: Number(st.size), mtimeNs: st.mtimeNs.toString(), ino: st.ino.toString() } });
    } else if (!settled) {
      outcomes.set(f.path, RESEND_STARTED);
    } else if (after) {
      outcomes.set(f.path, { ok: false, reason: after.errors.get(f.path) ?? notHeld(after.code, after.cause) });
    }
  }
  return outcomes;
}

/** rsync's closing lines after errors: they name no file, and say nothing the per-file lines did not. */
const SUMMARY = /^rsync (error|warning): some files(\/attrs)? (were not transferred|vanished|could not be transferred)/;
const VANISHED = /^file has vanished: "(.*)"$/;

/**
 * Which files a whole-tree run's error lines name (relative to the tree): vanished ones apart. A line that names
 * no file of the tree (a receiver's temp name, a message of another shape) is "unattributed": then the caller
 * cannot know which files are missing. Too many lines to have kept them all counts as unattributed too.
 */
export function treeErrors(code: number, stderr: string[], o: { sourceDir: string; target: Target }): NonNullable<BatchResult["tree"]> {
  const out = { code, failed: [] as string[], vanished: [] as string[], unattributed: [] as string[] };
  if (code === 0) return out;
  const rel = (name: string): string | null => {
    // the source's path (sender errors), or the destination's (receiver errors, as the standby names them)
    for (const root of [o.sourceDir, o.target.destDir]) if (name.startsWith(`${root}/`)) return name.slice(root.length + 1);
    // a receiver's relative name ("could not make way for new regular file: a/b.rrd"), if it is a path of the
    // tree: anything else (a message's tail) names no file, and leaves the run unattributed
    if (!name.startsWith("/") && !name.split("/").includes("..") && existsInSource(o.sourceDir, name.replace(/\/$/, ""))) return name.replace(/\/$/, "");
    return null;
  };
  // A receiver's temporary name (".a.txt.XXXXXX", a piece in the partial dir) is its file's failure (an immutable
  // directory fails the mkstemp); another dot name that is no file of the tree names nothing we know.
  const placed = (name: string): string | null => {
    const r = rel(name);
    if (r === null) return null;
    const owner = tempNameOwner(r);
    if (owner !== null && existsInSource(o.sourceDir, owner)) return owner;
    // a directory (a failed mkdir) says nothing of which files under it failed: the run cannot be vouched for
    if (isDirInSource(o.sourceDir, r)) return null;
    return r.split("/").at(-1)?.startsWith(".") && !existsInSource(o.sourceDir, r) ? null : r;
  };
  if (stderr.length >= KEEP_STDERR_LINES) out.unattributed.push(`more than ${KEEP_STDERR_LINES} error lines`);
  for (const line of stderr) {
    if (line.trim() === "" || SUMMARY.test(line)) continue;
    const v = VANISHED.exec(line);
    const name = v ? decodeRsyncName(v[1] as string) : null;
    const r = name !== null ? rel(name) : namesInErrorLine(line).map(placed).find((x) => x !== null);
    if (r === null || r === undefined) out.unattributed.push(line);
    else (v ? out.vanished : out.failed).push(r);
  }
  return out;
}

/** Why a file rsync may have itemized as sent is still pending: the replica does not hold it. */
function notHeld(code: number, cause: string): string {
  return `not on the replica after rsync exited ${code}${cause ? ` (${cause})` : ""}`;
}

/** The receiver is the local rsync for a local destination, else the standby's (asked once, through the master). */
async function receiverComparesNanoseconds(t: Target, controlPath?: string | null): Promise<boolean> {
  if (t.host === "") {
    const p = Bun.spawnSync(["rsync", "--version"], { stdout: "pipe", stderr: "ignore" });
    return comparesNanoseconds(/rsync\s+version\s+(\S+)/.exec(p.stdout.toString())?.[1] ?? "");
  }
  const r = await probeRemoteRsync(t, controlPath);
  return r.kind === "present" && comparesNanoseconds(r.version);
}

function largestOf(files: BatchFile[]): { path: string; size: number } | undefined {
  let max: BatchFile | undefined;
  for (const f of files) if (!max || f.size > max.size) max = f;
  return max && { path: max.path, size: max.size };
}

/** Does the file take less disk than its size (holes; or a compressing file system, where --sparse only costs)? */
function isSparse(sourceDir: string, rel: string): boolean {
  try {
    const st = lstatSync(fsPath(join(sourceDir, rel)));
    return st.isFile() && st.blocks * 512 < st.size;
  } catch {
    return false;
  }
}

/** user@host as ssh's destination argument. */
function remoteLogin(t: Target): string {
  return `${t.user ? `${t.user}@` : ""}${t.host}`;
}

function failAll(files: BatchFile[], error: string): BatchResult {
  const outcomes = new Map<string, FileOutcome>();
  for (const f of files) outcomes.set(f.path, { ok: false, reason: error });
  return { outcomes, error, infoLines: [], bytesSent: 0 };
}
