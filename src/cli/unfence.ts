// `rrdsync unfence [--target NAME] [--overwrite | --keep-replica]`: without a choice it explains the fence of each
// fenced target and the ways on (and reads only, beside a daemon); with one it settles every file the standby
// changed that way and lifts the fence (engine/unfence.ts), taking the target's lock as --once does.
import { allTargets, type Config } from "../config/types.ts";
import { closeTarget, openTarget, TargetEngine } from "../engine/target.ts";
import { fenceMessage } from "../engine/guard.ts";
import { type UnfenceHow, unfenceTarget } from "../engine/unfence.ts";
import { CONFLICT_WORDS, type Conflict } from "../engine/policy/conflict.ts";
import { ExitCode, UserError } from "../errors.ts";
import { formatTimestamp, type Logger } from "../log.ts";
import { quoteName } from "../names.ts";
import { type FenceRecord, readFence, type SideNote } from "../store/fence.ts";
import { StateStore } from "../store/state.ts";
import { describeTarget } from "../transport/create.ts";
import { FENCED_MARKER, KEPT_DIR, PROMOTED_MARKER } from "../transport/marker.ts";
import { writeOut } from "./out.ts";
import { targetOption } from "./status.ts";

export interface UnfenceFlags {
  target?: string;
  overwrite?: boolean;
  keepReplica?: boolean;
}

/** The names a target answers to for --target: its name in "targets", how status names it, its host:port, its path. */
function namesOf(root: Config, c: Config, i: number): string[] {
  const t = c.target;
  const names = [describeTarget(c), t.destDir, t.host, `${t.host}:${t.port}`, `${t.user ? `${t.user}@` : ""}${t.host}:${t.destDir}`];
  if (i > 0) names.push(root.extraTargets[i - 1]?.name ?? "");
  return names.filter((n) => n !== "");
}

export function selectTargets(config: Config, name: string | undefined): Config[] {
  const all = allTargets(config);
  if (name === undefined) return all;
  const hit = all.filter((c, i) => namesOf(config, c, i).includes(name));
  if (hit.length === 0) {
    throw new UserError(`--target ${JSON.stringify(name)}: no such target`, ExitCode.Usage, `the targets: ${all.map((c) => JSON.stringify(describeTarget(c))).join(", ")} (or a target's name, host:port, or destination path)`);
  }
  return hit;
}

export async function unfenceCommand(config: Config, flags: UnfenceFlags, log: Logger, signal: AbortSignal): Promise<ExitCode> {
  if (flags.overwrite && flags.keepReplica) throw new UserError("--overwrite and --keep-replica exclude each other", ExitCode.Usage, "pick one: which side's files win");
  const targets = selectTargets(config, flags.target);
  const how: UnfenceHow | null = flags.overwrite ? "overwrite" : flags.keepReplica ? "keep" : null;
  let worst: ExitCode = ExitCode.Ok;
  let fencedAny = false;
  for (const c of targets) {
    const fence = readOnly(c);
    if (fence === null) {
      if (targets.length === 1 || flags.target !== undefined) await writeOut(`${describeTarget(c)}: not fenced; nothing to do (as its state DB says: a fence recorded on the standby in ${c.target.destDir}/${FENCED_MARKER} is found by the next run, or by rrdsync check)\n`);
      continue;
    }
    fencedAny = true;
    if (how === null) {
      await writeOut(explain(c, fence));
      worst = Math.max(worst, ExitCode.Fenced) as ExitCode;
      continue;
    }
    worst = Math.max(worst, await settle(c, how, log, signal)) as ExitCode;
  }
  if (!fencedAny && targets.length > 1 && flags.target === undefined) await writeOut("no target is fenced; nothing to do\n");
  return worst;
}

function readOnly(c: Config): FenceRecord | null {
  const store = StateStore.openExisting(c.stateFile);
  if (store === null) return null;
  try {
    return readFence(store);
  } finally {
    store.close();
  }
}

