// `rrdsync failback` for one target that was promoted or fenced (issue 26): what the standby collected comes back
// here without losing a row on either side, then both sides are made equal and the fence is lifted.
//
// The order is what makes a kill -9 anywhere safe (run it again: it converges):
//   1. list the standby; each file whose copy there is not one rrdsync delivered is pulled into a temporary
//      directory beside the source (mode 0700, random name; a killed run's is removed by the next);
//   2. each pulled file is settled here: an RRD merged into ours in place under rrdtool's lock (merging the same
//      rows again changes nothing), a newer text file taken, a file only the standby has copied in; its change-log
//      entry is written; only then is the standby's version noted as accepted (replica-versions), so a kill
//      before the note pulls and merges it again, and after it the ordinary send may write over that copy;
//   3. the settled files go back through the ordinary send and its replica check (the promotion marker, only the
//      one that was read, was removed before the first pull: the fence in the state DB keeps this host's rrdsync
//      off the target meanwhile); groups of files overlap, one pulled while the one before is sent back. Only when
//      everything went through is the fence lifted.
// A file that cannot be merged (another structure, a JRobin file) is left on both sides, kept out of the send,
// and keeps the target fenced with its name: nothing of it is overwritten anywhere.
import { createHash, randomBytes } from "node:crypto";
import { lchownSync, linkSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync, utimesSync } from "node:fs";
import { dirname, join } from "node:path";
import { ExitCode, UserError } from "../errors.ts";
import { fsPath, quoteName } from "../names.ts";
import { copyToNew, tempBeside } from "../safe-files.ts";
import { matchesExtensions } from "../source/walk.ts";
import { type FenceRecord, writeFence } from "../store/fence.ts";
import type { ChangeRow } from "../store/state.ts";
import { formatUnifiedDiff } from "../track/diff.ts";
import { MergeBuffers, mergeInto } from "../track/rrd-merge-file.ts";
import { parseMarker } from "../transport/marker.ts";
import type { Version } from "../transport/types.ts";
import { promotionNote } from "./guard.ts";
import { sameVersionOnReplica } from "./policy/conflict.ts";
import { type FailbackAction, isTempDirOf, type LocalFile, pickFailback, type RowCounts, rowCounts, tempDirName, textWinner } from "./policy/failback.ts";
import { Pass } from "./pass.ts";
import type { PendingFile } from "./pending.ts";
import type { TargetEngine } from "./target.ts";
import type { PassStats } from "./types.ts";

/** The state rows and noted versions are read in pieces of this many files (one query each for the notes). */
const JUDGE_CHUNK = 5_000;
/** The changed files go in about this many groups (each pulled while the one before is sent back), of at least GROUP_MIN. */
const GROUPS = 2;
const GROUP_MIN = 256;
/** Settled files' change-log entries and accepted versions are recorded at least this often (files, ms). */
const RECORD_EVERY_FILES = 500;
const RECORD_EVERY_MS = 1_000;
/** A text file larger than this is taken or kept whole, without a diff in the change log. */
const DIFF_MAX_BYTES = 8 * 1024 * 1024;

export interface FailbackFile {
  path: string;
  action: FailbackAction;
  /** what was done (or, with --dry-run, would be) */
  outcome: "merged" | "taken" | "kept ours" | "copied" | "left" | "failed";
  /** for people: the rows, the versions, why */
  detail: string;
  rows?: RowCounts;
  lastUpdate?: { ours: number; standby: number };
  /** ours is as it was (kept, or the merge added nothing): sent again as it is, so both sides end equal */
  resend?: boolean;
}

export type FailbackPhase = "listing" | "comparing" | "pulling" | "merging" | "sending";

export interface FailbackOptions {
  dryRun?: boolean;
  /** a progress line: the phase, and files done of those it has */
  onPhase?: (phase: FailbackPhase, done: number, total: number) => void;
}

