// The SFTP transport: the built-in ssh2 client, for standbys without rsync. Same interface, same per-file outcomes.
// Its work (reads, encryption, socket writes) runs in a worker thread: on one thread with the engine it took 1.6×
// rsync's time on 20,000 small files, where rsync and ssh work in processes of their own.
import type { Target } from "../config/types.ts";
import type { BatchFile, BatchResult, DeleteResult, FileOutcome, MoveResult, SendOptions, Transport, TransportLog, TreeFilter } from "./types.ts";

interface ClientOpts {
  target: Target;
  sourceDir: string;
  env?: Record<string, string | undefined>;
}

export type WorkerRequest =
  | { type: "init"; opts: ClientOpts }
  | { type: "abort"; id: number }
  | ({ type: "call"; id: number } & Call);

type Call =
  | { op: "send"; files: BatchFile[]; wholeTree?: TreeFilter; progress: boolean }
  | { op: "delete"; paths: string[] }
  | { op: "move"; moves: Array<{ from: string; to: string }> }
  | { op: "probe" }
  | { op: "warm" }
  | { op: "close" };

export type WorkerReply =
  | { type: "result"; id: number; value: unknown }
  | { type: "error"; id: number; message: string }
  | { type: "bytes"; id: number; bytes: number }
  | { type: "log"; level: "info" | "warn"; message: string };

/**
 * A source run finds the worker beside this file. The compiled binary carries it as a second entry point
 * (build.sh), found by its path relative to the entry points' common root (src/).
 */
const WORKER_URL = Bun.main.startsWith("/$bunfs/") ? "./transport/sftp-worker.ts" : new URL("./sftp-worker.ts", import.meta.url).href;

export class SftpTransport implements Transport {
  readonly description: string;
  private worker: Worker | null = null;
  private nextId = 1;
  private readonly calls = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; onBytes?: (n: number) => void }>();

  constructor(private readonly opts: ClientOpts & { log?: TransportLog }) {
    const t = opts.target;
    this.description = `sftp → ${t.user ? `${t.user}@` : ""}${t.host}:${t.destDir}`;
  }

  private spawn(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(WORKER_URL);
    w.onmessage = (e: MessageEvent<WorkerReply>) => this.receive(e.data);
    w.onerror = (e: ErrorEvent) => {
      // A crashed worker fails what it was doing; the next call starts a new one (the engine retries).
      e.preventDefault();
      this.worker = null;
      w.terminate();
      for (const [id, c] of this.calls) {
        this.calls.delete(id);
        c.reject(new Error(`the SFTP worker failed: ${e.message}`));
      }
    };
    const { target, sourceDir, env } = this.opts;
    w.postMessage({ type: "init", opts: { target, sourceDir, env: { ...(env ?? process.env) } } } satisfies WorkerRequest);
    this.worker = w;
    return w;
  }

  private receive(m: WorkerReply): void {
    if (m.type === "log") {
      if (m.level === "warn") this.opts.log?.warn(m.message);
      else this.opts.log?.info(m.message);
      return;
    }
    const c = this.calls.get(m.id);
    if (!c) return;
    if (m.type === "bytes") return c.onBytes?.(m.bytes);
    this.calls.delete(m.id);
    // An idle worker must not keep a finished --once run alive.
    if (this.calls.size === 0) this.worker?.unref();
    if (m.type === "result") c.resolve(m.value);
    else c.reject(new Error(m.message));
  }

  private call<T>(call: Call, signal?: AbortSignal, onBytes?: (n: number) => void): Promise<T> {
    const w = this.spawn();
    const id = this.nextId++;
    if (this.calls.size === 0) w.ref();
    const onAbort = () => w.postMessage({ type: "abort", id } satisfies WorkerRequest);
    signal?.addEventListener("abort", onAbort, { once: true });
    return new Promise<T>((resolve, reject) => {
      this.calls.set(id, { resolve: resolve as (v: unknown) => void, reject, onBytes });
      w.postMessage({ type: "call", id, ...call } satisfies WorkerRequest);
      if (signal?.aborted) onAbort();
    }).finally(() => signal?.removeEventListener("abort", onAbort));
  }

  async sendBatch(filesIn: BatchFile[] | Promise<BatchFile[]>, signal?: AbortSignal, opts: SendOptions = {}): Promise<BatchResult> {
    // Log in while the engine still walks the tree.
    const warm = this.call({ op: "warm" }, signal).catch(() => undefined);
    const files = await filesIn;
    await warm;
    try {
      return await this.call<BatchResult>({ op: "send", files, wholeTree: opts.wholeTree, progress: opts.onBytes !== undefined }, signal, opts.onBytes);
    } catch (e) {
      const error = (e as Error).message;
      const outcomes = new Map<string, FileOutcome>(files.map((f) => [f.path, { ok: false, reason: error }]));
      return { outcomes, error, infoLines: [], bytesSent: 0 };
    }
  }

  deleteFiles(paths: string[], signal?: AbortSignal): Promise<DeleteResult> {
    return this.call<DeleteResult>({ op: "delete", paths }, signal).catch((e: Error) => ({ deleted: new Set<string>(), error: e.message }));
  }

  moveFiles(moves: Array<{ from: string; to: string }>, signal?: AbortSignal): Promise<MoveResult> {
    return this.call<MoveResult>({ op: "move", moves }, signal).catch((e: Error) => ({ moved: new Set<string>(), error: e.message }));
  }

  /** For `check`: log in, then write and remove a file in the destination. */
  async probeDestination(): Promise<{ login: string | null; dest: string | null; detail: string }> {
    try {
      return await this.call({ op: "probe" });
    } finally {
      await this.close();
    }
  }

  async close(): Promise<void> {
    const w = this.worker;
    if (!w) return;
    await this.call({ op: "close" }).catch(() => undefined);
    this.worker = null;
    w.terminate();
  }
}
