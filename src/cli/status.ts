// `rrdsync status`: what the state DB says about the target: files tracked, pending (with their age), the replica
// lag of its RRDs, the last pass, batch and verify, reachable or down since when, the last error; and whether an
// rrdsync is running now. Exit 1 when something is pending or the target is down, so a monitoring check can use
// it as is.
import pc from "picocolors";
import { allTargets, type Config } from "../config/types.ts";
import { type ReplicaLag, replicaLagNow } from "../engine/lag.ts";
import { ExitCode, UserError } from "../errors.ts";
import { escapeLine, safeJson } from "../escape.ts";
import { formatTimestamp } from "../log.ts";
import { formatBytes } from "../text.ts";
import { plural } from "../text.ts";
import { lockHolder } from "../store/lock.ts";
import { identityOf } from "../store/identity.ts";
import { StateStore } from "../store/state.ts";
import { type FenceRecord, fenceSummary, readFence } from "../store/fence.ts";
import { FIRST_SYNC_KEY, type StatusRecord, type VerifyRecord } from "../store/status.ts";
import { describeTarget } from "../transport/create.ts";
import { writeOut } from "./out.ts";
import { quoteName } from "../names.ts";

/**
 * One block (or one JSON line) per target; exit 1 if any target has files pending or is down (or its state DB is
 * damaged), 2 if a state_file is some other program's file.
 */
export async function showStatus(config: Config, flags: { json?: boolean; lag?: boolean }, env: Record<string, string | undefined>): Promise<ExitCode> {
  const shown = [];
  for (const c of allTargets(config)) shown.push(await showTarget(c, flags, env));
  await writeOut(shown.map((s) => s.text).join(""));
  return Math.max(...shown.map((s) => s.code)) as ExitCode;
}

type FirstSync = { after: string | null; started: number } | null;

/**
 * Up to this many tracked files `status` looks at every RRD now (~0.5 s at 200,000); above it, it shows the lag the
 * engine recorded after its last pass or batch (`--lag` looks now anyway: 4.7 s at 1,000,000).
 */
const LIVE_LAG_MAX_FILES = 200_000;

/** The state DB's numbers, or why there are none: not made yet, or a file that is not (or no longer) a sound DB. */
async function readState(config: Config, liveLag: boolean): Promise<{ files: number; st: StatusRecord; lag: ReplicaLag | null; lagTime: number | null; firstSync: FirstSync; problem: UserError | null; initialised: boolean; history: HistoryFacts | null; fence: FenceRecord | null }> {
  const { stateFile, sourceDir } = config;
  let store: StateStore | null;
  try {
    // Its last batch, pending files and lag are about the pair it describes: another pair's DB is exit 2.
    store = StateStore.openExisting(stateFile, identityOf(config));
  } catch (e) {
    if (e instanceof UserError) return { files: 0, st: {}, lag: null, lagTime: null, firstSync: null, problem: e, initialised: false, history: null, fence: null };
    throw e;
  }
  if (store === null) return { files: 0, st: {}, lag: null, lagTime: null, firstSync: null, problem: null, initialised: false, history: null, fence: null };
  try {
    const st = store.status();
    const files = store.countFiles();
    // A missing source says nothing about how far behind the replica is.
    let lag: ReplicaLag | null = null;
    let lagTime: number | null = null;
    if (st.sourceMissing === undefined) {
      if (liveLag || files <= LIVE_LAG_MAX_FILES || st.lag === undefined) {
        lag = await replicaLagNow(store, sourceDir);
      } else {
        const { time, ...figures } = st.lag;
        lag = figures;
        lagTime = time;
      }
    }
    return { files, st, lag, lagTime, firstSync: store.meta(FIRST_SYNC_KEY), problem: null, initialised: true, history: historyFacts(store), fence: readFence(store) };
  } finally {
    store.close();
  }
}

