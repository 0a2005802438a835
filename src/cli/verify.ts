// `rrdsync verify [PATH|GLOB]`: the replica compared with the source by content, per target, printed as rclone
// check's --combined report (one marker and one path per line; `=` lines only with --combined), a summary line on
// stderr, or one JSON object per target. --repair sends the drift again through the ordinary engine; only it
// takes the target's lock (a plain verify reads, so it runs beside a daemon as `status` does).
import { allTargets, type Config } from "../config/types.ts";
import { closeTarget, type OpenTarget, openTarget, TargetEngine } from "../engine/target.ts";
import { KNOWN_MARKER, MARKERS, NEWER_WORDS, repairable, type VerifyEntry, verifyRecord, verifyReplica, type VerifySummary } from "../engine/verify.ts";
import { KEPT_DIR, keptDirFor, parseMarker, PROMOTED_MARKER } from "../transport/marker.ts";
import { ExitCode, UserError } from "../errors.ts";
import { escapeLine, safeJson } from "../escape.ts";
import { type Logger } from "../log.ts";
import { formatBytes } from "../text.ts";
import { parsePattern, type PathPattern } from "../source/pattern.ts";
import { identityOf } from "../store/identity.ts";
import { StateStore } from "../store/state.ts";
import { displayPath } from "../track/changelog.ts";
import { createTransport, describeTarget } from "../transport/create.ts";
import type { Transport } from "../transport/types.ts";
import { isOutputClosed, writeOut } from "./out.ts";
import { ProgressLine } from "./progress.ts";

export interface VerifyFlags {
  repair?: boolean;
  overwrite?: boolean;
  sample?: string | number;
  json?: boolean;
  combined?: boolean;
  quiet?: boolean;
}

/** "10%", "10", "0.5%" → 10, 10, 0.5; anything else is a usage error. */
export function parseSample(v: string | number): number {
  const m = /^(\d+(?:\.\d+)?)%?$/.exec(String(v).trim());
  const n = m ? Number(m[1]) : Number.NaN;
  if (!(n > 0 && n <= 100)) throw new UserError(`--sample ${JSON.stringify(String(v))}: expected a share of the files like 10%`, ExitCode.Usage, "a percentage above 0 and at most 100, e.g. --sample 10%");
  return n;
}

/**
 * stdout in pieces of ~64 KiB, each handed to writeOut after the one before it was taken (a slow reader holds at
 * most what is queued, never a torn or repeated line); a reader that went away (`| head`) ends the report, not the
 * run. `end` waits for the last piece.
 */
class Report {
  private buf = "";
  private closed = false;
  private chain: Promise<void> = Promise.resolve();

  constructor() {
    // The stream also emits the failed write as an 'error' event: unheard, it would end the run (the reader is gone:
    // nothing failed, there is just nobody left to print for).
    process.stdout.on("error", (e) => {
      if (!isOutputClosed(e)) throw e;
      this.closed = true;
    });
  }

  write(s: string): void {
    if (this.closed) return;
    this.buf += s;
    if (this.buf.length > 65536) this.flush();
  }

  flush(): void {
    if (this.closed || this.buf === "") return;
    const chunk = this.buf;
    this.buf = "";
    this.chain = this.chain.then(async () => {
      if (this.closed) return;
      try {
        await writeOut(chunk);
      } catch (e) {
        if (!isOutputClosed(e)) throw e;
        this.closed = true;
      }
    });
  }

  async end(): Promise<void> {
    this.flush();
    await this.chain;
  }
}

export async function verifyCommand(config: Config, patternArg: string | undefined, flags: VerifyFlags, log: Logger, signal: AbortSignal): Promise<ExitCode> {
  let pattern: PathPattern | null = null;
  if (patternArg !== undefined) {
    pattern = parsePattern(patternArg, config.sourceDir);
    if (pattern === null) throw new UserError(`${JSON.stringify(patternArg)}: not inside source_dir (${config.sourceDir})`, ExitCode.Usage, "give a path relative to source_dir (or absolute inside it), or a glob like 'snmp/*/ifInOctets.rrd'");
    if (pattern.text === "") pattern = null;
  }
  const sample = flags.sample === undefined ? null : parseSample(flags.sample);
  const targets = allTargets(config);
  const out = new Report();
  const line = log.wantsProgress() && !flags.json ? new ProgressLine(process.stderr, (t) => log.colors().dim(t)) : null;
  log.progressLine = line;
  let worst: ExitCode = ExitCode.Ok;
  try {
    for (const c of targets) {
      if (signal.aborted) break;
      if (targets.length > 1 && !flags.json) out.write(`# ${describeTarget(c)}\n`);
      const code = await verifyTarget(c, { pattern, sample, flags, log, out, line, signal });
      worst = Math.max(worst, code) as ExitCode;
    }
  } finally {
    line?.clear();
    await out.end();
  }
  return signal.aborted ? ExitCode.Pending : worst;
}

