// The SFTP worker thread: runs SftpClient (ssh2, file reads, encryption) beside the engine, as rsync and ssh run
// beside it in processes of their own. Messages in and out are described in sftp.ts.
import { SftpClient } from "./sftp-client.ts";
import type { WorkerReply, WorkerRequest } from "./sftp.ts";

declare const self: Worker;
/** progress is posted at most this often: a message per written chunk would cost more than the chunk */
const PROGRESS_EVERY_MS = 100;

let client: SftpClient | null = null;
const running = new Map<number, AbortController>();
const reply = (m: WorkerReply) => postMessage(m);

self.onmessage = async (e: MessageEvent<WorkerRequest>) => {
  const m = e.data;
  if (m.type === "init") {
    client = new SftpClient({
      ...m.opts,
      log: { info: (message) => reply({ type: "log", level: "info", message }), warn: (message) => reply({ type: "log", level: "warn", message }) },
    });
    return;
  }
  if (m.type === "abort") {
    running.get(m.id)?.abort();
    return;
  }
  const c = client as SftpClient;
  const ac = new AbortController();
  running.set(m.id, ac);
  try {
    let value: unknown;
    if (m.op === "send") {
      let last = 0;
      const onBytes = m.progress
        ? (bytes: number) => {
            const now = Date.now();
            if (now - last < PROGRESS_EVERY_MS) return;
            last = now;
            reply({ type: "bytes", id: m.id, bytes });
          }
        : undefined;
      value = await c.sendBatch(m.files, ac.signal, { wholeTree: m.wholeTree, onBytes });
    } else if (m.op === "delete") value = await c.deleteFiles(m.paths, ac.signal);
    else if (m.op === "move") value = await c.moveFiles(m.moves, ac.signal);
    else if (m.op === "probe") value = await c.probeDestination();
    else if (m.op === "warm") value = await c.warmUp(ac.signal);
    else value = await c.close();
    reply({ type: "result", id: m.id, value });
  } catch (err) {
    reply({ type: "error", id: m.id, message: (err as Error).message });
  } finally {
    running.delete(m.id);
  }
};
