// A transport for the engine's unit tests: it really copies files into a local directory (so the replica can be
// checked byte for byte), and lets a test script what the destination answers (a failed batch, a refused file, a
// file changed during the send). The real transports are tested by the e2e suite against sshd and rsync.
import { copyFileSync, existsSync, lstatSync, mkdirSync, renameSync, rmSync, statSync, utimesSync } from "node:fs";
import { dirname, join } from "node:path";
import type { BatchFile, BatchResult, DeleteResult, FileOutcome, MoveResult, SendOptions, Transport } from "../../src/transport/types.ts";

export class CopyTransport implements Transport {
  readonly description: string;
  /** the next batches fail as a whole with this error (a down standby) */
  failWith: string | null = null;
  /** these files are refused (the destination answered, but not for them) */
  refuse = new Set<string>();
  /** runs after the files are copied, before the outcomes are returned (a writer racing the transfer) */
  during: (() => void) | null = null;
  batches: string[][] = [];
  deletes: string[][] = [];
  moves: Array<Array<{ from: string; to: string }>> = [];

  constructor(private readonly src: string, readonly dest: string) {
    this.description = `copy → ${dest}`;
  }

  async sendBatch(filesIn: BatchFile[] | Promise<BatchFile[]>, _signal?: AbortSignal, _opts?: SendOptions): Promise<BatchResult> {
    const files = await filesIn;
    this.batches.push(files.map((f) => f.path));
    const outcomes = new Map<string, FileOutcome>();
    if (this.failWith !== null) {
      for (const f of files) outcomes.set(f.path, { ok: false, reason: this.failWith });
      return { outcomes, error: this.failWith, infoLines: [], bytesSent: 0 };
    }
    for (const f of files) {
      if (this.refuse.has(f.path)) {
        outcomes.set(f.path, { ok: false, reason: "refused by the test" });
        continue;
      }
      const from = join(this.src, f.path);
      if (!existsSync(from)) {
        outcomes.set(f.path, { ok: false, reason: "vanished", vanished: true });
        continue;
      }
      const to = join(this.dest, f.path);
      mkdirSync(dirname(to), { recursive: true });
      copyFileSync(from, to);
      const st = statSync(from);
      utimesSync(to, st.atime, st.mtime);
      outcomes.set(f.path, { ok: true, bytes: st.size });
    }
    this.during?.();
    return { outcomes, infoLines: [], bytesSent: 0 };
  }

  async deleteFiles(paths: string[]): Promise<DeleteResult> {
    this.deletes.push(paths);
    if (this.failWith !== null) return { deleted: new Set(), error: this.failWith };
    for (const p of paths) rmSync(join(this.dest, p), { force: true });
    return { deleted: new Set(paths), error: null };
  }

  async moveFiles(moves: Array<{ from: string; to: string }>): Promise<MoveResult> {
    this.moves.push(moves);
    const moved = new Set<string>();
    if (this.failWith !== null) return { moved, error: this.failWith };
    for (const m of moves) {
      const from = join(this.dest, m.from);
      if (!existsSync(from) || !lstatSync(from).isFile()) continue;
      mkdirSync(dirname(join(this.dest, m.to)), { recursive: true });
      renameSync(from, join(this.dest, m.to));
      moved.add(m.to);
    }
    return { moved, error: null };
  }

  async close(): Promise<void> {}
}
