// `rrdsync status`: what the state DB says about the target: files tracked, pending, the last pass and batch,
// reachable or down since when, the last error; and whether an rrdsync is running now. Exit 1 when something is
// pending or the target is down, so a monitoring check can use it as is.
import pc from "picocolors";
import { allTargets, type Config } from "../config/types.ts";
import { ExitCode } from "../errors.ts";
import { formatBytes, formatTimestamp } from "../log.ts";
import { lockHolder } from "../store/lock.ts";
import { StateStore } from "../store/state.ts";
import { FIRST_SYNC_KEY, type StatusRecord } from "../store/status.ts";
import { describeTarget } from "../transport/create.ts";

/** One block (or one JSON line) per target; exit 1 if any target has files pending or is down. */
export function showStatus(config: Config, flags: { json?: boolean }, env: Record<string, string | undefined>): ExitCode {
  const codes = allTargets(config).map((c) => showTarget(c, flags, env));
  return Math.max(...codes) as ExitCode;
}

function showTarget(config: Config, flags: { json?: boolean }, env: Record<string, string | undefined>): ExitCode {
  const store = StateStore.openExisting(config.stateFile);
  let files = 0;
  let st: StatusRecord = {};
  let firstSync: { after: string | null; started: number } | null = null;
  if (store !== null) {
    try {
      files = store.countFiles();
      st = store.status();
      firstSync = store.meta(FIRST_SYNC_KEY);
    } finally {
      store.close();
    }
  }
  const pid = lockHolder(config.stateFile);
  const target = describeTarget(config);
  const pending = st.pending ?? 0;
  const down = st.downSince !== undefined;
  const missing = st.sourceMissing !== undefined;
  const report = {
    target, source: config.sourceDir, sourceMissingSince: iso(st.sourceMissing), stateFile: config.stateFile, initialised: store !== null, files, pending,
    pendingSample: st.pendingSample ?? [], reachable: !down, downSince: iso(st.downSince), lastPass: withIso(st.lastPass),
    lastBatch: withIso(st.lastBatch), lastError: withIso(st.lastError), running: pid,
    firstSyncUnfinished: firstSync === null ? null : { since: iso(firstSync.started), syncedThrough: firstSync.after },
  };
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } else {
    const c = pc.createColors(process.stdout.isTTY === true && !(env.NO_COLOR ?? ""));
    const when = (t: number) => formatTimestamp(new Date(t)).slice(0, 19);
    const rows: Array<[string, string]> = [
      ["source", missing ? `${config.sourceDir} ${c.red(`MISSING since ${when(st.sourceMissing as number)}: nothing is replicated until it is back`)}` : config.sourceDir],
      ["state DB", store === null ? `${config.stateFile} ${c.yellow("(not created yet: run rrdsync --once)")}` : config.stateFile],
      ["files tracked", `${files.toLocaleString("en-US")}${firstSync === null ? "" : c.yellow(` (a first sync begun ${when(firstSync.started)} is unfinished: synced through ${firstSync.after === null ? "nothing yet" : JSON.stringify(firstSync.after)}; the next run goes on from there)`)}`],
      ["pending", pending === 0 ? c.green("0") : c.red(`${pending}${st.pendingSample?.length ? `: ${st.pendingSample.slice(0, 5).map((p) => JSON.stringify(p)).join(", ")}${pending > 5 ? ", …" : ""}` : ""}`)],
      ["target", down ? c.red(`DOWN since ${when(st.downSince as number)}`) : st.lastBatch || st.lastPass ? c.green("reachable (last contact succeeded)") : "not contacted yet"],
      ["last pass", st.lastPass ? `${when(st.lastPass.time)}: ${st.lastPass.scanned} scanned, ${st.lastPass.sent} sent, ${st.lastPass.pending} pending, ${st.lastPass.seconds} s` : "none yet"],
      ["last batch", st.lastBatch ? `${when(st.lastBatch.time)}: ${st.lastBatch.files} files, ${formatBytes(st.lastBatch.bytes)}` : "none yet"],
      ["last error", st.lastError ? `${when(st.lastError.time)}: ${st.lastError.message}` : "none"],
      ["running", pid === null ? "no rrdsync running for this state file" : c.green(`yes, pid ${pid}`)],
    ];
    process.stdout.write(`${c.bold(target)}\n${rows.map(([k, v]) => `  ${k.padEnd(14)}${v}`).join("\n")}\n`);
  }
  return pending > 0 || down || missing || firstSync !== null ? ExitCode.Pending : ExitCode.Ok;
}

const iso = (t: number | undefined) => (t === undefined ? null : new Date(t).toISOString());
function withIso<T extends { time: number }>(v: T | undefined): (Omit<T, "time"> & { time: string }) | null {
  return v === undefined ? null : { ...v, time: new Date(v.time).toISOString() };
}
