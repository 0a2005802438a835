// The rsync transport: one rsync process per batch, paths NUL-separated on stdin, per-file outcomes from its itemize output.
import { type BigIntStats, lstatSync, mkdirSync, renameSync } from "node:fs";
import { dirname, join } from "node:path";
import type { RsyncOptions, Target } from "../config/types.ts";
import { attributeErrors, isFileItem, ITEMIZE_MARKER, parseItemizeLine } from "./itemize.ts";
import { hostKeyRefusal } from "./known-hosts.ts";
import { buildDeleteArgv, buildRsyncArgv, deleteRules, NO_MASTER, sshCommand } from "./rsync-args.ts";
import { SshMaster } from "./ssh-master.ts";
import { tiedToUs } from "./tied.ts";
import type { BatchFile, BatchResult, DeleteResult, FileOutcome, MoveResult, SendOptions, Transport, VerifyRequest, VerifyResult } from "./types.ts";

/** rsync's exit codes for "some files were not transferred" and "some source files vanished": per-file outcomes hold. */
const PARTIAL = new Set([23, 24]);
/**
 * How long after a batch the next one's rsync is started ahead (a spare): a --once run that ends sooner starts none.
 * In the daemon the next batch is at least a debounce away.
 */
const SPARE_DELAY_MS = 250;
/** rsync's exit codes that say the connection itself failed (255: ssh; 12: the data stream; 30, 35: timeouts) */
const CONNECTION_LOST = new Set([255, 12, 30, 35]);
const KEEP_STDERR_LINES = 200;
const KILL_GRACE_MS = 5000;
/** `--info=progress2`: "    123,456,789  45%   12.34MB/s    0:00:10 (xfr#…)" */
const PROGRESS2 = /^\s*([\d,]+)\s+\d+%\s/;

export class RsyncTransport implements Transport {
  readonly description: string;
  private running: ReturnType<typeof Bun.spawn> | null = null;
  private madeLocalDest = false;
  /** the one ssh connection every batch, delete and move runs through (remote targets) */
  private readonly master: SshMaster | null;
  /**
   * rsync for the next list batch, started ahead through the master: its session, the standby's rsync and the
   * protocol handshake (4 of a batch's 8 round trips) are done while it waits for its file list on stdin. Nothing
   * is read, compared or written before the list arrives (the standby's rsync enters the destination only after
   * it got the list), so it sends exactly what a batch started now would send.
   */
  private spare: { proc: ReturnType<typeof Bun.spawn>; argv: string } | null = null;
  private spareTimer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;

  constructor(private readonly opts: { target: Target; rsync: RsyncOptions; sourceDir: string; master?: SshMaster }) {
    const t = opts.target;
    this.master = opts.master ?? (t.host === "" ? null : new SshMaster(t));
    this.description = t.host === "" ? `rsync → ${t.destDir}` : `rsync → ${t.user ? `${t.user}@` : ""}${t.host}:${t.destDir}`;
  }

  /** The master connection, started or checked; why not, for people (null: ready, or a local target). */
  private async connect(signal?: AbortSignal): Promise<string | null> {
    const failed = await this.master?.ensure(signal);
    if (!failed) return null;
    return signal?.aborted ? "interrupted" : explainFailure(failed.code, failed.stderr, this.opts.target);
  }

  /** Why a command failed, for people; a master that went away meanwhile says so. */
  private explain(code: number, stderr: string[]): string {
    if (this.master === null || !stderr.some((l) => l.includes(NO_MASTER))) return explainFailure(code, stderr, this.opts.target);
    const t = this.opts.target;
    return `the ssh connection to ${t.host.includes(":") ? `[${t.host}]` : t.host}:${t.port} was lost; a new one is opened for the next attempt`;
  }

  /** A command through the master failed at the connection level: the next one starts a new master. */
  private lost(code: number): void {
    if (CONNECTION_LOST.has(code)) this.master?.discard();
  }

