// Renames: a file renamed (or its directory moved) in the source becomes a move on the replica instead of an
// upload. Found two ways: the watcher paired the kernel's MOVED_FROM/MOVED_TO events, or (--once, rescans) a new
// path has the inode, size and mtime of a tracked file that is gone from the source, and is provably that file.
//
// Inode, size and mtime alone are not proof: delete A, then restore B with A's size and mtime (cp -p, tar, rsync
// -a; RRDs of one layout share a size) and the kernel hands B A's freed inode (ext4 does at once). A move would
// then leave A's bytes on the replica under B's name. What tells them apart is the inode's birth time (statx
// btime): a renamed file keeps its inode, born before its recorded content was written (btime <= mtime), while a
// new file on a reused inode is born after the mtime it was given. (The inode change time cannot: rename() sets
// it too.) Where the file system keeps no birth time, a file whose content hash is recorded is hashed and moved only
// if its bytes are the recorded ones; anything else is sent (in doubt, send: it costs bytes, never correctness).
import { goneFromSource } from "../source/look.ts";
import { sha256File } from "../track/detect.ts";
import type { FileState, StateStore } from "../store/state.ts";
import type { Transport } from "../transport/types.ts";
import { type Planned, sameVersion } from "./plan.ts";

export interface Move {
  from: string;
  to: Planned;
  prev: FileState;
}

/** The renames one pass finds, and the old paths they claimed (one old path moves to one new path). */
export class RenameFinder {
  private moves: Move[] = [];
  private readonly claimed = new Set<string>();

  constructor(private readonly store: StateStore, private readonly sourceDir: string) {}

  /**
   * A new path (no state row): is it a tracked file renamed? If so it is queued as a move. `birthNs`: the new
   * path's birth time (0 where the file system keeps none).
   */
  async byInode(p: Planned, birthNs: bigint): Promise<boolean> {
    for (const old of this.store.byInode(p.facts.ino)) {
      if (old.path === p.rel || this.claimed.has(old.path) || !sameVersion(old.state, p.facts)) continue;
      if (!goneFromSource(this.sourceDir, old.path)) continue; // a hard link, not a rename
      if (!(await sameFile(p, old.state, birthNs))) return false; // a new file on a reused inode: it is sent
      return this.claim(old.path, p, old.state);
    }
    return false;
  }

  /**
   * The watcher saw `from` renamed to `p.rel`. It is a move on the replica if `from` is tracked as exactly this
   * file (the replica holds it) and is gone from the source; otherwise the caller sends `p` (and deletes `from`).
   */
  byEvent(from: string, p: Planned): boolean {
    if (from === p.rel || this.claimed.has(from)) return false;
    const prev = this.store.get(from);
    if (prev === null || prev.size < 0 || !sameVersion(prev, p.facts) || !goneFromSource(this.sourceDir, from)) return false;
    return this.claim(from, p, prev);
  }

  private claim(from: string, to: Planned, prev: FileState): true {
    this.claimed.add(from);
    this.moves.push({ from, to, prev });
    return true;
  }

  /** The moves found so far (the finder starts over). */
  take(): Move[] {
    const m = this.moves;
    this.moves = [];
    this.claimed.clear();
    return m;
  }
}

/** Is `p` (same inode, size and mtime as the tracked `old`) the very file `old` was, or its exact bytes? */
export async function sameFile(p: Planned, old: FileState, birthNs: bigint): Promise<boolean> {
  if (birthNs > 0n) return birthNs <= BigInt(p.facts.mtimeNs);
  if (old.sha256 === null) return false;
  try {
    return (await sha256File(p.abs)) === old.sha256;
  } catch {
    return false;
  }
}

/** Moves on the replica; those it cannot do are returned as failed (the caller sends them and deletes the old). */
export async function moveOnReplica(transport: Transport, moves: Move[], signal?: AbortSignal): Promise<{ done: Move[]; failed: Move[]; error: string | null }> {
  const r = await transport.moveFiles(moves.map((m) => ({ from: m.from, to: m.to.rel })), signal);
  return { done: moves.filter((m) => r.moved.has(m.to.rel)), failed: moves.filter((m) => !r.moved.has(m.to.rel)), error: r.error };
}