async function settle(c: Config, how: UnfenceHow, log: Logger, signal: AbortSignal): Promise<ExitCode> {
  const name = describeTarget(c);
  const o = openTarget(c, log); // the lock: exit 3 beside a running daemon
  try {
    const engine = new TargetEngine(o, log, {}, { daemon: false });
    log.info(`unfence ${how === "overwrite" ? "--overwrite" : "--keep-replica"}: ${name}`);
    const r = await unfenceTarget(engine, how, signal);
    const where = r.keptDir === null ? null : `${c.target.destDir}/${r.keptDir}`;
    if (r.blind) {
      log.error(`${name}: not unfenced: ${r.refused}`);
      await writeOut(`${name}: not unfenced: ${r.refused}.\n` +
        `  Put back the state DB that fenced it (--rebuild-state kept the old one beside ${c.stateFile}; or point state_file at it),\n` +
        "  then run this again: it knows which files the standby changed and settles exactly those.\n" +
        "  If the standby collected data (it was promoted), do not overwrite it: rrdsync failback.\n" +
        `  To let this host's files win without that DB: remove ${c.target.destDir}/${FENCED_MARKER} on the standby, then run this again\n` +
        "  (the first sync then replaces every standby copy that is not newer than this host's, without keeping it).\n");
      return ExitCode.Fenced;
    }
    if (r.refused !== null) {
      log.error(`${name}: not unfenced: ${r.refused}`);
      await writeOut(`${name}: not unfenced: ${r.refused} (${c.target.destDir}/${PROMOTED_MARKER} on the standby).\n` +
        "  The ways on: rrdsync failback, or point this rrdsync at the new standby. If the promotion was a mistake,\n" +
        `  remove ${c.target.destDir}/${PROMOTED_MARKER} on the standby first (nothing else there is touched), then run this again.\n`);
      return ExitCode.Fenced;
    }
    const pending = r.stats.reduce((n, s) => n + s.pending, 0);
    const sent = r.stats.reduce((n, s) => n + s.sent, 0);
    if (!r.lifted) {
      log.error(`${name}: not unfenced: ${r.error ?? "?"}; the fence stays, run unfence again`);
      await writeOut(`${name}: still fenced: ${r.error ?? "?"}. Nothing was lost; run it again when the standby can be reached (and written).\n`);
      return ExitCode.Pending;
    }
    const lines = [`${name}: unfenced.`];
    if (how === "overwrite") {
      lines.push(`  ${r.kept} file${r.kept === 1 ? "" : "s"} the standby changed: its copies are kept on the standby in ${where}/, ours written over them.`);
    } else {
      lines.push(`  ${r.accepted} file${r.accepted === 1 ? "" : "s"} the standby changed: its versions are kept and taken as delivered (not sent).`);
      lines.push("  This host's next change to such a file replaces it as usual: stop rrdsync here, or re-point it, to keep the standby's data for good.");
    }
    lines.push(`  ${sent} file${sent === 1 ? "" : "s"} sent${pending > 0 ? `, ${pending} pending (named in the log; the next run retries them)` : ""}. Replication goes on as before.`);
    await writeOut(`${lines.join("\n")}\n`);
    log.info(`${name}: unfenced (${how === "overwrite" ? `${r.kept} standby copies kept in ${where}` : `${r.accepted} standby versions kept`}, ${sent} sent, ${pending} pending)`);
    return pending > 0 ? ExitCode.Pending : ExitCode.Ok;
  } finally {
    await closeTarget(o);
  }
}

const side = (s: SideNote | null) => (s === null ? "deleted here" : `${s.size.toLocaleString("en-US")} bytes, mtime ${s.mtime}${s.lastUpdate ? `, last update ${s.lastUpdate}` : ""}`);

/** What the fence is, and the choices, for an admin at 3 a.m. */
function explain(c: Config, f: FenceRecord): string {
  const name = describeTarget(c);
  const t = targetOption(c);
  const out = [`${name}: FENCED since ${formatTimestamp(new Date(f.since)).slice(0, 19)}`, `  ${fenceMessage(name, f).slice(name.length + 2)}`, ""];
  if (f.kind === "promoted") {
    out.push(
      "The standby was promoted: OpenNMS writes there now, and this host's files are older. Do not overwrite it.",
      "  rrdsync failback               bring what the standby collected back to this host (README: Failover and failback)",
      "  or point this rrdsync at the new standby (remote_sync in the config), and stop it here meanwhile.",
      `If the promotion was a mistake: remove ${c.target.destDir}/${PROMOTED_MARKER} on the standby, then choose as below.`,
    );
  } else {
    for (const n of f.conflicts.slice(0, 10)) {
      out.push(`  ${quoteName(n.path)}: ${CONFLICT_WORDS[n.why as Conflict] ?? n.why}`);
      // a fence taken from the standby's marker names the files only
      if (f.standby === undefined) out.push(`      standby: ${side(n.replica)}`, `      here:    ${side(n.ours)}`);
    }
    if (f.standby !== undefined) {
      out.push(`  (found on the standby in ${c.target.destDir}/${FENCED_MARKER}${f.standby.unreadable === undefined ? `, written by ${f.standby.host}` : ""}: this state DB did not know the fence)`);
    }
    if (f.files > 10) out.push(`  … and ${f.files - 10} more (rrdsync log --kind conflict)`);
    out.push("", "The standby was written to behind rrdsync. If it was promoted (OpenNMS runs there), do not overwrite it:",
      "  rrdsync failback               bring what the standby collected back to this host (README: Failover and failback)",
      "Otherwise choose, for every file the standby changed:");
  }
  out.push(
    `  rrdsync unfence${t} --overwrite      this host's files win: each standby copy they replace is kept first, on the standby, in ${c.target.destDir}/${KEPT_DIR}/<time>/`,
    `  rrdsync unfence${t} --keep-replica   the standby's versions win: they are kept and stop being pending (this host's next change to such a file replaces it)`,
    "Both take the lock: stop a running daemon first (systemctl stop rrdsync) and start it again afterwards.",
    "",
  );
  return out.join("\n");
}