export interface FailbackReport {
  /** the target was neither fenced nor promoted: nothing was done */
  nothing: boolean;
  /** the fence as it was found, and whether the standby held a promotion marker */
  fence: FenceRecord | null;
  promoted: boolean;
  /** files on the standby */
  listed: number;
  /** every file pulled, and what became of it */
  files: FailbackFile[];
  /** the promotion marker: removed, was not there, or another one is there now (left) */
  marker: "cleared" | "none" | "changed" | "left (dry run)";
  stats: PassStats[];
  lifted: boolean;
  /** why it stopped (the standby could not be asked, it changed again, interrupted) */
  error: string | null;
  /** the exit code an error calls for */
  errorCode?: ExitCode;
}

/** A short tag per target (its state file), so two targets' runs never take each other's temporary directories. */
export function targetTag(stateFile: string): string {
  return createHash("sha256").update(stateFile).digest("hex").slice(0, 8);
}

const iso = (t: number) => (t > 0 ? new Date(t * 1000).toISOString().replace(".000Z", "Z") : "never");

export async function failbackTarget(engine: TargetEngine, opts: FailbackOptions = {}, signal?: AbortSignal): Promise<FailbackReport> {
  const { guard, transport, store, config, log } = engine.ctx;
  const dry = opts.dryRun === true;
  const phase = opts.onPhase ?? (() => undefined);
  const report: FailbackReport = { nothing: false, fence: guard.fenced, promoted: false, listed: 0, files: [], marker: "none", stats: [], lifted: false, error: null };
  const fail = (error: string, code: ExitCode = ExitCode.Pending) => ({ ...report, error, errorCode: code });

  const contact = await transport.replicaState([], signal);
  if (contact.error !== undefined) return fail(contact.error);
  let markerText: string | null = null;
  if (contact.marker !== null) {
    report.promoted = true;
    if (!("text" in contact.marker) || parseMarker(contact.marker.text) === null) {
      const why = "text" in contact.marker ? "it is not one rrdsync promote wrote" : contact.marker.unreadable;
      return fail(`the promotion marker on the standby cannot be taken as rrdsync's (${why}): look at ${config.target.destDir}/.rrdsync-promoted there, and remove it by hand once the promotion is over`, ExitCode.Fenced);
    }
    markerText = contact.marker.text;
  }
  if (report.fence === null && markerText === null) return { ...report, nothing: true };

  // 1. What the standby holds, judged against what rrdsync delivered there.
  const parent = dirname(config.sourceDir);
  const tag = targetTag(config.stateFile);
  if (!dry) removeLeftovers(parent, tag, log);
  phase("listing", 0, 0);
  let t0 = performance.now();
  const took = (what: string) => {
    log.debug(`failback: ${what} in ${(performance.now() - t0).toFixed(0)} ms`);
    t0 = performance.now();
  };
  const listed: Array<{ rel: string; v: Version }> = [];
  const listError = await transport.listReplica((rel, v) => {
    listed.push({ rel, v });
    if (listed.length % 2048 === 0) phase("listing", listed.length, 0);
  }, signal);
  if (listError !== null) return fail(listError);
  report.listed = listed.length;
  took(`listed ${listed.length} files on the standby`);
  const todo: Array<{ rel: string; v: Version; action: FailbackAction; local: LocalFile; why: string }> = [];
  const why = new Set<string>();
  const earlier: FailbackFile[] = [];
  for (let i = 0; i < listed.length; i += JUDGE_CHUNK) {
    const chunk = listed.slice(i, i + JUDGE_CHUNK);
    const also = store.replicaVersions.of(chunk.map((c) => c.rel));
    for (const { rel, v } of chunk) {
      const abs = join(config.sourceDir, rel);
      if (engine.ctx.own.has(abs)) continue;
      const prev = store.get(rel);
      // The common case, a copy as rrdsync delivered it, needs no look at our file.
      if (prev !== null && prev.size >= 0 && sameVersionOnReplica(v, { size: prev.size, mtimeNs: BigInt(prev.mtimeNs) })) {
        if (why.size < 8) why.add("delivered");
        continue;
      }
      const local = localFile(abs);
      const source = local.kind === "file" ? { size: local.size, mtimeNs: local.mtimeNs } : null;
      const pick = pickFailback(rel, v, guard.knownRow(prev, also.get(rel), source), local, matchesExtensions(rel, config.monitoredExtensions));
      if (pick.pull) todo.push({ rel, v, action: pick.action, local, why: pick.why });
      else if (why.size < 8) why.add(pick.why);
      // Settled here by an earlier failback that was stopped before it sent the file back: it goes now. (Ours is
      // newer than the standby's accepted copy: a merge wrote it after the pull. A version `unfence --keep-replica`
      // took, newer than ours, is left as that command promised.)
      if (!pick.pull && local.kind === "file" && local.mtimeNs > v.mtimeNs && also.get(rel)?.some((a) => a.uptoNs === undefined && sameVersionOnReplica(v, a))) {
        earlier.push({ path: rel, action: "merge", outcome: "merged", resend: true, detail: "settled here by an earlier failback that was stopped: sent back now" });
      }
    }
    phase("comparing", Math.min(i + JUDGE_CHUNK, listed.length), listed.length);
  }

  took(`${todo.length} not as rrdsync delivered them (the others: ${[...why].join(", ") || "none"}), judged`);
  // 2. The marker goes first (only the one read): the fence in the state DB keeps this host's rrdsync off the
  // target until the end, and the ordinary send below may then write there.
  if (!dry && markerText !== null) {
    // Promoted but never fenced here (no run met the marker yet): the fence goes up first, so a kill -9 after the
    // marker is gone still leaves this host's rrdsync off the target.
    if (report.fence === null) writeFence(store, { since: Date.now(), kind: "promoted", files: 0, conflicts: [], promotion: promotionNote({ text: markerText }) });
    const c = await transport.clearMarker(markerText, signal);
    if (c.error !== null) return fail(c.error);
    if (c.outcome === "changed") return { ...fail("the standby was promoted again meanwhile (its promotion marker changed): nothing was pulled or sent; run failback again once OpenNMS is stopped there", ExitCode.Fenced), marker: "changed" };
    report.marker = c.outcome === "cleared" ? "cleared" : "none";
  }
  if (!dry) guard.suspend();
  // 3. In groups: pulled, settled here one by one, then sent back while the next group is pulled.
  const tmp = join(parent, tempDirName(tag, randomBytes(6).toString("hex")));
  const left = new Set<string>();
  let sentBack = 0;
  /**
   * Exactly the settled files go back, through the ordinary send (its replica check, its audit), each looked at
   * as it is now; one whose copy here did not change (ours kept, or nothing to add) goes again as it is. Other
   * files changed here meanwhile go with the next --once or the daemon, as usual.
   */
  const sendBack = async (files: FailbackFile[]) => {
    const again = files.filter((f) => f.resend === true).map((f) => ({ path: f.path, why: "failback: the standby held another version" }));
    if (again.length > 0 && !report.stats.some(failed)) report.stats.push(await engine.repair(again, signal));
    const now = Date.now();
    const back: PendingFile[] = files.filter((f) => f.resend !== true && (f.outcome === "merged" || f.outcome === "taken" || f.outcome === "copied"))
      .map((f) => ({ path: f.path, why: "changed", first: now, last: now, due: now, attempts: 0, lastError: null, holds: 0, sending: false, again: false }));
    if (back.length > 0 && !report.stats.some(failed)) report.stats.push(await new Pass(engine.ctx, signal).records(back));
    sentBack += again.length + back.length;
  };
  if (todo.length > 0) {
    try {
      mkdirSync(tmp, { mode: 0o700 }); // fails on anything already there, never follows a symlink
    } catch (e) {
      return fail(`cannot create a temporary directory beside the source (${tmp}): ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, ExitCode.Pending);
    }
    let sending: Promise<void> | null = null;
    try {
      const size = Math.max(GROUP_MIN, Math.ceil(todo.length / GROUPS));
      const settled = new Settled(engine);
      let pulledSoFar = 0;
      let done = 0;
      for (let i = 0; i < todo.length; i += size) {
        const group = todo.slice(i, i + size);
        phase("pulling", pulledSoFar, todo.length);
        const pulled = await transport.pullFiles(group.map((t) => t.rel), tmp, signal, (n) => phase("pulling", pulledSoFar + n, todo.length));
        pulledSoFar += group.length;
        if (sending !== null) await sending;
        sending = null;
        if (pulled.error !== null) return fail(pulled.error);
        if (report.stats.some(failed)) break;
        took(`${pulled.pulled.size} files pulled`);
        const files: FailbackFile[] = [];
        for (const t of group) {
          if (signal?.aborted) {
            settled.record();
            return fail("interrupted");
          }
          phase("merging", done++, todo.length);
          const f = pulled.pulled.has(t.rel)
            ? await settleOne(engine, settled, t, join(tmp, t.rel), dry)
            : { path: t.rel, action: t.action, outcome: "failed" as const, detail: "not pulled (gone from the standby meanwhile, or unreadable there)" };
          files.push(f);
          report.files.push(f);
          if (f.outcome === "left" || f.outcome === "failed") left.add(t.rel);
        }
        settled.record(); // the accepted versions are noted before their files are sent
        took(`${group.length} files settled here`);
        if (!dry) {
          phase("sending", 0, 0);
          sending = sendBack(files);
        }
      }
      if (sending !== null) await sending;
      sending = null;
    } finally {
      if (sending !== null) await (sending as Promise<void>).catch(() => undefined);
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  if (!dry && earlier.length > 0) {
    report.files.push(...earlier);
    await sendBack(earlier);
  }
  if (!dry) took(`${sentBack} files sent back`);
  if (dry) return { ...report, marker: markerText === null ? "none" : "left (dry run)" };
  const bad = report.stats.find(failed);
  if (bad !== undefined || signal?.aborted) {
    return fail(bad?.targetError ?? (bad?.fenced ? "the standby changed again while failback ran (is OpenNMS still running there?): the target is fenced again; stop it there and run failback again" : "interrupted"), bad?.fenced ? ExitCode.Fenced : ExitCode.Pending);
  }
  if (left.size === 0) {
    const unmarked = await guard.lift(signal); // the standby's fence marker first (engine/guard.ts)
    if (unmarked !== null) return fail(unmarked, ExitCode.Pending);
    report.lifted = true;
  } else {
    // The fence stays, now naming the files left on both sides (status, unfence show them).
    const first = [...left].slice(0, 20);
    writeFence(store, {
      since: Date.now(), kind: "conflict", files: left.size,
      conflicts: first.map((path) => ({ path, why: "changed", replica: null, ours: null })),
    });
  }
  return report;
}

const failed = (s: PassStats) => s.targetError !== null || s.fenced;

function localFile(abs: string): LocalFile {
  const st = lstatSync(fsPath(abs), { bigint: true, throwIfNoEntry: false });
  if (st === undefined) return { kind: "absent" };
  if (st.isFile()) return { kind: "file", size: Number(st.size), mtimeNs: st.mtimeNs };
  return { kind: "other", what: st.isDirectory() ? "directory" : st.isSymbolicLink() ? "symlink" : "special file" };
}

/** A killed run's temporary directories of this target (exactly our pattern, real directories only). */
function removeLeftovers(parent: string, tag: string, log: { warn(m: string): void }): void {
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return;
  }
  for (const n of names) {
    if (!isTempDirOf(n, tag)) continue;
    const p = join(parent, n);
    if (!lstatSync(p, { throwIfNoEntry: false })?.isDirectory()) continue;
    rmSync(p, { recursive: true, force: true });
    log.warn(`removed ${p}, left by a failback that was stopped`);
  }
}

/** One pulled file settled here (merged, taken, copied or left), its change-log entry written, its version noted. */
async function settleOne(engine: TargetEngine, settled: Settled, t: { rel: string; v: Version; action: FailbackAction; local: LocalFile; why: string }, pulledAbs: string, dry: boolean): Promise<FailbackFile> {
  const { config, log } = engine.ctx;
  const abs = join(config.sourceDir, t.rel);
  const pst = lstatSync(fsPath(pulledAbs), { bigint: true, throwIfNoEntry: false });
  if (!pst?.isFile()) return { path: t.rel, action: t.action, outcome: "failed", detail: "not pulled" };
  const pulled: Version = { size: Number(pst.size), mtimeNs: pst.mtimeNs };
  let f: FailbackFile;
  let change: Omit<ChangeRow, "time" | "path"> | null = null;
  try {
    switch (t.action) {
      case "leave":
        return { path: t.rel, action: t.action, outcome: "left", detail: `${t.why}; both copies left as they are` };
      case "merge": {
        const m = await mergeInto(fsPath(abs) as string, fsPath(pulledAbs) as string, { names: [`${t.rel} (here)`, `${t.rel} (standby)`], dryRun: dry, buffers: settled.buffers });
        const rows = rowCounts(m.stats.archives);
        const lu = m.stats.lastUpdate;
        const after = Math.max(lu.a, lu.b);
        const summary = `merged from standby: rows added ${rows.added}, rows kept ${rows.both}, last update ${iso(lu.a)} → ${iso(after)}`;
        f = { path: t.rel, action: t.action, outcome: "merged", resend: m.bytes === 0, rows, lastUpdate: { ours: lu.a, standby: lu.b }, detail: dry ? `would merge: the standby gives ${rows.added} rows, ours ${rows.ours} alone, ${rows.both} held by both (the ${m.stats.winner === "a" ? "ours" : "standby's"} kept); last update ${iso(lu.a)} → ${iso(after)}` : summary };
        change = { kind: "rrd merged", summary, details: `${summary} (the standby's copy: ${t.v.size} bytes, last update ${iso(lu.b)}; rows only here ${rows.ours}; ${m.bytes} bytes rewritten in place)`, added: 0, removed: 0 };
        break;
      }
      case "text": {
        const local = t.local as Extract<LocalFile, { kind: "file" }>;
        const winner = textWinner(local, pulled);
        if (winner === "local") {
          f = { path: t.rel, action: t.action, outcome: "kept ours", resend: true, detail: `ours is newer: it replaces the standby's copy (${t.v.size} bytes)` };
          change = { kind: "file merged", summary: "merged from standby: ours is newer, kept", details: `merged from standby: ours is newer than the standby's copy (${t.v.size} bytes), kept; the standby gets ours`, added: 0, removed: 0 };
          break;
        }
        const diff = textDiff(abs, pulledAbs);
        f = { path: t.rel, action: t.action, outcome: "taken", detail: `the standby's version is newer: taken (+${diff.added} −${diff.removed} lines)` };
        if (!dry) replaceWith(abs, pulledAbs, pulled);
        change = { kind: "file merged", summary: "merged from standby: the standby's newer version taken", details: `merged from standby: the standby's version is newer, taken.\n${diff.text}`, added: diff.added, removed: diff.removed };
        break;
      }
      case "copy":
        f = { path: t.rel, action: t.action, outcome: "copied", detail: `only on the standby: copied here (${pulled.size} bytes)` };
        if (!dry) copyIn(config.sourceDir, t.rel, pulledAbs, pulled);
        change = { kind: `${/\.rrd$/i.test(t.rel) ? "rrd" : "file"} merged`, summary: "merged from standby: only there, copied", details: `merged from standby: the file was only on the standby (${pulled.size} bytes); copied here`, added: 0, removed: 0 };
        break;
    }
  } catch (e) {
    if (e instanceof UserError && e.exitCode === ExitCode.Usage) {
      return { path: t.rel, action: t.action, outcome: "left", detail: `not merged: ${e.message}; both copies left as they are` };
    }
    return { path: t.rel, action: t.action, outcome: "failed", detail: (e as Error).message };
  }
  if (!dry) {
    settled.note(t.rel, change, [{ path: t.rel, size: t.v.size, mtimeNs: t.v.mtimeNs }, { path: t.rel, size: pulled.size, mtimeNs: pulled.mtimeNs }]);
    log.info(`${quoteName(t.rel)}: ${f.detail}`);
  }
  return f;
}

/**
 * What settled files leave to record: their change-log entries, then the standby versions they took in (noted as
 * accepted), in that order and only after the files themselves were settled here. Recorded in groups (a
 * transaction and a change-log flush per file cost more than the merge): a kill -9 before a group is recorded
 * leaves those files to be pulled and merged again, which changes nothing.
 */
class Settled {
  /** one set of merge buffers for the run: no garbage per file */
  readonly buffers = new MergeBuffers();
  private changes: ChangeRow[] = [];
  private versions: Array<{ path: string; size: number; mtimeNs: bigint }> = [];
  private since = performance.now();

  constructor(private readonly engine: TargetEngine) {}

  note(rel: string, change: Omit<ChangeRow, "time" | "path"> | null, versions: Array<{ path: string; size: number; mtimeNs: bigint }>): void {
    if (change !== null) this.changes.push({ time: Date.now(), path: rel, ...change });
    this.versions.push(...versions);
    if (this.versions.length >= RECORD_EVERY_FILES * 2 || performance.now() - this.since > RECORD_EVERY_MS) this.record();
  }

  record(): void {
    const { config, store, log, changeLog } = this.engine.ctx;
    this.since = performance.now();
    if (this.changes.length > 0 && config.changeTracking.enabled) {
      try {
        for (const c of this.changes) changeLog.append(new Date(c.time), c.path, c.details);
        changeLog.flush();
        store.commit([], this.changes);
      } catch (e) {
        log.error(`the change log entries of ${this.changes.length} merged files could not be written: ${(e as Error).message}`);
      }
    }
    this.changes = [];
    // Only now may the send write over these standby copies: what they held is here.
    if (this.versions.length > 0) store.replicaVersions.note(this.versions, "accepted");
    this.versions = [];
  }
}

function textDiff(ours: string, theirs: string): { text: string; added: number; removed: number } {
  const a = readFileSync(fsPath(ours));
  const b = readFileSync(fsPath(theirs));
  if (a.length > DIFF_MAX_BYTES || b.length > DIFF_MAX_BYTES || a.includes(0) || b.includes(0)) return { text: "(binary or large: no diff)", added: 0, removed: 0 };
  const d = formatUnifiedDiff(a.toString("utf8"), b.toString("utf8"));
  return { text: d.text, added: d.added, removed: d.removed };
}

/** Ours replaced by the pulled copy: a random name beside it, our mode and owner, the standby's mtime, renamed. */
function replaceWith(abs: string, pulledAbs: string, v: Version): void {
  const st = lstatSync(fsPath(abs));
  const tmp = tempBeside(abs);
  writeCopy(pulledAbs, tmp, st.mode & 0o7777, v, st);
  try {
    renameSync(fsPath(tmp), fsPath(abs));
  } catch (e) {
    rmSync(fsPath(tmp), { force: true });
    throw e;
  }
}

/** A file only the standby has, into the source: through real directories only (made as needed), never over anything. */
function copyIn(sourceDir: string, rel: string, pulledAbs: string, v: Version): void {
  let dir = sourceDir;
  for (const part of rel.split("/").slice(0, -1)) {
    dir = join(dir, part);
    try {
      mkdirSync(fsPath(dir), { mode: 0o755 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    if (!lstatSync(fsPath(dir)).isDirectory()) throw new UserError(`${dir}: not a directory (a symlink or a file): ${rel} not copied`, ExitCode.Pending);
  }
  const abs = join(sourceDir, rel);
  const tmp = tempBeside(abs);
  writeCopy(pulledAbs, tmp, 0o644, v, null);
  try {
    linkSync(fsPath(tmp), fsPath(abs)); // never over a file that appeared here meanwhile (EEXIST)
  } finally {
    unlinkSync(fsPath(tmp));
  }
}

function writeCopy(from: string, tmp: string, mode: number, v: Version, owner: { uid: number; gid: number } | null): void {
  copyToNew(fsPath(from), fsPath(tmp) as string, mode);
  try {
    // A file OpenNMS writes must stay its user's (we run as root); the name is ours alone (random, made O_EXCL).
    if (owner !== null && process.getuid?.() === 0 && (owner.uid !== 0 || owner.gid !== 0)) lchownSync(fsPath(tmp), owner.uid, owner.gid);
    const secs = Number(v.mtimeNs / 1_000n) / 1e6;
    utimesSync(fsPath(tmp), secs, secs);
  } catch (e) {
    rmSync(fsPath(tmp), { force: true });
    throw e;
  }
}