interface Ctx {
  pattern: PathPattern | null;
  sample: number | null;
  flags: VerifyFlags;
  log: Logger;
  out: Report;
  line: ProgressLine | null;
  signal: AbortSignal;
}

async function verifyTarget(config: Config, x: Ctx): Promise<ExitCode> {
  const { flags, out, line, log, signal } = x;
  const name = describeTarget(config);
  // --repair writes through the engine: the target's lock, as --once takes it (exit 3 beside a running daemon).
  let opened: OpenTarget | null = null;
  let store: StateStore | null;
  let transport: Transport;
  if (flags.repair) {
    opened = openTarget(config, log);
    store = opened.store;
    transport = opened.transport;
  } else {
    // What the DB says is on the replica is only true of the pair it describes: another pair's DB is exit 2.
    store = StateStore.openExisting(config.stateFile, identityOf(config));
    transport = createTransport(config, log);
  }
  try {
    // A promoted standby is not compared (its data is newer everywhere): said, exit 4, as --once would.
    const contact = await transport.replicaState([], signal);
    if (contact.marker !== null) {
      const m = "text" in contact.marker ? parseMarker(contact.marker.text) : null;
      const why = m === null ? `${config.target.destDir}/${PROMOTED_MARKER} marks the standby as promoted` : `the standby ${m.host} was promoted at ${m.promotedAt} (rrdsync promote)`;
      log.error(`verify ${name}: not compared: ${why}; rrdsync failback, or point this rrdsync at the new standby (README: Failover and failback)`);
      if (flags.json) out.write(`${safeJson({ target: name, promoted: m ?? true, ok: false })}
`);
      return ExitCode.Fenced;
    }
    const listed: VerifyEntry[] = [];
    const s = await verifyReplica({ config, store, transport }, {
      pattern: x.pattern,
      samplePercent: x.sample,
      signal,
      nameSame: flags.combined === true,
      onEntry: (e) => {
        if (e.kind === "same" && !flags.combined) return;
        if (flags.json) {
          if (e.kind !== "same") listed.push(e);
          return;
        }
        line?.clear();
        out.write(`${e.known === null ? MARKERS[e.kind] : KNOWN_MARKER} ${displayPath(e.path)}\n`);
      },
      onProgress: line ? (n, total) => line.show(() => `… ${n.toLocaleString("en-US")}${total === null ? "" : ` of ${total.toLocaleString("en-US")}`} files checked · ${name}`) : undefined,
    });
    line?.clear();
    out.flush();
    let repaired = 0;
    let repairFailed = 0;
    const todo = flags.repair && s.error === null && !signal.aborted ? repairable(s, { overwrite: flags.overwrite === true }) : [];
    let fenced = false;
    if (todo.length > 0 && opened) {
      log.info(`verify --repair: sending ${todo.length} files again to ${name}`);
      const engine = new TargetEngine(opened, log, { onProgress: line ? (p) => line.update(p) : undefined }, { daemon: false, repairOnly: true });
      if (flags.overwrite) engine.ctx.guard.mode = { kind: "overwrite", keptDir: keptDirFor(new Date()), by: "verify --repair --overwrite" };
      const ps = await engine.repair(todo, signal);
      line?.clear();
      repaired = ps.repaired;
      repairFailed = ps.pending + ps.changedDuringSend;
      fenced = ps.fenced;
      if (fenced) log.error(`verify --repair ${name}: not repaired: the target is fenced (the standby was written to behind rrdsync); rrdsync unfence shows the ways on`);
      else if (flags.overwrite && engine.ctx.guard.resolved.kept > 0) log.warn(`verify --repair --overwrite ${name}: ${engine.ctx.guard.resolved.kept} standby copies kept in ${config.target.destDir}/${(engine.ctx.guard.mode as { keptDir?: string }).keptDir ?? ""}/`);
    }
    try {
      store?.setStatus({ lastVerify: verifyRecord(s, { pattern: x.pattern?.text ?? null, sample: x.sample, repaired, repairFailed }) });
    } catch (e) {
      log.debug(`verify not recorded in the status: ${(e as Error).message}`);
    }
    const drift = s.drift.length;
    const ok = s.error === null && drift - repaired === 0 && !signal.aborted;
    if (flags.json) {
      out.write(`${safeJson(jsonReport(name, s, x, listed, repaired, repairFailed))}\n`);
    } else if (!flags.quiet) {
      line?.clear();
      const c = log.colors();
      process.stderr.write(`${ok ? c.green("✓") : c.red("✗")} ${escapeLine(summaryText(name, s, x, repaired, repairFailed))}\n`);
    }
    if (s.error !== null) log.error(`verify ${name}: could not complete: ${s.error}`);
    else log.info(`verify ${name}: ${summaryText(name, s, x, repaired, repairFailed)}`);
    if (fenced) return ExitCode.Fenced;
    return ok ? ExitCode.Ok : ExitCode.Pending;
  } finally {
    if (opened) await closeTarget(opened);
    else {
      await transport.close();
      store?.close();
    }
  }
}