async function showTarget(config: Config, flags: { json?: boolean; lag?: boolean }, env: Record<string, string | undefined>): Promise<{ text: string; code: ExitCode }> {
  const { files, st, lag, lagTime, firstSync, problem, initialised, history, fence } = await readState(config, flags.lag === true);
  const held = lockHolder(config.stateFile);
  const pid = held !== null && Number.isNaN(held) ? 0 : held; // 0: running, its pid not written yet
  const target = describeTarget(config);
  const pending = st.pending ?? 0;
  const down = st.downSince !== undefined;
  const missing = st.sourceMissing !== undefined;
  const now = Date.now();
  // Older DBs kept only names; their age is unknown.
  const pendingFiles = st.pendingFiles ?? (st.pendingSample ?? []).map((path) => ({ path, since: null as number | null }));
  const report = {
    target, source: config.sourceDir, sourceMissingSince: iso(st.sourceMissing), stateFile: config.stateFile, initialised, stateProblem: problem?.message ?? null, files, pending,
    pendingSample: pendingFiles.map((p) => p.path),
    pendingFiles: pendingFiles.map((p) => ({ path: p.path, since: iso(p.since ?? undefined), ageSeconds: p.since === null ? null : Math.round((now - p.since) / 1000) })),
    lag, lagAsOf: lagTime === null ? null : iso(lagTime), reachable: !down, downSince: iso(st.downSince), lastPass: withIso(st.lastPass),
    lastBatch: withIso(st.lastBatch), lastVerify: withIso(st.lastVerify), lastError: withIso(st.lastError), running: pid,
    fenced: fence === null ? null : { since: iso(fence.since), kind: fence.kind, files: fence.files, conflicts: fence.conflicts, promotion: fence.promotion ?? null },
    firstSyncUnfinished: firstSync === null ? null : { since: iso(firstSync.started), syncedThrough: firstSync.after },
    history: history === null ? null : { bytes: history.bytes, first: iso(history.first ?? undefined), last: iso(history.last ?? undefined), prunedBefore: iso(history.prunedBefore ?? undefined), dbBytes: history.dbBytes, freeBytes: history.freeBytes },
  };
  const code = problem !== null ? problem.exitCode : fence !== null ? ExitCode.Fenced : pending > 0 || down || missing || firstSync !== null ? ExitCode.Pending : ExitCode.Ok;
  if (flags.json) return { text: `${safeJson(report)}\n`, code };
  const c = pc.createColors(process.stdout.isTTY === true && !(env.NO_COLOR ?? ""));
  const when = (t: number) => formatTimestamp(new Date(t)).slice(0, 19);
  const rows: Array<[string, string]> = [
    ["source", missing ? `${config.sourceDir} ${c.red(`MISSING since ${when(st.sourceMissing as number)}: nothing is replicated until it is back`)}` : config.sourceDir],
    ["state DB", problem !== null ? `${config.stateFile} ${c.red(`(${problem.message.replace(`state_file ${config.stateFile}`, "").replace(/^[:\s]+/, "")})`)}`
      : initialised ? config.stateFile : `${config.stateFile} ${c.yellow("(not created yet: run rrdsync --once)")}`],
    ["files tracked", `${files.toLocaleString("en-US")}${firstSync === null ? "" : c.yellow(` (a first sync begun ${when(firstSync.started)} is unfinished: synced through ${firstSync.after === null ? "nothing yet" : safeJson(firstSync.after)}; the next run goes on from there)`)}`],
    ["pending", pending === 0 ? c.green("0") : c.red(`${pending}${pendingFiles.length ? `: ${pendingFiles.slice(0, 5).map((p) => `${quoteName(p.path)}${p.since === null ? "" : ` (${age(now - p.since)})`}`).join(", ")}${pending > 5 ? ", …" : ""}` : ""}`)],
    ["replica lag", missing ? "unknown while the source is missing" : lag === null || lag.rrds === 0 ? "no RRDs tracked" : `${lagLine(lag, c)}${lagTime === null ? "" : c.dim(` as of ${when(lagTime)} (the last pass or batch; --lag looks at every RRD now)`)}`],
    ["target", fence !== null ? c.red(`FENCED since ${when(fence.since)} (${fenceSummary(fence)})`)
      : down ? c.red(`DOWN since ${when(st.downSince as number)}`) : st.lastBatch || st.lastPass ? c.green("reachable (last contact succeeded)") : "not contacted yet"],
    ["last pass", st.lastPass ? `${when(st.lastPass.time)}: ${st.lastPass.scanned} scanned, ${st.lastPass.sent} sent, ${st.lastPass.pending} pending, ${st.lastPass.seconds} s` : "none yet"],
    ["last batch", st.lastBatch ? `${when(st.lastBatch.time)}: ${plural(st.lastBatch.files, "file")}, ${formatBytes(st.lastBatch.bytes)}` : "none yet"],
    ["history", history === null ? "none yet" : historyLine(history, when)],
    ["last verify", st.lastVerify ? `${when(st.lastVerify.time)}: ${verifyLine(st.lastVerify)}` : "never (rrdsync verify)"],
    ["last error", st.lastError ? `${when(st.lastError.time)}: ${escapeLine(st.lastError.message)}` : "none"],
    ["running", pid === null ? "no rrdsync running for this state file" : c.green(pid === 0 ? "yes (its pid is not written yet)" : `yes, pid ${pid}`)],
  ];
  if (problem?.hint) rows.splice(2, 0, ["", c.dim(problem.hint)]);
  if (fence !== null) {
    const at = rows.findIndex(([k]) => k === "target") + 1;
    rows.splice(at, 0, ["", c.dim(`nothing is written, deleted or moved there: rrdsync unfence${targetOption(config)} shows the ways on`)]);
  }
  return { text: `${c.bold(target)}\n${rows.map(([k, v]) => `  ${k.padEnd(14)}${v}`).join("\n")}\n`, code };
}

