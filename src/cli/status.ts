// `rrdsync status`: what the state DB says about the target: files tracked, pending, the last pass and batch,
// reachable or down since when, the last error; and whether an rrdsync is running now. Exit 1 when something is
// pending or the target is down, so a monitoring check can use it as is.
import pc from "picocolors";
import { allTargets, type Config } from "../config/types.ts";
import { ExitCode, UserError } from "../errors.ts";
import { escapeLine, safeJson } from "../escape.ts";
import { formatBytes, formatTimestamp } from "../log.ts";
import { plural } from "../engine/health.ts";
import { lockHolder } from "../store/lock.ts";
import { StateStore } from "../store/state.ts";
import type { StatusRecord } from "../store/status.ts";
import { describeTarget } from "../transport/create.ts";
import { writeOut } from "./out.ts";

/**
 * One block (or one JSON line) per target; exit 1 if any target has files pending or is down (or its state DB is
 * damaged), 2 if a state_file is some other program's file.
 */
export async function showStatus(config: Config, flags: { json?: boolean }, env: Record<string, string | undefined>): Promise<ExitCode> {
  const shown = allTargets(config).map((c) => showTarget(c, flags, env));
  await writeOut(shown.map((s) => s.text).join(""));
  return Math.max(...shown.map((s) => s.code)) as ExitCode;
}

/** The state DB's numbers, or why there are none: not made yet, or a file that is not (or no longer) a sound DB. */
function readState(stateFile: string): { files: number; st: StatusRecord; problem: UserError | null; initialised: boolean } {
  let store: StateStore | null;
  try {
    store = StateStore.openExisting(stateFile);
  } catch (e) {
    if (e instanceof UserError) return { files: 0, st: {}, problem: e, initialised: false };
    throw e;
  }
  if (store === null) return { files: 0, st: {}, problem: null, initialised: false };
  try {
    return { files: store.countFiles(), st: store.status(), problem: null, initialised: true };
  } finally {
    store.close();
  }
}

function showTarget(config: Config, flags: { json?: boolean }, env: Record<string, string | undefined>): { text: string; code: ExitCode } {
  const { files, st, problem, initialised } = readState(config.stateFile);
  const held = lockHolder(config.stateFile);
  const pid = held !== null && Number.isNaN(held) ? 0 : held; // 0: running, its pid not written yet
  const target = describeTarget(config);
  const pending = st.pending ?? 0;
  const down = st.downSince !== undefined;
  const missing = st.sourceMissing !== undefined;
  const report = {
    target, source: config.sourceDir, sourceMissingSince: iso(st.sourceMissing), stateFile: config.stateFile, initialised, stateProblem: problem?.message ?? null, files, pending,
    pendingSample: st.pendingSample ?? [], reachable: !down, downSince: iso(st.downSince), lastPass: withIso(st.lastPass),
    lastBatch: withIso(st.lastBatch), lastError: withIso(st.lastError), running: pid,
  };
  const code = problem !== null ? problem.exitCode : pending > 0 || down || missing ? ExitCode.Pending : ExitCode.Ok;
  if (flags.json) return { text: `${safeJson(report)}\n`, code };
  const c = pc.createColors(process.stdout.isTTY === true && !(env.NO_COLOR ?? ""));
  const when = (t: number) => formatTimestamp(new Date(t)).slice(0, 19);
  const rows: Array<[string, string]> = [
    ["source", missing ? `${config.sourceDir} ${c.red(`MISSING since ${when(st.sourceMissing as number)}: nothing is replicated until it is back`)}` : config.sourceDir],
    ["state DB", problem !== null ? `${config.stateFile} ${c.red(`(${problem.message.replace(`state_file ${config.stateFile}`, "").replace(/^[:\s]+/, "")})`)}`
      : initialised ? config.stateFile : `${config.stateFile} ${c.yellow("(not created yet: run rrdsync --once)")}`],
    ["files tracked", files.toLocaleString("en-US")],
    ["pending", pending === 0 ? c.green("0") : c.red(`${pending}${st.pendingSample?.length ? `: ${st.pendingSample.slice(0, 5).map((p) => safeJson(p)).join(", ")}${pending > 5 ? ", …" : ""}` : ""}`)],
    ["target", down ? c.red(`DOWN since ${when(st.downSince as number)}`) : st.lastBatch || st.lastPass ? c.green("reachable (last contact succeeded)") : "not contacted yet"],
    ["last pass", st.lastPass ? `${when(st.lastPass.time)}: ${st.lastPass.scanned} scanned, ${st.lastPass.sent} sent, ${st.lastPass.pending} pending, ${st.lastPass.seconds} s` : "none yet"],
    ["last batch", st.lastBatch ? `${when(st.lastBatch.time)}: ${plural(st.lastBatch.files, "file")}, ${formatBytes(st.lastBatch.bytes)}` : "none yet"],
    ["last error", st.lastError ? `${when(st.lastError.time)}: ${escapeLine(st.lastError.message)}` : "none"],
    ["running", pid === null ? "no rrdsync running for this state file" : c.green(pid === 0 ? "yes (its pid is not written yet)" : `yes, pid ${pid}`)],
  ];
  if (problem?.hint) rows.splice(2, 0, ["", c.dim(problem.hint)]);
  return { text: `${c.bold(target)}\n${rows.map(([k, v]) => `  ${k.padEnd(14)}${v}`).join("\n")}\n`, code };
}

const iso = (t: number | undefined) => (t === undefined ? null : new Date(t).toISOString());
function withIso<T extends { time: number }>(v: T | undefined): (Omit<T, "time"> & { time: string }) | null {
  return v === undefined ? null : { ...v, time: new Date(v.time).toISOString() };
}
