// The rsync transport: one rsync process per batch, paths NUL-separated on stdin, per-file outcomes from its itemize output.
import { lstatSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { RsyncOptions, Target } from "../config/types.ts";
import { attributeErrors, isFileItem, ITEMIZE_MARKER, parseItemizeLine } from "./itemize.ts";
import { buildRsyncArgv } from "./rsync-args.ts";
import type { BatchFile, BatchResult, FileOutcome, Transport } from "./types.ts";

/** rsync's exit codes for "some files were not transferred" and "some source files vanished": per-file outcomes hold. */
const PARTIAL = new Set([23, 24]);
const KEEP_STDERR_LINES = 200;
const KILL_GRACE_MS = 5000;

export class RsyncTransport implements Transport {
  readonly description: string;
  private running: ReturnType<typeof Bun.spawn> | null = null;
  private madeLocalDest = false;

  constructor(private readonly opts: { target: Target; rsync: RsyncOptions; sourceDir: string }) {
    const t = opts.target;
    this.description = t.host === "" ? `rsync → ${t.destDir}` : `rsync → ${t.user ? `${t.user}@` : ""}${t.host}:${t.destDir}`;
  }

  async sendBatch(files: BatchFile[], signal?: AbortSignal): Promise<BatchResult> {
    const { target, rsync } = this.opts;
    if (target.host === "" && !this.madeLocalDest) {
      mkdirSync(target.destDir, { recursive: true });
      this.madeLocalDest = true;
    }
    const batch = new Set(files.map((f) => f.path));
    const confirmed = new Map<string, number>();
    const stderrLines: string[] = [];
    const infoLines: string[] = [];
    const wantItemize = rsync.verbose || rsync.itemizeChanges;
    let bytesSent = 0;
    const argv = buildRsyncArgv(this.opts);

    let proc: ReturnType<typeof Bun.spawn>;
    try {
      proc = Bun.spawn(argv, { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
    } catch (e) {
      return failAll(files, `cannot run rsync: ${(e as Error).message} (is rsync installed and on PATH?)`);
    }
    this.running = proc;
    const onAbort = () => {
      proc.kill("SIGTERM");
      setTimeout(() => proc.exitCode === null && proc.kill("SIGKILL"), KILL_GRACE_MS).unref();
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    if (signal?.aborted) onAbort();

    const feed = (async () => {
      // Written in chunks: a million paths never need to be one string.
      const sink = proc.stdin as import("bun").FileSink;
      try {
        let chunk = "";
        for (const f of files) {
          chunk += `${f.path}\0`;
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
    })();
    const out = readLines(proc.stdout as ReadableStream<Uint8Array>, (line) => {
      const item = parseItemizeLine(line);
      if (item) {
        bytesSent += item.bytes;
        if (isFileItem(item.flags) && batch.has(item.path)) confirmed.set(item.path, item.bytes);
        if (wantItemize && item.flags[0] !== ".") infoLines.push(`${item.flags} ${item.path}`);
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
    return failAll(files, explainFailure(code, stderrLines, target));
  }

  async close(): Promise<void> {
    this.running?.kill("SIGTERM");
  }
}

function existsInSource(sourceDir: string, rel: string): boolean {
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
  if (/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|No [A-Z0-9-]+ host key is known/i.test(text)) {
    return `host key of ${hostPort} is not in ${t.knownHostsFile} or does not match; nothing was sent. ` +
      `Verify the host's fingerprint, then add it: ssh-keyscan -p ${t.port} ${t.host} >> ${t.knownHostsFile}`;
  }
  const conn = /(Connection refused|Connection timed out|No route to host|Could not resolve hostname[^\n]*|Network is unreachable|Connection closed by [^\n]*|Connection reset by peer)/i.exec(text);
  if (conn) return `cannot connect to ${hostPort}: ${conn[1]}`;
  if (/Permission denied \(publickey/i.test(text)) {
    return `ssh authentication to ${t.user ? `${t.user}@` : ""}${hostPort} failed with ${t.sshKeyPath || "the default keys"}: add the public key to the remote authorized_keys`;
  }
  if (code === 127 || /rsync: (command )?not found|rsync: No such file or directory/i.test(text)) {
    return `rsync is not installed on ${t.host || "this machine"} (or not on its PATH)`;
  }
  const last = stderr.filter((l) => l.trim() !== "").at(-1) ?? "";
  return `rsync exited with code ${code}${last ? `: ${Buffer.from(last, "latin1").toString("utf8")}` : ""}`;
}

/** Reads a stream line by line as it arrives (latin1, so every byte survives for decodeRsyncName). */
async function readLines(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
  let buf = "";
  for await (const chunk of stream) {
    buf += Buffer.from(chunk).toString("latin1");
    let start = 0;
    for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n", start)) {
      onLine(buf.slice(start, i).replace(/\r$/, ""));
      start = i + 1;
    }
    buf = buf.slice(start);
  }
  if (buf !== "") onLine(buf);
}