function summaryText(name: string, s: VerifySummary, x: Ctx, repaired: number, repairFailed: number): string {
  const n = (v: number) => v.toLocaleString("en-US");
  const scope = s.sample
    ? `a random ${s.sample.percent}% sample: ${n(s.sample.files)} of ${n(s.sample.of)} files${x.pattern ? ` matching ${JSON.stringify(x.pattern.text)}` : ""}`
    : `${n(s.checked)} files${x.pattern ? ` matching ${JSON.stringify(x.pattern.text)}` : ""}`;
  const head = `verify ${name}: ${scope} checked in ${s.seconds.toFixed(1)} s${s.bytesRead > 0 ? ` (${formatBytes(s.bytesRead)} read back)` : ""}`;
  if (s.error !== null) return `${head}: could not complete: ${s.error}`;
  const parts = ([["differ (*)", s.differs], ["missing (-)", s.missing], [`${NEWER_WORDS.replace(" (a conflict)", "")} (>: conflicts, never overwritten but by --repair --overwrite)`, s.newer], ["extra on the replica (+)", s.extra], ["could not be read (!)", s.errors]] as const)
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `${n(v)} ${k}`);
  // Nothing rrdsync did not know of; the replica only "matches" when nothing differs at all.
  if (parts.length === 0) parts.push(s.known === 0 ? "the replica matches" : "no drift");
  if (s.known > 0) parts.push(`${n(s.known)} pending or kept (~: rrdsync knows of them)`);
  if (!s.extrasChecked) parts.push("extra files not looked for (--sample)");
  if (repaired + repairFailed > 0) parts.push(`${n(repaired)} repaired${repairFailed > 0 ? `, ${n(repairFailed)} could not be` : ""}`);
  else if (s.differs + s.missing > 0 && !x.flags.repair) parts.push("rrdsync verify --repair sends them again");
  if (s.newer > 0 && !(x.flags.repair && x.flags.overwrite)) parts.push(`rrdsync verify --repair --overwrite keeps the standby's copies of the ${n(s.newer)} conflicts in ${KEPT_DIR}/ on the standby and sends ours`);
  if (s.extra > 0) parts.push("extra files are never deleted by rrdsync: remove them on the standby if they do not belong there");
  return `${head}: ${parts.join(", ")}`;
}

function jsonReport(name: string, s: VerifySummary, x: Ctx, entries: VerifyEntry[], repaired: number, repairFailed: number) {
  return {
    target: name, pattern: x.pattern?.text ?? null, sample: s.sample, checked: s.checked, same: s.same,
    differs: s.differs, missing: s.missing, newer: s.newer, extra: s.extra, errors: s.errors, known: s.known,
    extrasChecked: s.extrasChecked, seconds: Number(s.seconds.toFixed(3)), bytesRead: s.bytesRead, error: s.error, repaired, repairFailed,
    ok: s.error === null && s.drift.length - repaired === 0,
    files: entries.map((e) => ({ path: e.path, marker: e.known === null ? MARKERS[e.kind] : KNOWN_MARKER, kind: e.kind, known: e.known, ...(e.error ? { error: e.error } : {}) })),
  };
}
