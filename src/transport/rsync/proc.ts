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
  const child = launch(argv, input, signal, onSpawn, started);
  return await child.finish(readLines(child.proc.stdout as ReadableStream<Uint8Array>, onLine));
}

/**
 * The start both ways of running share: spawned (or the one `started`), tied to the signal (SIGTERM, then SIGKILL
 * after a grace period), stdin fed as it comes, stderr kept; `finish` waits for the exit and the given stdout reader.
 */
function launch(argv: string[], input: Iterable<string | Uint8Array> | null, signal: AbortSignal | undefined, onSpawn: ((p: Spawned) => void) | undefined, started: Spawned | undefined) {
  if (!started && Bun.which(argv[0] as string) === null) throw new Error("not found");
  const proc = started ?? Bun.spawn(tiedToUs(argv), { stdin: input ? "pipe" : "ignore", stdout: "pipe", stderr: "pipe" });
  onSpawn?.(proc);
  const onAbort = () => {
    proc.kill("SIGTERM");
    setTimeout(() => proc.exitCode === null && proc.kill("SIGKILL"), KILL_GRACE_MS).unref();
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  if (signal?.aborted) onAbort();
  const feed = feedStdin(proc, input, started !== undefined);
  const stderr: string[] = [];
  const err = readLines(proc.stderr as ReadableStream<Uint8Array>, (line) => {
    if (stderr.length < KEEP_STDERR_LINES) stderr.push(line);
    else stderr[KEEP_STDERR_LINES - 1] = line; // keep the last line: it carries rsync's summary
  });
  return {
    proc,
    async finish(out: Promise<void>): Promise<ProcRun> {
      const code = await proc.exited;
      await Promise.all([feed, out, err]);
      signal?.removeEventListener("abort", onAbort);
      return { code, stderr };
    },
  };
}

/** stdin in chunks, written as they come (text as UTF-8, bytes as they are): a million paths never need to be one string. */
async function feedStdin(proc: Spawned, input: Iterable<string | Uint8Array> | null, started: boolean): Promise<void> {
  if (!input) {
    if (started) (proc.stdin as import("bun").FileSink).end();
    return;
  }
  const sink = proc.stdin as import("bun").FileSink;
  try {
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
  const child = launch(argv, input, signal, onSpawn, started);
  const chunks: Buffer[] = [];
  const out = (async () => {
    for await (const chunk of child.proc.stdout as ReadableStream<Uint8Array>) chunks.push(Buffer.from(chunk));
  })();
  const run = await child.finish(out);
  return { ...run, stdout: Buffer.concat(chunks) };
}
