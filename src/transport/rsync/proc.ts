// Running rsync (or ssh) as a child: tied to our life, stdin fed in chunks, stdout read line by line as it streams.
import { tiedToUs } from "../tied.ts";

export const KEEP_STDERR_LINES = 200;
const KILL_GRACE_MS = 5000;

export interface ProcRun {
  code: number;
  /** the first lines of stderr, and always its last one (rsync's summary) */
  stderr: string[];
}

export type Spawned = ReturnType<typeof Bun.spawn>;

/**
 * Runs argv with `input` on stdin (chunks, written as they come: text as UTF-8, bytes as they are; null: no
 * stdin), each stdout line to `onLine`.
 * Aborting sends SIGTERM, then SIGKILL after a grace period. `onSpawn` gets the process (for close()).
 * `started`: the same command already started (all pipes), waiting for its stdin. Throws only if the program
 * cannot be started.
 */
export async function runChild(
  argv: string[],
  input: Iterable<string | Uint8Array> | null,
  onLine: (line: string) => void,
  signal?: AbortSignal,
  onSpawn?: (p: Spawned) => void,
  started?: Spawned,
): Promise<ProcRun> {
  if (!started && Bun.which(argv[0] as string) === null) throw new Error("not found");
  const proc = started ?? Bun.spawn(tiedToUs(argv), { stdin: input ? "pipe" : "ignore", stdout: "pipe", stderr: "pipe" });
  onSpawn?.(proc);
  const onAbort = () => {
    proc.kill("SIGTERM");
    setTimeout(() => proc.exitCode === null && proc.kill("SIGKILL"), KILL_GRACE_MS).unref();
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  if (signal?.aborted) onAbort();
  const feed = (async () => {
    if (!input) {
      if (started) (proc.stdin as import("bun").FileSink).end();
      return;
    }
    const sink = proc.stdin as import("bun").FileSink;
    try {
      // Written in chunks: a million paths never need to be one string.
      let chunk = "";
      for (const part of input) {
        if (typeof part !== "string") {
          sink.write(chunk);
          sink.write(part);
          chunk = "";
          continue;
        }
        chunk += part;
        if (chunk.length > 65536) {
          sink.write(chunk);
          await sink.flush();
          chunk = "";
        }
      }
      sink.write(chunk);
      await sink.end();
    } catch {
      // the child exited early (e.g. ssh failed): its exit code and stderr tell why
    }
  })();
  const stderr: string[] = [];
  const out = readLines(proc.stdout as ReadableStream<Uint8Array>, onLine);
  const err = readLines(proc.stderr as ReadableStream<Uint8Array>, (line) => {
    if (stderr.length < KEEP_STDERR_LINES) stderr.push(line);
    else stderr[KEEP_STDERR_LINES - 1] = line; // keep the last line: it carries rsync's summary
  });
  const code = await proc.exited;
  await Promise.all([feed, out, err]);
  signal?.removeEventListener("abort", onAbort);
  return { code, stderr };
}

function nextBreak(s: string, from: number): number {
  const n = s.indexOf("\n", from);
  const r = s.indexOf("\r", from);
  return r < 0 ? n : n < 0 ? r : Math.min(n, r);
}

/** Reads a stream line by line as it arrives (latin1, so every byte survives for decodeRsyncName). */
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

/**
 * Runs argv with `input` on stdin and collects its stdout as bytes (read as it streams; the callers' output is
 * bounded by what they asked: a batch's paths), and the first lines of stderr. Throws only if it cannot start.
 */
export async function runCollect(argv: string[], input: Iterable<string | Uint8Array> | null, signal?: AbortSignal, onSpawn?: (p: Spawned) => void, started?: Spawned): Promise<ProcRun & { stdout: Buffer }> {
  if (!started && Bun.which(argv[0] as string) === null) throw new Error("not found");
  const proc = started ?? Bun.spawn(tiedToUs(argv), { stdin: input ? "pipe" : "ignore", stdout: "pipe", stderr: "pipe" });
  onSpawn?.(proc);
  const onAbort = () => {
    proc.kill("SIGTERM");
    setTimeout(() => proc.exitCode === null && proc.kill("SIGKILL"), KILL_GRACE_MS).unref();
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  if (signal?.aborted) onAbort();
  const feed = (async () => {
    if (!input) {
      if (started) (proc.stdin as import("bun").FileSink).end();
      return;
    }
    const sink = proc.stdin as import("bun").FileSink;
    try {
      for (const part of input) sink.write(part);
      await sink.end();
    } catch {
      // it exited early: its exit code and stderr tell why
    }
  })();
  const chunks: Buffer[] = [];
  const out = (async () => {
    for await (const chunk of proc.stdout as ReadableStream<Uint8Array>) chunks.push(Buffer.from(chunk));
  })();
  const stderr: string[] = [];
  const err = readLines(proc.stderr as ReadableStream<Uint8Array>, (line) => {
    if (stderr.length < KEEP_STDERR_LINES) stderr.push(line);
  });
  const code = await proc.exited;
  await Promise.all([feed, out, err]);
  signal?.removeEventListener("abort", onAbort);
  return { code, stderr, stdout: Buffer.concat(chunks) };
}
