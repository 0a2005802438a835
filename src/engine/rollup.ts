// The roll-up of routine RRD updates (issue 25): an OpenNMS tree rewrites every RRD once per collection step, day
// and night, and nobody reads one entry per update. Routine updates advance their file's row in place (with a
// per-file counter); this ledger counts them per period (change_tracking.rrd_summary_interval) and writes one
// summary entry when a period ends, with the exceptions by name. It also finds RRDs that stopped updating while
// the rest of the tree goes on (rrd_stale_steps), each an entry of its own. Its record rides in the batch's
// commit (meta "rollup"), so a restart goes on counting the same period.
import type { ChangeTracking } from "../config/types.ts";
import type { ChangeRow, StateStore } from "../store/state.ts";
import { ROLLUP_KEY } from "../store/state.ts";
import type { ChangeLog } from "../track/changelog.ts";
import { staleBefore, treeClock } from "../track/rrd-routine.ts";
import { quoteName } from "../names.ts";
import { displayPath } from "../track/changelog.ts";
import type { EngineLog } from "./types.ts";

/** Names listed per kind of exception in a summary (the rest are counted; each has its own entry anyway). */
const NAMES_PER_KIND = 20;
/** How often the daemon looks for RRDs that stopped updating (one scan of the files table). */
const STALE_CHECK_MS = 60_000;
/** RRDs logged as stopped per check at most (the rest are found by the next checks). */
const STALE_PER_CHECK = 1000;

export interface LedgerRecord {
  /** the period's start (ms, a multiple of the interval) */
  since: number;
  /** routine updates confirmed in it */
  updates: number;
  /** the newest last update a routine update brought (seconds): the tree's clock for stale RRDs */
  newest: number | null;
  /** non-routine RRD events by kind: how many, and the first names */
  exceptions: Record<string, { n: number; names: string[] }>;
}

export class RollupLedger {
  private r: LedgerRecord;
  private readonly intervalMs: number;
  private staleCheckedAt = 0;

  constructor(
    private readonly store: StateStore,
    private readonly changeLog: ChangeLog,
    private readonly tracking: ChangeTracking,
    private readonly log: EngineLog,
  ) {
    this.intervalMs = tracking.rrdSummaryIntervalSeconds * 1000;
    const saved = store.meta<LedgerRecord>(ROLLUP_KEY);
    this.r = saved && typeof saved.since === "number" ? { ...saved, exceptions: saved.exceptions ?? {} } : this.fresh(Date.now(), null);
  }

  private fresh(now: number, newest: number | null): LedgerRecord {
    return { since: Math.floor(now / this.intervalMs) * this.intervalMs, updates: 0, newest, exceptions: {} };
  }

  /** The period routine rows are counted in (files.period). */
  get period(): number {
    return this.r.since;
  }

  get record(): LedgerRecord {
    return this.r;
  }

  /** A routine update confirmed (its last update, seconds). */
  routine(last: number): void {
    this.r.updates++;
    if (this.r.newest === null || last > this.r.newest) this.r.newest = last;
  }

  /** A non-routine RRD event, for the summary's exceptions (it is an entry of its own too). */
  exception(kind: string, path: string): void {
    const e = (this.r.exceptions[kind] ??= { n: 0, names: [] });
    e.n++;
    if (e.names.length < NAMES_PER_KIND) e.names.push(path);
  }

  /**
   * After a commit: the summary entry when the period is over, and (at most every minute, or always with
   * `force`) the look for RRDs that stopped updating. Returns the audit problems (a change log that cannot be
   * written: the entries stay in the state DB).
   */
  tick(now: number, force = false): number {
    if (!this.tracking.enabled) return 0;
    let problems = 0;
    if (this.tracking.rrdStaleSteps > 0 && (force || now - this.staleCheckedAt >= STALE_CHECK_MS)) {
      this.staleCheckedAt = now;
      problems += this.findStale(now);
    }
    if (now >= this.r.since + this.intervalMs) problems += this.summarize(now);
    return problems;
  }