  async sendBatch(filesIn: BatchFile[] | Promise<BatchFile[]>, signal?: AbortSignal, opts: SendOptions = {}): Promise<BatchResult> {
    const tree = opts.wholeTree;
    // A list run needs the list up front; a whole-tree run only needs it to report outcomes at the end.
    let files: BatchFile[] = tree ? [] : await filesIn;
    const { target, rsync } = this.opts;
    if (target.host === "" && !this.madeLocalDest) {
      mkdirSync(target.destDir, { recursive: true });
      this.madeLocalDest = true;
    }
    const confirmed = new Map<string, number>();
    const stderrLines: string[] = [];
    const infoLines: string[] = [];
    const wantItemize = rsync.verbose || rsync.itemizeChanges;
    let bytesSent = 0;
    const unreachable = await this.connect(signal);
    if (unreachable !== null) return failAll(await filesIn, unreachable);
    const argv = buildRsyncArgv({ ...this.opts, controlPath: this.master?.controlPath }, tree, opts.onBytes !== undefined);
    const sizeOf = opts.onBytes && !tree ? new Map(files.map((f) => [f.path, f.size])) : null;
    let doneBytes = 0;

    const startedNs = BigInt(Date.now()) * 1_000_000n;
    let proc: ReturnType<typeof Bun.spawn>;
    try {
      if (Bun.which(argv[0] as string) === null) throw new Error("not found");
      proc = (tree ? null : this.takeSpare(argv)) ?? Bun.spawn(tiedToUs(argv), { stdin: tree ? "ignore" : "pipe", stdout: "pipe", stderr: "pipe" });
    } catch (e) {
      return failAll(await filesIn, `cannot run rsync: ${(e as Error).message} (is rsync installed and on PATH?)`);
    }
    this.running = proc;
    const onAbort = () => {
      proc.kill("SIGTERM");
      setTimeout(() => proc.exitCode === null && proc.kill("SIGKILL"), KILL_GRACE_MS).unref();
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    if (signal?.aborted) onAbort();

    // rsync walks the tree itself in a whole-tree run
    const feed = tree ? Promise.resolve() : feedPaths(proc.stdin as import("bun").FileSink, files.map((f) => f.path));
    const out = readLines(proc.stdout as ReadableStream<Uint8Array>, (line) => {
      const item = parseItemizeLine(line);
      if (item) {
        bytesSent += item.bytes;
        if (isFileItem(item.flags)) {
          confirmed.set(item.path, item.bytes);
          if (sizeOf) opts.onBytes?.((doneBytes += sizeOf.get(item.path) ?? 0));
        }
        if (wantItemize && item.flags[0] !== ".") infoLines.push(`${item.flags} ${item.path}`);
      } else if (tree && opts.onBytes && PROGRESS2.test(line)) {
        opts.onBytes(Number((PROGRESS2.exec(line) as RegExpExecArray)[1]?.replaceAll(",", "")));
      } else if (rsync.stats && line.trim() !== "" && !line.startsWith(ITEMIZE_MARKER)) {
        if (infoLines.length < 10_000) infoLines.push(line);
      }
    });
    const err = readLines(proc.stderr as ReadableStream<Uint8Array>, (line) => {
      if (stderrLines.length < KEEP_STDERR_LINES) stderrLines.push(line);
      else stderrLines[KEEP_STDERR_LINES - 1] = line; // keep the last line: it carries rsync's summary
    });
    const code = await proc.exited;
    await Promise.all([feed, out, err]);
    signal?.removeEventListener("abort", onAbort);
    this.running = null;
    this.lost(code);
    if (!signal?.aborted && (code === 0 || PARTIAL.has(code))) this.scheduleSpare();
    if (tree) files = await filesIn;
    const batch = new Set(files.map((f) => f.path));

    if (tree && (code === 0 || PARTIAL.has(code))) return { outcomes: wholeTreeOutcomes(this.opts.sourceDir, files, code, startedNs), infoLines, bytesSent };
    if (code === 0) {
      const outcomes = new Map<string, FileOutcome>();
      for (const f of files) outcomes.set(f.path, { ok: true, bytes: confirmed.get(f.path) ?? 0 });
      return { outcomes, infoLines, bytesSent };
    }
    if (PARTIAL.has(code)) {
      const errors = attributeErrors(stderrLines, batch);
      const outcomes = new Map<string, FileOutcome>();
      for (const f of files) {
        const why = errors.get(f.path);
        if (confirmed.has(f.path) && why === undefined) {
          outcomes.set(f.path, { ok: true, bytes: confirmed.get(f.path) ?? 0 });
        } else if (!existsInSource(this.opts.sourceDir, f.path)) {
          outcomes.set(f.path, { ok: false, vanished: true, reason: "vanished from the source" });
        } else {
          outcomes.set(f.path, { ok: false, reason: why ?? `not confirmed by rsync (exit ${code})` });
        }
      }
      return { outcomes, infoLines, bytesSent };
    }
    if (signal?.aborted) return failAll(files, "interrupted");
    return failAll(files, this.explain(code, stderrLines));
  }

  async deleteFiles(paths: string[], signal?: AbortSignal): Promise<DeleteResult> {
    const deleted = new Set<string>();
    if (paths.length === 0) return { deleted, error: null };
    if (Bun.which("rsync") === null) return { deleted, error: "cannot run rsync (is rsync installed and on PATH?)" };
    const unreachable = await this.connect(signal);
    if (unreachable !== null) return { deleted, error: unreachable };
    const argv = buildDeleteArgv({ ...this.opts, controlPath: this.master?.controlPath });
    const proc = Bun.spawn(tiedToUs(argv), { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
    this.running = proc;
    const onAbort = () => proc.kill("SIGTERM");
    signal?.addEventListener("abort", onAbort, { once: true });
    const stderrLines: string[] = [];
    const feed = (async () => {
      try {
        proc.stdin.write(`${deleteRules(paths).join("\0")}\0`);
        await proc.stdin.end();
      } catch {
        // rsync exited early: its exit code says why
      }
    })();
    const out = readLines(proc.stdout as ReadableStream<Uint8Array>, (line) => {
      const item = parseItemizeLine(line);
      if (item?.flags.startsWith("*deleting")) deleted.add(item.path);
    });
    const err = readLines(proc.stderr as ReadableStream<Uint8Array>, (line) => {
      if (stderrLines.length < KEEP_STDERR_LINES) stderrLines.push(line);
    });
    const code = await proc.exited;
    await Promise.all([feed, out, err]);
    signal?.removeEventListener("abort", onAbort);
    this.running = null;
    this.lost(code);
    // "cannot delete non-empty directory" is a warning with exit 0: that directory holds other files, as intended.
    if (code === 0) return { deleted, error: null };
    return { deleted: new Set(), error: this.explain(code, stderrLines) };
  }

  async moveFiles(moves: Array<{ from: string; to: string }>, signal?: AbortSignal): Promise<MoveResult> {
    const moved = new Set<string>();
    if (moves.length === 0) return { moved, error: null };
    const t = this.opts.target;
    if (t.host === "") {
      for (const m of moves) {
        const from = join(t.destDir, m.from);
        const to = join(t.destDir, m.to);
        try {
          if (!lstatSync(from).isFile()) continue;
          mkdirSync(dirname(to), { recursive: true });
          renameSync(from, to);
          moved.add(m.to);
        } catch {
          // not there (or not movable): the caller sends it instead
        }
      }
      return { moved, error: null };
    }
    // One ssh session runs a small sh script from stdin (argv stays an array; the paths are quoted for sh):
    // a move is done only from a regular file and never into a directory, and each success is reported back.
    const q = (rel: string) => `'${join(t.destDir, rel).replaceAll("'", "'\\''")}'`;
    const script = moves
      .map((m, i) => `[ -f ${q(m.from)} ] && [ ! -d ${q(m.to)} ] && mkdir -p -- ${q(dirname(m.to) === "." ? "" : dirname(m.to))} && mv -f -- ${q(m.from)} ${q(m.to)} && echo "rrdsync-moved ${i}"`)
      .join("\n");
    const unreachable = await this.connect(signal);
    if (unreachable !== null) return { moved, error: unreachable };
    const proc = Bun.spawn(tiedToUs([...sshCommand(t, this.master?.controlPath), "--", `${t.user ? `${t.user}@` : ""}${t.host}`, "sh -s"]), { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
    const onAbort = () => proc.kill("SIGTERM");
    signal?.addEventListener("abort", onAbort, { once: true });
    const stderrLines: string[] = [];
    const feed = (async () => {
      try {
        proc.stdin.write(`${script}\n`);
        await proc.stdin.end();
      } catch {
        // ssh exited early: its exit code says why
      }
    })();
    const out = readLines(proc.stdout as ReadableStream<Uint8Array>, (line) => {
      const m = /^rrdsync-moved (\d+)$/.exec(line);
      const move = m ? moves[Number(m[1])] : undefined;
      if (move) moved.add(move.to);
    });
    const err = readLines(proc.stderr as ReadableStream<Uint8Array>, (line) => {
      if (stderrLines.length < KEEP_STDERR_LINES) stderrLines.push(line);
    });
    const code = await proc.exited;
    await Promise.all([feed, out, err]);
    signal?.removeEventListener("abort", onAbort);
    this.lost(code);
    return { moved, error: code === 255 ? this.explain(code, stderrLines) : null };
  }

  async warm(signal?: AbortSignal): Promise<void> {
    if (this.master === null || (await this.master.ensure(signal)) !== null) return;
    this.scheduleSpare();
  }

  private scheduleSpare(): void {
    if (this.master === null || this.closed) return;
    if (this.spareTimer) clearTimeout(this.spareTimer);
    this.spareTimer = setTimeout(() => {
      this.spareTimer = null;
      const controlPath = this.master?.controlPath;
      if (this.spare !== null || this.closed || !controlPath || !this.master?.running) return;
      const argv = buildRsyncArgv({ ...this.opts, controlPath });
      try {
        this.spare = { proc: Bun.spawn(tiedToUs(argv), { stdin: "pipe", stdout: "pipe", stderr: "pipe" }), argv: argv.join("\0") };
      } catch {
        // the batch will say why rsync cannot run
      }
    }, SPARE_DELAY_MS);
    this.spareTimer.unref();
  }

  /** The spare, if it is still waiting and was started for exactly this command line; else it is dropped. */
  private takeSpare(argv: string[]): ReturnType<typeof Bun.spawn> | null {
    const s = this.spare;
    this.spare = null;
    if (this.spareTimer) clearTimeout(this.spareTimer);
    this.spareTimer = null;
    if (!s) return null;
    if (s.proc.exitCode === null && s.argv === argv.join("\0")) return s.proc;
    s.proc.kill("SIGTERM");
    return null;
  }

  /** A --checksum dry run: the standby hashes its own copies (src/transport/rsync-verify.ts). */
  async verifyFiles(req: VerifyRequest, signal?: AbortSignal): Promise<VerifyResult> {
    const unreachable = await this.connect(signal);
    if (unreachable !== null) return { error: unreachable, bytesRead: 0 };
    const { rsyncVerify } = await import("./rsync-verify.ts");
    // Through the master, as the transfers go: the dry run and the listing for extras share one login.
    return rsyncVerify({ ...this.opts, controlPath: this.master?.controlPath }, req, signal, (code, stderr) => {
      this.lost(code);
      return this.explain(code, stderr);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.takeSpare([]); // no command line matches: the spare is stopped
    this.running?.kill("SIGTERM");
    await this.master?.close();
  }
}

/** Writes the paths NUL-separated to rsync's stdin, in chunks: a million paths never need to be one string. */
export async function feedPaths(sink: import("bun").FileSink, paths: Iterable<string>): Promise<void> {
  try {
    let chunk = "";
    for (const p of paths) {
      chunk += `${p}\0`;
      if (chunk.length > 65536) {
        sink.write(chunk);
        await sink.flush();
        chunk = "";
      }
    }
    sink.write(chunk);
    await sink.end();
  } catch {
    // rsync exited early (e.g. ssh failed): its exit code and stderr tell why
  }
}

/** A file whose inode last changed this long before the run started was seen, as it is now, by the run's walk. */
const CTIME_MARGIN_NS = 2_000_000_000n; // > any file system's timestamp granularity and the kernel's coarse clock lag

/**
 * Whole-tree outcomes without per-file output. Exit 0 means rsync sent (or found identical) every file its walk
 * saw, and its walk saw every file that existed unchanged from before it started: such a file is confirmed. A file
 * that changed around the start, or any file after exit 23/24 (we do not know which failed), is resent at once
 * in an ordinary list batch, whose itemized outcomes are exact and which costs only a quick check if it arrived.
 */
export function wholeTreeOutcomes(sourceDir: string, files: BatchFile[], code: number, startedNs: bigint): Map<string, FileOutcome> {
  const outcomes = new Map<string, FileOutcome>();
  for (const f of files) {
    // The walk's view serves when rsync exited 0: a file that changed after the walk keeps the walk's (older)
    // identity in the state, so the next pass sees the change and sends it again; a newer identity than the
    // one sent can never be recorded. After exit 23/24 every file is resent anyway.
    if (f.walked && code === 0) {
      const { ctimeNs, ...seen } = f.walked;
      outcomes.set(f.path, ctimeNs < startedNs - CTIME_MARGIN_NS
        ? { ok: true, bytes: f.size, seen }
        : { ok: false, resend: true, reason: "changed while the whole-tree run started" });
      continue;
    }
    let st: BigIntStats;
    try {
      st = lstatSync(join(sourceDir, f.path), { bigint: true });
    } catch {
      outcomes.set(f.path, { ok: false, vanished: true, reason: "vanished from the source" });
      continue;
    }
    if (code === 0 && st.ctimeNs < startedNs - CTIME_MARGIN_NS) {
      outcomes.set(f.path, { ok: true, bytes: f.size, seen: { size: Number(st.size), mtimeNs: st.mtimeNs.toString(), ino: st.ino.toString() } });
    } else {
      outcomes.set(f.path, { ok: false, resend: true, reason: code === 0 ? "changed while the whole-tree run started" : `whole-tree run exited ${code}` });
    }
  }
  return outcomes;
}

export function existsInSource(sourceDir: string, rel: string): boolean {
  try {
    lstatSync(join(sourceDir, rel));
    return true;
  } catch {
    return false;
  }
}

function failAll(files: BatchFile[], error: string): BatchResult {
  const outcomes = new Map<string, FileOutcome>();
  for (const f of files) outcomes.set(f.path, { ok: false, reason: error });
  return { outcomes, error, infoLines: [], bytesSent: 0 };
}

/** Turns ssh's and rsync's stderr into one message that says what failed and what to do. */
export function explainFailure(code: number, stderr: string[], t: Target): string {
  const text = stderr.join("\n");
  const hostPort = `${t.host.includes(":") ? `[${t.host}]` : t.host}:${t.port}`;
  if (/REVOKED HOST KEY/i.test(text)) return hostKeyRefusal("revoked", t);
  if (/REMOTE HOST IDENTIFICATION HAS CHANGED/i.test(text)) return hostKeyRefusal("changed", t, /(SHA256:[A-Za-z0-9+/]+)/.exec(text)?.[1]);
  if (/Host key verification failed|No [A-Z0-9-]+ host key is known/i.test(text)) return hostKeyRefusal("unknown", t);
  const conn = /(Connection refused|Connection timed out|No route to host|Could not resolve hostname[^\n]*|Network is unreachable|Connection closed by [^\n]*|Connection reset by peer)/i.exec(text);
  if (conn) return `cannot connect to ${hostPort}: ${conn[1]}`;
  if (/Permission denied \(publickey/i.test(text)) {
    return `ssh authentication to ${t.user ? `${t.user}@` : ""}${hostPort} failed with ${t.sshKeyPath || "the default keys"}: add the public key to the remote authorized_keys`;
  }
  // setpriv (tiedToUs) exits 127 when it cannot set up: it is there, so this is not a missing rsync (a seccomp filter).
  const setpriv = /^setpriv: [^\n]*/m.exec(text);
  if (setpriv) return `setpriv, which runs rsync tied to rrdsync, failed: ${setpriv[0].slice(9)} (a sandbox that forbids a system call it needs?)`;
  if (code === 127 || /rsync: (command )?not found|rsync: No such file or directory/i.test(text)) {
    return `rsync is not installed on ${t.host || "this machine"} (or not on its PATH)`;
  }
  const last = stderr.filter((l) => l.trim() !== "").at(-1) ?? "";
  return `rsync exited with code ${code}${last ? `: ${Buffer.from(last, "latin1").toString("utf8")}` : ""}`;
}

/** Reads a stream line by line as it arrives (latin1, so every byte survives for decodeRsyncName). */
function nextBreak(s: string, from: number): number {
  const n = s.indexOf("\n", from);
  const r = s.indexOf("\r", from);
  return r < 0 ? n : n < 0 ? r : Math.min(n, r);
}

export async function readLines(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
  let buf = "";
  for await (const chunk of stream) {
    buf += Buffer.from(chunk).toString("latin1");
    let start = 0;
    // \r ends a line too: rsync's progress output rewrites one line with it.
    for (let i = nextBreak(buf, 0); i >= 0; i = nextBreak(buf, start)) {
      const line = buf.slice(start, i);
      if (line !== "") onLine(line);
      start = i + 1;
    }
    buf = buf.slice(start);
  }
  if (buf !== "") onLine(buf);
}
