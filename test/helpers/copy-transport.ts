// A transport for the engine's unit tests: it really copies files into a local directory (so the replica can be
// checked byte for byte), and lets a test script what the destination answers (a failed batch, a refused file, a
// file changed during the send). The real transports are tested by the e2e suite against sshd and rsync.
import { copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, utimesSync } from "node:fs";
import { dirname, join } from "node:path";
import { localReplicaState } from "../../src/transport/replica-check.ts";
import { keepLocally } from "../../src/transport/replica-moves.ts";
import type { RootMarker } from "../../src/transport/marker.ts";
import { removeMarkerLocally, writeMarkerLocally } from "../../src/transport/root-markers.ts";
import { clearMarkerLocally, listLocally, pullLocally } from "../../src/transport/replica-list.ts";
import type { BatchFile, BatchResult, DeleteResult, FileOutcome, KeepResult, MoveResult, PullResult, ReplicaState, SendOptions, Transport, Version } from "../../src/transport/types.ts";

export class CopyTransport implements Transport {
  readonly description: string;
  /** the next batches fail as a whole with this error (a down standby) */
  failWith: string | null = null;
  /** these files are refused (the destination answered, but not for them) */
  refuse = new Set<string>();
  /** runs after the files are copied, before the outcomes are returned (a writer racing the transfer) */
  during: (() => void) | null = null;
  /** runs before the files are copied (a writer changing a file between the engine's look and rsync's read) */
  before: (() => void) | null = null;
  /** the next batch copies its files, then fails as a whole with this error (a connection dropped at the end) */
  cutShort: string | null = null;
  batches: string[][] = [];
  /** answer as rsync does: a whole-tree send walks the tree itself (a first sync is one run) */
  walks = false;
  /** a whole-tree run's ending, as rsync's exit code and its error lines would tell it */
  treeEnd: { code: number; failed: string[]; vanished: string[]; unattributed: string[] } = { code: 0, failed: [], vanished: [], unattributed: [] };
  wholeTreeRuns = 0;
  deletes: string[][] = [];
  moves: Array<Array<{ from: string; to: string }>> = [];

  constructor(private readonly src: string, readonly dest: string) {
    this.description = `copy → ${dest}`;
  }

  async walksTree(): Promise<boolean> {
    return this.walks;
  }

  async sendBatch(filesIn: BatchFile[] | Promise<BatchFile[]>, _signal?: AbortSignal, opts?: SendOptions): Promise<BatchResult> {
    if (this.walks && opts?.wholeTree) {
      // rsync walking the tree itself: every monitored file copied, and only the run's ending told
      this.wholeTreeRuns++;
      if (this.failWith !== null) return { outcomes: new Map(), error: this.failWith, infoLines: [], bytesSent: 0 };
      const copyAll = (rel: string) => {
        for (const e of readdirSync(join(this.src, rel), { withFileTypes: true })) {
          const r = rel ? `${rel}/${e.name}` : e.name;
          if (e.isDirectory()) copyAll(r);
          else if (e.isFile() && !this.treeEnd.failed.includes(r) && !opts.wholeTree?.exclude.includes(r)) {
            mkdirSync(dirname(join(this.dest, r)), { recursive: true });
            copyFileSync(join(this.src, r), join(this.dest, r));
            const st = statSync(join(this.src, r));
            utimesSync(join(this.dest, r), st.atime, st.mtime); // rsync -a keeps mtimes
          }
        }
      };
      copyAll("");
      return { outcomes: new Map(), infoLines: [], bytesSent: 0, tree: this.treeEnd };
    }
    const files = await filesIn;
    this.batches.push(files.map((f) => f.path));
    const outcomes = new Map<string, FileOutcome>();
    if (this.failWith !== null) {
      for (const f of files) outcomes.set(f.path, { ok: false, reason: this.failWith });
      return { outcomes, error: this.failWith, infoLines: [], bytesSent: 0 };
    }
    this.before?.();
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
    if (this.cutShort !== null) {
      const error = this.cutShort;
      this.cutShort = null;
      return { outcomes: new Map(files.map((f) => [f.path, { ok: false, reason: error }])), error, infoLines: [], bytesSent: 0 };
    }
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

  /** replica checks made (one per batch that writes, deletes or moves) */
  checks: string[][] = [];

  async replicaState(paths: string[]): Promise<ReplicaState> {
    this.checks.push(paths);
    if (this.failWith !== null) return { files: new Map(), marker: null, fence: null, error: this.failWith };
    return localReplicaState(this.dest, paths);
  }

  async keepReplicaCopies(paths: string[], under: string): Promise<KeepResult> {
    const kept = new Set<string>();
    for (const p of paths) if (keepLocally(this.dest, under, p)) kept.add(p);
    return { kept, error: null };
  }

  /** the next marker writes fail with this (a standby that refuses it) */
  markerFails: string | null = null;
  markerWrites = 0;

  async writeRootMarker(name: RootMarker, text: string): Promise<string | null> {
    this.markerWrites++;
    return this.failWith ?? this.markerFails ?? writeMarkerLocally(this.dest, name, text);
  }

  async removeRootMarker(name: RootMarker): Promise<string | null> {
    return this.failWith ?? removeMarkerLocally(this.dest, name);
  }

  async listReplica(onFile: (path: string, v: Version) => void): Promise<string | null> {
    return this.failWith ?? listLocally(this.dest, onFile);
  }

  async pullFiles(paths: string[], into: string): Promise<PullResult> {
    if (this.failWith !== null) return { pulled: new Set(), error: this.failWith };
    return { pulled: pullLocally(this.dest, paths, into), error: null };
  }

  async clearMarker(text: string): Promise<{ outcome: "cleared" | "gone" | "changed"; error: string | null }> {
    return { outcome: clearMarkerLocally(this.dest, text), error: null };
  }

  async close(): Promise<void> {}
}