/** The change history in the state DB: its size as retention counts it, its span, the DB file around it. */
export interface HistoryFacts {
  bytes: number;
  first: number | null;
  last: number | null;
  prunedBefore: number | null;
  dbBytes: number;
  freeBytes: number;
  incremental: boolean;
}

export function historyFacts(store: StateStore): HistoryFacts {
  const span = store.historySpan();
  const p = store.pages();
  return { bytes: store.historySize(), ...span, prunedBefore: store.historyPrunedBefore(), dbBytes: p.total * p.size, freeBytes: p.free * p.size, incremental: p.incremental };
}

/** "1.2 MiB from 2026-09-08 21:00:00 to 2026-12-07 21:00:00 (older pruned); state DB 300.0 MiB, 2.0 MiB free" */
export function historyLine(h: HistoryFacts, when: (t: number) => string): string {
  const span = h.first === null ? "no entries" : `from ${when(h.first)} to ${when(h.last as number)}${h.prunedBefore !== null ? " (older pruned)" : ""}`;
  return `${formatBytes(h.bytes)}, ${span}; state DB ${formatBytes(h.dbBytes)}, ${formatBytes(h.freeBytes)} of it free${h.incremental ? "" : " (reused, not given back: no incremental auto-vacuum)"}`;
}

/** "0 s", "42 s", "12 min", "3.5 h", "2.1 d": an age or a lag at a glance. */
export function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86_400).toFixed(1)} d`;
}

function lagLine(l: ReplicaLag, c: ReturnType<typeof pc.createColors>): string {
  const text = `max ${age(l.maxSeconds * 1000)}, median ${age(l.medianSeconds * 1000)} (${l.behind.toLocaleString("en-US")} of ${l.rrds.toLocaleString("en-US")} RRDs behind${l.estimated > 0 ? `; ${l.estimated} estimated from their mtime` : ""})`;
  return l.behind === 0 ? c.green(text) : l.maxSeconds > 900 ? c.red(text) : c.yellow(text);
}

/** One line for a verify record (status, check). */
export function verifyLine(v: VerifyRecord): string {
  if (v.error) return `could not complete: ${v.error}`;
  const what = `${v.checked.toLocaleString("en-US")} files${v.sample !== null ? ` (a ${v.sample}% sample)` : ""}${v.pattern ? ` matching ${JSON.stringify(v.pattern)}` : ""} in ${v.seconds} s`;
  const drift = v.differs + v.missing + v.newer + v.extra + v.errors;
  if (drift === 0) return `${what}: the replica matches${v.known > 0 ? ` (${v.known} pending or kept)` : ""}`;
  const parts = ([["differ", v.differs], ["missing", v.missing], ["newer there", v.newer], ["extra", v.extra], ["unreadable", v.errors]] as const).filter(([, n]) => n > 0).map(([k, n]) => `${n} ${k}`);
  return `${what}: ${parts.join(", ")}${v.repaired + v.repairFailed > 0 ? `; ${v.repaired} repaired${v.repairFailed > 0 ? `, ${v.repairFailed} not` : ""}` : ""}`;
}

const iso = (t: number | undefined) => (t === undefined ? null : new Date(t).toISOString());
function withIso<T extends { time: number }>(v: T | undefined): (Omit<T, "time"> & { time: string }) | null {
  return v === undefined ? null : { ...v, time: new Date(v.time).toISOString() };
}

/** " --target NAME" when the config has several targets. */
export function targetOption(config: Config): string {
  return config.extraTargets.length > 0 ? ` --target ${JSON.stringify(describeTarget(config))}` : "";
}