  /** RRDs whose last update fell rrd_stale_steps of their steps behind the tree's clock: one entry each. */
  private findStale(now: number): number {
    const clock = treeClock(this.r.newest, now / 1000);
    if (clock === null) return 0;
    const before = new Map<number, number>();
    for (const l of this.store.layoutSteps()) before.set(l.id, staleBefore(l.step, clock, this.tracking.rrdStaleSteps));
    // Only RRDs seen updating (a routine update rolled up): an RRD dead since before rrdsync knew it is no news.
    const found = this.store.staleCandidates(before, STALE_PER_CHECK).filter((c) => c.updates > 0);
    if (found.length === 0) return 0;
    const changes: ChangeRow[] = [];
    for (const c of found) {
      const behind = Math.round(clock - c.last);
      const details = `RRD stopped updating: its last update ${iso(c.last)} is ${behind} s behind the tree's newest (${iso(clock)}), more than ${this.tracking.rrdStaleSteps} of its steps; collection for this node or interface may have broken. An entry follows when it updates again.`;
      changes.push({ time: now, path: c.path, kind: "rrd stale", summary: `stopped updating (last update ${iso(c.last)})`, details, added: 0, removed: 0 });
      this.exception("stopped updating", c.path);
    }
    this.log.info(`${found.length} RRD${found.length === 1 ? "" : "s"} stopped updating while the tree goes on: ${found.slice(0, 5).map((c) => quoteName(c.path)).join(", ")}${found.length > 5 ? ", …" : ""}`);
    return this.write(changes, () => this.store.commitStale(found.map((c) => c.path), now, changes, this.r));
  }

  /** The period's summary entry, then a new period (nothing is written for a period without any RRD event). */
  private summarize(now: number): number {
    const r = this.r;
    const end = r.since + this.intervalMs;
    const kinds = Object.entries(r.exceptions);
    this.r = this.fresh(now, r.newest);
    if (r.updates === 0 && kinds.length === 0) {
      this.store.commitEntries([], this.r);
      return 0;
    }
    const rrds = this.store.countPeriod(r.since);
    const lines = [
      `RRD updates ${localTime(r.since, this.intervalMs)} – ${localTime(end, this.intervalMs)}, rolled up: ${n(rrds)} RRD${rrds === 1 ? "" : "s"} updated ${n(r.updates)} time${r.updates === 1 ? "" : "s"} (routine: same structure, last update forward; each file's row in the state DB holds its last update and values).`,
    ];
    if (kinds.length === 0) lines.push("No exceptions.");
    else {
      lines.push("Exceptions (each also an entry of its own):");
      for (const [kind, e] of kinds) lines.push(`  ${kind} (${n(e.n)}): ${e.names.map((p) => displayPath(p)).join(", ")}${e.n > e.names.length ? `, and ${n(e.n - e.names.length)} more` : ""}`);
    }
    const details = lines.join("\n");
    const summary = `${n(rrds)} RRDs updated ${n(r.updates)} times${kinds.length ? `, ${kinds.map(([k, e]) => `${e.n} ${k}`).join(", ")}` : ""}`;
    const change: ChangeRow = { time: now, path: "", kind: "rrd summary", summary, details, added: 0, removed: 0 };
    return this.write([change], () => this.store.commitEntries([change], this.r));
  }

  /** Entries to the change log first (at-least-once), then the state. */
  private write(changes: ChangeRow[], commit: () => void): number {
    let problems = 0;
    try {
      for (const c of changes) this.changeLog.append(new Date(c.time), c.path === "" ? "(RRD summary)" : c.path, c.details);
      this.changeLog.flush();
    } catch (e) {
      problems = changes.length;
      this.log.error(`the change log cannot be written (${(e as Error).message}): audit gap for ${changes.length} entries (they are in the state DB: rrdsync log)`);
    }
    commit();
    return problems;
  }
}

const n = (v: number) => v.toLocaleString("en-US");
const iso = (t: number) => new Date(Math.floor(t) * 1000).toISOString().replace(".000Z", "Z");

/** "2026-12-07 21:00", with seconds for an interval that is not whole minutes */
function localTime(ms: number, intervalMs: number): string {
  const d = new Date(ms);
  const p = (x: number) => String(x).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}${intervalMs % 60_000 === 0 ? "" : `:${p(d.getSeconds())}`}`;
}
