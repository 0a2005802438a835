// `rrdsync failback [--target NAME] [--dry-run]`: on the old primary, for a target that was promoted or fenced,
// bring what the standby collected back here (engine/failback.ts), make both sides equal and lift the fence;
// --dry-run says per file what it would do and changes nothing on either side. Takes the target's lock as --once.
import type { Config } from "../config/types.ts";
import { type FailbackFile, type FailbackPhase, type FailbackReport, failbackTarget } from "../engine/failback.ts";
import { closeTarget, openTarget, TargetEngine } from "../engine/target.ts";
import { ExitCode } from "../errors.ts";
import type { Logger } from "../log.ts";
import { quoteName } from "../names.ts";
import { describeTarget } from "../transport/create.ts";
import { ProgressLine } from "./progress.ts";
import { writeOut } from "./out.ts";
import { selectTargets } from "./unfence.ts";

export interface FailbackFlags {
  target?: string;
  dryRun?: boolean;
}

const WORDS: Record<FailbackPhase, string> = { listing: "listing the standby", comparing: "comparing", pulling: "pulling", merging: "merging", sending: "sending" };

export async function failbackCommand(config: Config, flags: FailbackFlags, log: Logger, signal: AbortSignal): Promise<ExitCode> {
  let worst: ExitCode = ExitCode.Ok;
  for (const c of selectTargets(config, flags.target)) worst = Math.max(worst, await one(c, flags, log, signal)) as ExitCode;
  return worst;
}

async function one(c: Config, flags: FailbackFlags, log: Logger, signal: AbortSignal): Promise<ExitCode> {
  const name = describeTarget(c);
  const dry = flags.dryRun === true;
  const line = log.wantsProgress() ? new ProgressLine(process.stderr, (t) => log.colors().dim(t)) : null;
  log.progressLine = line;
  const o = openTarget(c, log); // the lock: exit 3 beside a running daemon
  let r: FailbackReport;
  try {
    let current: FailbackPhase = "listing";
    const engine = new TargetEngine(o, log, { onProgress: line ? (p) => current === "sending" && line.update(p) : undefined }, { daemon: false });
    log.info(`failback${dry ? " --dry-run" : ""}: ${name}`);
    r = await failbackTarget(engine, {
      dryRun: dry,
      onPhase: line ? (phase, done, total) => {
        current = phase;
        line.show(() => `… ${WORDS[phase]}${total > 0 ? ` ${done.toLocaleString("en-US")}/${total.toLocaleString("en-US")} files` : done > 0 ? ` ${done.toLocaleString("en-US")} files` : ""}`);
      } : undefined,
    }, signal);
  } finally {
    line?.clear();
    log.progressLine = null;
    await closeTarget(o);
  }
  if (r.nothing) {
    await writeOut(`${name}: neither fenced nor promoted; nothing to fail back (rrdsync --once replicates as usual)\n`);
    return ExitCode.Ok;
  }
  const out: string[] = [];
  const how = r.promoted ? "promoted" : "fenced";
  out.push(dry ? `${name}: ${how}; failback would do (nothing is changed on either side):` : `${name}: failback (${how}): ${r.listed.toLocaleString("en-US")} files on the standby, ${r.files.length} not as rrdsync delivered them`);
  for (const f of r.files) out.push(`  ${label(f, dry)} ${quoteName(f.path)}: ${f.detail}`);
  if (r.files.length === 0) out.push("  no file on the standby differs from what rrdsync delivered");
  const left = r.files.filter((f) => f.outcome === "left" || f.outcome === "failed");
  if (r.error !== null) {
    log.error(`${name}: failback stopped: ${r.error}`);
    out.push(`${name}: failback stopped: ${r.error}.`, "  Nothing is lost: what was merged here stays merged; run rrdsync failback again (it converges).");
    await writeOut(`${out.join("\n")}\n`);
    return r.errorCode ?? ExitCode.Pending;
  }
  if (dry) {
    out.push(r.promoted ? "  then: remove the promotion marker on the standby, send the merged files, lift the fence" : "  then: send the merged files, lift the fence");
    await writeOut(`${out.join("\n")}\n`);
    return left.length > 0 ? ExitCode.Pending : ExitCode.Ok;
  }
  const sent = r.stats.reduce((n, s) => n + s.sent + s.repaired, 0);
  const pending = r.stats.reduce((n, s) => n + s.pending, 0);
  out.push(`  ${sent} file${sent === 1 ? "" : "s"} sent to the standby${pending > 0 ? `, ${pending} pending (named in the log; the next run retries them)` : ""}${r.marker === "cleared" ? "; the promotion marker removed" : ""}.`);
  if (left.length > 0) {
    out.push(`  ${left.length} file${left.length === 1 ? "" : "s"} left on both sides as they are (not merged): ${left.slice(0, 10).map((f) => quoteName(f.path)).join(", ")}${left.length > 10 ? ", …" : ""}`);
    out.push("  The target stays fenced for them: settle them with rrdsync unfence --overwrite or --keep-replica (or by hand, then failback again).");
    for (const f of left) log.error(`failback: ${quoteName(f.path)} not merged: ${f.detail}`);
  } else {
    out.push(`${name}: failed back: both sides hold every row; the fence is lifted and replication goes on as before.`);
  }
  await writeOut(`${out.join("\n")}\n`);
  log.info(`${name}: failback: ${r.files.length} files settled, ${left.length} left, ${sent} sent${r.lifted ? ", fence lifted" : ""}`);
  return left.length > 0 || pending > 0 ? ExitCode.Pending : ExitCode.Ok;
}

function label(f: FailbackFile, dry: boolean): string {
  const w = dry ? { merged: "merge", taken: "take", "kept ours": "keep", copied: "copy", left: "leave", failed: "FAIL" }[f.outcome] : f.outcome === "kept ours" ? "kept" : f.outcome;
  return w.padEnd(7);
}
