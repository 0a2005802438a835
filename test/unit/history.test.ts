// The change history's retention (issue 25): keep_history and max_history_bytes, pruned in small steps, the span
// and where the kept history begins, freed pages given back (incremental auto-vacuum), and the roll-up's rows.
import { afterEach, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HistoryRetention } from "../../src/engine/history.ts";
import { SCHEMA, SCHEMA_VERSION } from "../../src/store/schema.ts";
import { type ChangeRow, StateStore } from "../../src/store/state.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function dbPath(): string {
  const d = mkdtempSync(join(tmpdir(), "rrdsync-history-"));
  dirs.push(d);
  return join(d, "state.db");
}
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const DAY = 86_400_000;
const change = (path: string, time: number, body = "x".repeat(200)): ChangeRow => ({ time, path, kind: "text modified", summary: "+1 −1 lines", details: body, added: 1, removed: 1 });

test("keep_history: changes older than the limit go, 2,000 per step, each step short; log's start is recorded", () => {
  const { store } = StateStore.open(dbPath());
  const now = Date.UTC(2026, 11, 7);
  // 5,000 changes 100 days old, 1,000 from yesterday
  store.commit([], Array.from({ length: 5000 }, (_, i) => change(`old/${i}.txt`, now - 100 * DAY + i)));
  store.commit([], Array.from({ length: 1000 }, (_, i) => change(`new/${i}.txt`, now - DAY + i)));
  const r = new HistoryRetention(store, { keepHistoryDays: 90, maxHistoryBytes: 0 }, quiet);
  expect(r.step(now, true)).toBe(2000);
  expect(r.step(now)).toBe(2000); // behind: the next batch goes on at once
  expect(r.step(now)).toBe(1000);
  expect(r.step(now + 1)).toBe(0); // nothing overdue (and not asked again for 10 s)
  expect([...store.changes()].length).toBe(1000);
  expect(store.historySpan().first).toBe(now - DAY);
  expect(store.historyPrunedBefore()).toBe(now - DAY);
  store.close();
});

test("max_history_bytes: the oldest go until the history fits, whatever their age; the count survives a restart", () => {
  const path = dbPath();
  let { store } = StateStore.open(path);
  const now = Date.now();
  store.commit([], Array.from({ length: 3000 }, (_, i) => change(`f/${i}.txt`, now - 3000 + i)));
  const size = store.historySize();
  expect(size).toBeGreaterThan(3000 * 200);
  expect(size).toBeLessThan(3000 * 300);
  const r = new HistoryRetention(store, { keepHistoryDays: 90, maxHistoryBytes: Math.floor(size / 2) }, quiet);
  r.drain(now);
  expect(store.historySize()).toBeLessThanOrEqual(size / 2);
  const kept = [...store.changes()];
  expect(kept.length).toBeGreaterThan(1000);
  expect(kept[0]?.path).toBe(`f/${3000 - kept.length}.txt`); // the newest are kept
  const counted = store.historySize();
  store.close();
  ({ store } = StateStore.open(path));
  store.commit([], [change("g.txt", now)]);
  expect(Math.abs(store.historySize() - (counted + 200 + 20 + "g.txt".length + 40))).toBeLessThan(10);
  store.close();
});

test("space: a new DB gives freed pages back (incremental auto-vacuum); a small DB of an earlier version is switched at open", () => {
  const path = dbPath();
  const { store } = StateStore.open(path);
  expect(store.pages().incremental).toBe(true);
  const now = Date.now();
  store.commit([], Array.from({ length: 20_000 }, (_, i) => change(`f/${i}.txt`, now - 100 * DAY + i, "y".repeat(1000))));
  const before = store.pages();
  const r = new HistoryRetention(store, { keepHistoryDays: 90, maxHistoryBytes: 0 }, quiet);
  r.drain(now);
  for (let i = 0; i < 20; i++) r.step(now, true);
  const after = store.pages();
  expect(after.total).toBeLessThan(before.total / 2);
  store.close();

  // a DB made before issue 25: auto_vacuum NONE
  const old = dbPath();
  const db = new Database(old);
  db.exec(`${SCHEMA}; PRAGMA user_version = ${SCHEMA_VERSION}`);
  db.close();
  const o = StateStore.open(old).store;
  expect(o.pages().incremental).toBe(false);
  new HistoryRetention(o, { keepHistoryDays: 90, maxHistoryBytes: 0 }, quiet).prepare();
  expect(o.pages().incremental).toBe(true);
  o.close();
});

test("routine rows: updated in place with a counter and their period; no change row; stale marks and the period count", () => {
  const { store } = StateStore.open(dbPath());
  const sum = (last: number) => JSON.stringify({ step: 300, ds: [["v", "GAUGE", 600]], rra: [["AVERAGE", 10, 1]], last, lastDs: ["1"] });
  const state = (last: number) => ({ size: 1384, mtimeNs: String(last * 1e9), ino: "7", sha256: null, rrd: sum(last) });
  store.commit([{ path: "a.rrd", state: state(1000) }, { path: "b.rrd", state: state(1000) }], [change("a.rrd", 1), change("b.rrd", 1)]);
  const changes0 = [...store.changes()].length;
  for (let i = 1; i <= 3; i++) {
    store.commit([], [], [], { rows: [{ path: "a.rrd", state: state(1000 + 300 * i), routine: { last: 1000 + 300 * i, values: '["2"]' } }], period: 42, ledger: { since: 42 } });
  }
  expect([...store.changes()].length).toBe(changes0);
  expect(store.rolledUp("a.rrd")).toEqual({ updates: 3, stale: null });
  expect(JSON.parse(store.get("a.rrd")?.rrd as string).last).toBe(1900);
  expect(store.countPeriod(42)).toBe(1);
  const layouts = store.layoutSteps();
  expect(layouts.map((l) => l.step)).toEqual([300]);
  const found = store.staleCandidates(new Map(layouts.map((l) => [l.id, 1500])), 10);
  expect(found.map((f) => f.path)).toEqual(["b.rrd"]);
  store.commitStale(["b.rrd"], 5000, [], { since: 42 });
  expect(store.get("b.rrd")?.stale).toBe(5);
  expect(store.staleCandidates(new Map(layouts.map((l) => [l.id, 1500])), 10)).toEqual([]);
  store.close();
});
