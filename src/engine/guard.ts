// The replica guard of a target (issue 23): before a batch writes, deletes or moves anything on the standby, the
// replica's state of exactly those files is asked in one round trip (and the promotion marker with it), and each
// file is judged by the conflict rule (policy/conflict.ts). A file changed there behind rrdsync is never
// overwritten, deleted or renamed over: the first such file fences the target (kept in the state DB until
// `rrdsync unfence`), and from then on nothing is written, deleted or moved there. A promoted standby fences it
// before any file is compared. `unfence --overwrite` and `--keep-replica` run the same checks with another answer
// to a conflict: keep the standby's copy aside and write ours, or take the standby's version as the truth.
import { lstatSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import type { Config } from "../config/types.ts";
import { fsPath, quoteName } from "../names.ts";
import { type ConflictNote, FENCE_SAMPLE, type FenceRecord, fenceSummary, type PromotionNote, readFence, SETTLED_KEY, type SideNote, writeFence } from "../store/fence.ts";
import type { ChangeRow, FileState, StateStore } from "../store/state.ts";
import { FIRST_SYNC_KEY } from "../store/status.ts";
import type { ChangeLog } from "../track/changelog.ts";
import { RRD_NAME, readRrdProbe } from "../track/rrd-read.ts";
import { probeRrd } from "../track/rrd.ts";
import { FENCED_MARKER, formatFenceMarker, parseFenceMarker, parseMarker } from "../transport/marker.ts";
import { versionLine } from "../version.ts";
import type { MarkerFound, ReplicaFile, Transport, Version } from "../transport/types.ts";
import type { Planned } from "./plan.ts";
import { type Conflict, CONFLICT_WORDS, judgeReplica, type Known, type Op } from "./policy/conflict.ts";
import type { EngineLog } from "./types.ts";

/** What a conflict gets: the fence (always, unless an admin said otherwise for this run). */
export type ConflictMode =
  | { kind: "fence" }
  /** keep the standby's copy under `keptDir` (relative to the destination), then write ours over it */
  | { kind: "overwrite"; keptDir: string; by: string }
  /** the standby's version is the truth: not written, recorded as delivered */
  | { kind: "keep"; by: string };

export interface GuardDeps {
  name: string;
  config: Config;
  store: StateStore;
  transport: Transport;
  log: EngineLog;
  changeLog: ChangeLog;
}

/** One file the batch would act on, as the guard judges it. */
export interface GuardItem {
  rel: string;
  op: Op;
  known: Known;
  /** the file in the source (for our side's RRD header in a conflict's note); null for a delete */
  abs: string | null;
}

export interface Found {
  item: GuardItem;
  why: Conflict;
  replica: Extract<ReplicaFile, { kind: "file" }>;
}

export type Inspection =
  /** go ahead; `conflicts` only in the overwrite and keep modes (the caller applies them) */
  | { kind: "go"; conflicts: Found[]; replica: Map<string, ReplicaFile> }
  /** the replica could not be asked: nothing is known, nothing may be written (a failed batch) */
  | { kind: "error"; error: string }
  /** the target is (now) fenced: nothing goes; `conflicts`: the files that did it */
  | { kind: "fenced"; conflicts: Found[] };

/** Conflicting files named in the standby's fence marker (the change log here names every one). */
const FENCE_MARKER_SAMPLE = 10;

/** Bytes of a replica RRD read to show its last update in a conflict's note. */
const HEAD_BYTES = 65_536;

export class ReplicaGuard {
  mode: ConflictMode = { kind: "fence" };
  /** conflicts settled in the overwrite and keep modes (unfence's report) */
  readonly resolved = { kept: 0, accepted: 0 };
  private fence: FenceRecord | null;
  private settledMs: number | null;
  /** the fence was said as an error in this process (the daemon says it once) */
  private told = false;
  /** the fence marker's write was tried in this process */
  private markerTried = false;
  /** unfence or failback settles the fence in this process (suspend()) */
  private suspended = false;

  constructor(private readonly d: GuardDeps) {
    this.fence = readFence(d.store);
    this.settledMs = d.store.meta<number>(SETTLED_KEY);
    if (this.settledMs === null && !d.store.isEmpty() && d.store.meta(FIRST_SYNC_KEY) === null) {
      // A state DB made before the guard existed (or seeded from rrd_sync_new.py): what its replica holds from
      // before now is taken as the first sync's, as a new DB's first sync would.
      this.settledMs = Date.now();
      d.store.setMeta(SETTLED_KEY, this.settledMs);
    }
  }

  /** The fence, if the target is fenced (for this process's life: only `unfence`, with the lock, lifts it). */
  get fenced(): FenceRecord | null {
    return this.fence;
  }

  /**
   * Does this state DB know what rrdsync delivered to the target (its first sync ended)? A new or rebuilt one
   * does not: it cannot tell the standby's changes from older copies (unfence refuses to settle then).
   */
  get knowsDeliveries(): boolean {
    return this.settledMs !== null;
  }

  /** The first sync to this target ended: from now on a copy there that rrdsync did not put there is the standby's own. */
  settle(now = Date.now()): void {
    if (this.settledMs !== null) return;
    this.settledMs = now;
    this.d.store.setMeta(SETTLED_KEY, now);
  }

  /** What the rule knows of a file about to be written (its state row, noted versions, the version to write). */
  known(f: Pick<Planned, "prev" | "facts" | "repair">, also: Version[] | undefined, replaceable: boolean): Known {
    return {
      delivered: versionOf(f.prev), seedMtime: f.prev !== null && f.prev.size < 0 ? f.prev.seedMtime : null, also,
      source: { size: f.facts.size, mtimeNs: BigInt(f.facts.mtimeNs) }, settledMs: this.settledMs, replaceable,
    };
  }

  knownRow(prev: FileState | null, also: Version[] | undefined, source: Version | null): Known {
    return { delivered: versionOf(prev), seedMtime: prev !== null && prev.size < 0 ? prev.seedMtime : null, also, source, settledMs: this.settledMs };
  }

  /** The fence as an error line, once per process (status and check show it every time). */
  tell(): void {
    if (this.fence === null || this.told) return;
    this.told = true;
    this.d.log.error(fenceMessage(this.d.name, this.fence));
  }

  /**
   * The replica's state of these files and its marker, judged. In the fence mode a conflict (or the marker)
   * fences the target here, with every conflict logged and written to the change log; the other modes hand the
   * conflicts back to the caller. `[]`: only the marker (a first sync's first contact).
   */
  async inspect(items: GuardItem[], signal?: AbortSignal): Promise<Inspection> {
    if (this.fence !== null) return { kind: "fenced", conflicts: [] };
    const t0 = performance.now();
    // The files alone first: the parent directories are asked only for a file that looks like a conflict (a
    // symlinked parent would show what lies behind it; nothing is ever written through one).
    const state = await this.d.transport.replicaState(items.map((i) => i.rel), signal, { parents: false });
    this.d.log.debug(`replica check: ${items.length} files in ${(performance.now() - t0).toFixed(0)} ms`);
    if (state.error !== undefined) return { kind: "error", error: state.error };
    if (state.marker !== null) {
      await this.raise({ since: Date.now(), kind: "promoted", files: 0, conflicts: [], promotion: promotionNote(state.marker) });
      return { kind: "fenced", conflicts: [] };
    }
    // The fence recorded on the standby: this state DB is new or rebuilt, or was pointed here by another name (a
    // symlink, the host's other name), and did not know it. (unfence's modes expect it: it is the one they lift.)
    if (state.fence !== null && this.mode.kind === "fence" && !this.suspended) {
      this.restore(state.fence);
      return { kind: "fenced", conflicts: [] };
    }
    const judge = (list: GuardItem[], files: Map<string, ReplicaFile>): Found[] => {
      const out: Found[] = [];
      for (const item of list) {
        const replica = files.get(item.rel) ?? { kind: "absent" };
        const j = judgeReplica(item.op, item.known, replica);
        if (!j.ok && replica.kind === "file") out.push({ item, why: j.why, replica });
      }
      return out;
    };
    let conflicts = judge(items, state.files);
    if (conflicts.length > 0) {
      const again = await this.d.transport.replicaState(conflicts.map((c) => c.item.rel), signal);
      if (again.error !== undefined) return { kind: "error", error: again.error };
      conflicts = judge(conflicts.map((c) => c.item), again.files);
      for (const [rel, f] of again.files) state.files.set(rel, f);
    }
    if (conflicts.length === 0 || this.mode.kind !== "fence") return { kind: "go", conflicts, replica: state.files };
    const notes = await this.notes(conflicts, signal);
    this.journal(conflicts, notes, "fenced");
    await this.raise({ since: Date.now(), kind: "conflict", files: conflicts.length, conflicts: notes.slice(0, FENCE_SAMPLE) });
    return { kind: "fenced", conflicts };
  }

  /**
   * Files a whole-tree transfer left because the standby's copy is newer than ours (rsync --update, SFTP's quick
   * check): conflicts, with the same notes, log lines and fence as a check's.
   */
  async newerFound(paths: string[], signal?: AbortSignal): Promise<void> {
    if (paths.length === 0) return;
    const state = await this.d.transport.replicaState(paths, signal);
    const found: Found[] = paths.map((rel) => {
      const abs = join(this.d.config.sourceDir, rel);
      const st = lstatSync(fsPath(abs), { bigint: true, throwIfNoEntry: false });
      const source = st?.isFile() ? { size: Number(st.size), mtimeNs: st.mtimeNs } : null;
      const r = state.files.get(rel);
      const known: Known = { delivered: null, source, settledMs: this.settledMs, replaceable: true };
      return { item: { rel, op: "write", known, abs }, why: "newer", replica: r?.kind === "file" ? r : { kind: "file", size: -1, mtimeNs: -1n } };
    });
    await this.conflictsFound(found, signal);
  }

  private async conflictsFound(found: Found[], signal?: AbortSignal): Promise<void> {
    if (found.length === 0) return;
    const notes = await this.notes(found, signal);
    this.journal(found, notes, this.mode.kind === "fence" ? "fenced" : "left");
    if (this.mode.kind === "fence" && this.fence === null) await this.raise({ since: Date.now(), kind: "conflict", files: found.length, conflicts: notes.slice(0, FENCE_SAMPLE) });
  }

  /** overwrite mode: the standby's copies kept aside first; returns the files whose copy is kept (only those are written). */
  async keepCopies(found: Found[], signal?: AbortSignal): Promise<{ kept: Set<string>; error: string | null }> {
    if (this.mode.kind !== "overwrite" || found.length === 0) return { kept: new Set(), error: null };
    const { keptDir, by } = this.mode;
    const r = await this.d.transport.keepReplicaCopies(found.map((f) => f.item.rel), keptDir, signal);
    if (r.error !== null) return r;
    this.resolved.kept += r.kept.size;
    const notes = await this.notes(found.filter((f) => r.kept.has(f.item.rel)), signal);
    const where = `${this.d.config.target.destDir}/${keptDir}`;
    const time = new Date();
    const changes: ChangeRow[] = [];
    for (const n of notes) {
      const details = `Overwritten by ${by}: the standby's copy (${n.replica ? side(n.replica) : "?"}) was ${CONFLICT_WORDS[n.why as Conflict] ?? n.why}; it is kept on the standby as ${quoteName(`${where}/${n.path}`)}.\nOurs: ${n.ours ? side(n.ours) : "none"}.`;
      this.d.log.warn(`${quoteName(n.path)}: ${CONFLICT_WORDS[n.why as Conflict] ?? n.why}; its copy there is kept as ${quoteName(`${where}/${n.path}`)} and ours is written over it (${by})`);
      changes.push(this.changeRow(time, n.path, "overwritten", `overwritten by ${by}, the standby's copy kept`, details));
    }
    this.record(time, changes);
    for (const f of found) if (!r.kept.has(f.item.rel)) this.d.log.error(`${quoteName(f.item.rel)}: its copy on the standby could not be kept in ${where}: not overwritten`);
    return r;
  }

  /**
   * keep mode (or a file the source no longer has, whose standby copy stays): the standby's versions are noted as
   * the truth, so no later check takes them for conflicts (the caller records the files).
   */
  accept(found: Found[], by = this.mode.kind === "fence" ? "" : this.mode.by): void {
    if (found.length === 0 || by === "") return;
    this.d.store.replicaVersions.note(found.map((f) => ({ path: f.item.rel, size: f.replica.size, mtimeNs: f.replica.mtimeNs })), "accepted");
    this.resolved.accepted += found.length;
    const time = new Date();
    const changes: ChangeRow[] = [];
    for (const f of found) {
      const details = `Kept the standby's version (${by}): it was ${CONFLICT_WORDS[f.why]} (${side(sideOf(f.replica))}); ours (${f.item.known.source ? side(sideOf(f.item.known.source)) : "none"}) was not written.`;
      this.d.log.warn(`${quoteName(f.item.rel)}: the standby's version is kept (${by}); ours is not written`);
      changes.push(this.changeRow(time, f.item.rel, "kept", `the standby's version kept (${by})`, details));
    }
    this.record(time, changes);
  }

  /**
   * Files that changed while they were sent: the replica holds a version the transfer read, somewhere between the
   * one planned and the one there now. Noted as that range (no round trip), so the next check takes it for ours.
   */
  noteLanded(files: Array<{ path: string; from: string; to: string }>): void {
    this.d.store.replicaVersions.note(files.map((f) => ({ path: f.path, size: -1, mtimeNs: f.from, uptoNs: BigInt(f.to) })), "sent");
  }

  /**
   * unfence, while it settles the conflicts: this process checks and writes again (in the overwrite or keep mode),
   * while the fence stays in the state DB until lift(): a kill -9 meanwhile leaves the target fenced.
   */
  suspend(): void {
    this.fence = null;
    this.suspended = true; // the standby's fence marker is the one being lifted: it does not fence this process again
  }

  /**
   * Lifts the fence (unfence): only after the conflicts were settled. The standby's fence marker goes first: one
   * that cannot be removed keeps the target fenced here too (the next run would find it and fence it again).
   * null: lifted; else why not.
   */
  async lift(signal?: AbortSignal): Promise<string | null> {
    const failed = await this.d.transport.removeRootMarker(FENCED_MARKER, signal);
    if (failed !== null) return `the fence marker ${FENCED_MARKER} could not be removed from the standby: ${failed}`;
    this.fence = null;
    this.told = false;
    this.suspended = false;
    writeFence(this.d.store, null);
    return null;
  }

  /**
   * The fence goes up: in the state DB at once, then (for a conflict) on the standby too, as FENCED_MARKER, so a
   * new or rebuilt state DB finds it (a promotion is on the standby already). A marker that cannot be written is
   * a warning: the fence holds here all the same.
   */
  private async raise(f: FenceRecord): Promise<void> {
    this.fence = f.kind === "conflict" ? { ...f, onStandby: false } : f;
    writeFence(this.d.store, this.fence);
    this.told = true;
    this.d.log.error(fenceMessage(this.d.name, f));
    await this.recordOnStandby();
  }

  /**
   * A conflict's fence written to the standby as FENCED_MARKER, unless it is there already; tried once per process
   * (a fenced --once run connects only for this, and only until it went through).
   */
  async recordOnStandby(signal?: AbortSignal): Promise<void> {
    const f = this.fence;
    if (f === null || f.kind !== "conflict" || f.onStandby !== false || this.markerTried) return;
    this.markerTried = true;
    const text = formatFenceMarker({
      fencedAt: new Date(f.since).toISOString(), host: hostname(), by: versionLine(), files: f.files,
      conflicts: f.conflicts.slice(0, FENCE_MARKER_SAMPLE).map((c) => ({ path: c.path, why: c.why })),
    });
    const failed = await this.d.transport.writeRootMarker(FENCED_MARKER, text, signal);
    if (failed !== null) {
      this.d.log.warn(`${this.d.name}: the fence could not be recorded on the standby (${failed}); it holds in this state DB (${this.d.config.stateFile}) only, and the next run tries again`);
      return;
    }
    if (this.fence === f) {
      this.fence = { ...f, onStandby: true };
      writeFence(this.d.store, this.fence);
    }
  }

  /** The fence found on the standby (its marker), taken into the state DB as it was recorded there. */
  private restore(found: MarkerFound): void {
    const m = "text" in found ? parseFenceMarker(found.text) : null;
    const why = m === null ? ("unreadable" in found ? found.unreadable : "not a marker rrdsync wrote") : null;
    const f: FenceRecord = {
      since: m === null ? Date.now() : Date.parse(m.fencedAt), kind: "conflict", files: m?.files ?? 0,
      conflicts: (m?.conflicts ?? []).map((c) => ({ path: c.path, why: c.why, replica: null, ours: null })),
      standby: m === null ? { host: "?", unreadable: why ?? "?" } : { host: m.host }, onStandby: true,
    };
    this.fence = f;
    writeFence(this.d.store, f);
    this.told = true;
    this.d.log.error(fenceMessage(this.d.name, f));
  }

  /** Each conflict's two sides, for people: sizes, mtimes, and an RRD's last update (the first few read on the standby). */
  private async notes(found: Found[], signal?: AbortSignal): Promise<ConflictNote[]> {
    const rrds = found.filter((f) => RRD_NAME.test(f.item.rel)).slice(0, FENCE_SAMPLE).map((f) => f.item.rel);
    const heads = rrds.length > 0 ? ((await this.d.transport.readReplicaHeads?.(rrds, HEAD_BYTES, signal)) ?? new Map()) : new Map<string, Buffer>();
    return found.map((f) => {
      const replica = f.replica.size < 0 ? null : sideOf(f.replica, lastUpdateOf(heads.get(f.item.rel)));
      let ours: SideNote | null = null;
      if (f.item.known.source !== null) {
        const last = f.item.abs !== null && heads.has(f.item.rel) ? localLastUpdate(f.item.abs) : undefined;
        ours = sideOf(f.item.known.source, last);
      }
      return { path: f.item.rel, why: f.why, replica, ours };
    });
  }

  /** Every conflict to the log (ERROR) and, with change tracking, to the change log and the state DB's history. */
  private journal(found: Found[], notes: ConflictNote[], outcome: "fenced" | "left"): void {
    const time = new Date();
    const changes: ChangeRow[] = [];
    notes.forEach((n, i) => {
      const words = CONFLICT_WORDS[n.why as Conflict] ?? n.why;
      const op = found[i]?.item.op ?? "write";
      const not = op === "delete" ? "not deleted" : op === "write" ? "not overwritten" : "not renamed over";
      this.d.log.error(`conflict: ${quoteName(n.path)} ${words}: ${not} (standby: ${n.replica ? side(n.replica) : "?"}; here: ${n.ours ? side(n.ours) : "deleted"})`);
      const details = [
        `CONFLICT: ${words}; ${not}${outcome === "fenced" ? ", and the target is fenced" : ""}.`,
        `Standby: ${n.replica ? side(n.replica) : "?"}`,
        `Here:    ${n.ours ? side(n.ours) : "deleted from the source"}`,
        "rrdsync unfence shows the ways on (README: Failover and failback).",
      ].join("\n");
      changes.push(this.changeRow(time, n.path, "conflict", `conflict: ${words}`, details));
    });
    this.record(time, changes);
  }

  private changeRow(time: Date, path: string, what: string, summary: string, details: string): ChangeRow {
    return { time: time.getTime(), path, kind: `${RRD_NAME.test(path) ? "rrd" : "file"} ${what}`, summary, details, added: 0, removed: 0 };
  }

  /** Entries in the change log first, then the history rows (as the audit's one commit does); a failure is logged. */
  private record(time: Date, changes: ChangeRow[]): void {
    if (changes.length === 0 || !this.d.config.changeTracking.enabled) return;
    try {
      for (const c of changes) this.d.changeLog.append(time, c.path, c.details);
      this.d.changeLog.flush();
    } catch (e) {
      this.d.log.error(`the change log cannot be written (${(e as Error).message}): ${changes.length} conflict entries are only in the state DB (rrdsync log --kind conflict)`);
    }
    try {
      this.d.store.commit([], changes);
    } catch (e) {
      this.d.log.error(`the conflicts could not be recorded in the state DB: ${(e as Error).message}`);
    }
  }
}

function versionOf(prev: FileState | null): Version | null {
  return prev === null || prev.size < 0 ? null : { size: prev.size, mtimeNs: BigInt(prev.mtimeNs) };
}

export function promotionNote(m: MarkerFound): PromotionNote {
  if ("unreadable" in m) return { host: "?", promotedAt: "?", unreadable: m.unreadable };
  const p = parseMarker(m.text);
  if (p === null) return { host: "?", promotedAt: "?", unreadable: "not a marker rrdsync promote wrote" };
  return { host: p.host, promotedAt: p.promotedAt, user: p.user, by: p.by, newest: p.replica.newest };
}

/** The fence, as the error line --once, the daemon, status and check print. */
export function fenceMessage(name: string, f: FenceRecord): string {
  if (f.kind === "promoted") {
    const p = f.promotion;
    const who = p?.unreadable !== undefined ? `holds a promotion marker (${p.unreadable})` : `${p?.host ?? "?"} was promoted at ${p?.promotedAt ?? "?"} (rrdsync promote${p?.user ? `, by ${p.user}` : ""})`;
    return `${name}: the standby ${who}: this target is refused, nothing was compared, written, deleted or moved. The ways on: ` +
      "rrdsync failback (bring the data the standby collected back here), or point this rrdsync at the new standby (remote_sync in the config); stop rrdsync here meanwhile";
  }
  const found = f.standby === undefined ? "" : f.standby.unreadable !== undefined ? ` (${FENCED_MARKER})`
    : ` (recorded on the standby in ${FENCED_MARKER} by ${f.standby.host}; this state DB did not know it)`;
  return `${name}: FENCED: ${fenceSummary(f)}${found}. The standby was written to behind rrdsync (promoted, or by hand): nothing more is written, deleted or moved there, the changes stay pending. ` +
    `rrdsync unfence explains the ways on (--overwrite keeps the standby's copies aside and sends ours, --keep-replica takes the standby's versions)`;
}

const iso = (ns: bigint) => new Date(Number(ns / 1_000_000n)).toISOString();

function sideOf(v: Version, lastUpdate?: number): SideNote {
  return { size: v.size, mtime: iso(v.mtimeNs), ...(lastUpdate !== undefined ? { lastUpdate: new Date(Math.floor(lastUpdate) * 1000).toISOString().replace(".000Z", "Z") } : {}) };
}

function side(s: SideNote): string {
  return `${s.size.toLocaleString("en-US")} bytes, mtime ${s.mtime}${s.lastUpdate ? `, last update ${s.lastUpdate}` : ""}`;
}

function lastUpdateOf(head: Buffer | undefined): number | undefined {
  if (head === undefined) return undefined;
  const p = probeRrd(head);
  return p.kind === "rrd" ? p.header.lastUpdate : undefined;
}

function localLastUpdate(abs: string): number | undefined {
  try {
    const p = readRrdProbe(abs);
    return p.kind === "rrd" ? p.header.lastUpdate : undefined;
  } catch {
    return undefined;
  }
}
