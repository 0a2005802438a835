import { describe, expect, test } from "bun:test";
import { PendingQueue, type Why } from "../../src/engine/pending.ts";

const q = (debounceMs = 1000, maxDelayMs = 3000) => new PendingQueue({ debounceMs, maxDelayMs });
const paths = (rs: Array<{ path: string }>) => rs.map((r) => r.path);

describe("debounce", () => {
  test("a file is due once it has been quiet for the debounce time", () => {
    const s = q();
    s.note("a", "changed", 0);
    s.note("a", "changed", 500);
    expect(s.takeDue(1400)).toEqual([]);
    expect(s.nextDue()).toBe(1500);
    expect(paths(s.takeDue(1500))).toEqual(["a"]);
    expect(s.nextDue()).toBeNull(); // taken: being sent
  });

  test("a file rewritten continuously still ships after max_delay", () => {
    const s = q();
    for (let t = 0; t <= 2900; t += 100) s.note("busy", "changed", t);
    expect(s.takeDue(2950)).toEqual([]);
    expect(paths(s.takeDue(3000))).toEqual(["busy"]);
  });

  test("due files come oldest first; others stay", () => {
    const s = q(100, 1000);
    s.note("b", "changed", 10);
    s.note("a", "changed", 0);
    s.note("c", "changed", 150);
    expect(paths(s.takeDue(200))).toEqual(["a", "b"]);
    expect(s.nextDue()).toBe(250);
  });

  test("max_delay below the debounce is raised to it", () => {
    const s = q(1000, 10);
    s.note("a", "changed", 0);
    expect(s.nextDue()).toBe(1000);
  });

  test("a due file brings along those due within the gather window, not later ones", () => {
    const s = q();
    s.note("a", "changed", 0);
    s.note("b", "changed", 200);
    s.note("c", "changed", 600);
    expect(s.takeDue(999, 250)).toEqual([]);
    expect(paths(s.takeDue(1000, 250))).toEqual(["a", "b"]);
    expect(paths(s.takeDue(1600, 250))).toEqual(["c"]);
  });
});

describe("the combining table: one record per file", () => {
  // [existing why, new event, resulting why]
  const table: Array<["changed" | "gone" | "moved", "changed" | "gone" | "moved", Why]> = [
    ["changed", "changed", "changed"],
    ["changed", "gone", "gone"],
    ["gone", "changed", "changed"],
    ["moved", "changed", "moved"], // the content follows the move
    ["changed", "moved", "moved"],
  ];
  for (const [before, event, after] of table) {
    test(`${before} + ${event} → ${after}`, () => {
      const s = q();
      s.note("x", before, 0, before === "moved" ? { from: "old" } : {});
      s.note("x", event, 100, event === "moved" ? { from: "old" } : {});
      expect(s.size).toBe(1);
      expect(s.get("x")?.why).toBe(after);
      expect(s.get("x")?.due).toBe(1100);
    });
  }

  test("moved, then deleted before the move was done: the old name is what goes", () => {
    const s = q();
    s.note("new", "moved", 0, { from: "old" });
    s.note("new", "gone", 10);
    expect(s.get("new")).toBeUndefined();
    expect(s.get("old")?.why).toBe("gone");
  });

  test("an event while the file is being sent: it goes again after the outcome, debounced", () => {
    const s = q();
    s.note("a", "changed", 0);
    expect(paths(s.takeDue(1000))).toEqual(["a"]);
    s.note("a", "changed", 1200);
    expect(s.nextDue()).toBeNull(); // still in flight
    s.settle("a", { kind: "delivered" }, 1500);
    expect(s.get("a")?.why).toBe("changed");
    expect(s.nextDue()).toBe(2200);
  });

  test("while the target is down, new work waits with the retries", () => {
    const s = q();
    s.note("a", "changed", 0, { notBefore: 60_000 });
    expect(s.nextDue()).toBe(60_000);
  });
});

describe("outcomes", () => {
  test("delivered and dropped files are forgotten", () => {
    const s = q();
    s.note("a", "changed", 0);
    s.note("b", "changed", 0);
    s.takeDue(1000);
    s.settle("a", { kind: "delivered" }, 1100);
    s.settle("b", { kind: "dropped" }, 1100);
    expect(s.size).toBe(0);
  });

  test("a failure counts attempts, keeps the error, waits for the target's retry time", () => {
    const s = q();
    s.note("a", "changed", 0);
    s.takeDue(1000);
    s.settle("a", { kind: "failed", error: "cannot connect" }, 1100, 3100);
    expect(s.get("a")).toMatchObject({ why: "retry", attempts: 1, lastError: "cannot connect", due: 3100 });
    expect(paths(s.failed())).toEqual(["a"]);
    s.takeDue(3100);
    s.settle("a", { kind: "failed", error: "cannot connect" }, 3200, 7200);
    expect(s.get("a")?.attempts).toBe(2);
    // a new write of a failed file does not bypass the backoff while the target is down
    s.note("a", "changed", 3300, { notBefore: 7200 });
    expect(s.get("a")?.due).toBe(7200);
  });

  test("a file with no record (found by a pass) that fails gets one", () => {
    const s = q(0, 0);
    s.settle("p", { kind: "failed", error: "x" }, 10, 20);
    expect(s.get("p")).toMatchObject({ attempts: 1, due: 20 });
  });

  test("held RRDs count their holds and come back after the delay; --once takes only those", () => {
    const s = q(0, 0);
    s.settle("r.rrd", { kind: "held", delayMs: 2000 }, 0);
    s.settle("f.txt", { kind: "failed", error: "x" }, 0, 500);
    expect(s.holdsOf("r.rrd")).toBe(1);
    expect(s.nextDue("held")).toBe(2000);
    expect(paths(s.takeDue(2000, 0, "held"))).toEqual(["r.rrd"]);
    s.settle("r.rrd", { kind: "held", delayMs: 2000 }, 2000);
    expect(s.holdsOf("r.rrd")).toBe(2);
    s.clearHolds("r.rrd");
    expect(s.holdsOf("r.rrd")).toBe(0);
  });

  test("changed while being sent: no backoff, only the debounce", () => {
    const s = q();
    s.note("a", "changed", 0);
    s.takeDue(1000);
    s.settle("a", { kind: "changed" }, 1500, 99_999);
    expect(s.get("a")).toMatchObject({ attempts: 0, due: 2500 });
  });
});

describe("the steady-state rule (issue 25)", () => {
  const sq = (batchMaxFiles = 10_000) => new PendingQueue({ debounceMs: 1000, maxDelayMs: 3000, collectMs: 1000, batchMaxFiles });

  test("while events keep coming, a due batch collects for about a second; fewer, larger batches", () => {
    const s = sq();
    // a river: one update every 3 ms (333/s), each file once
    let t = 0;
    for (; t < 1300; t += 3) s.note(`f${t}`, "changed", t);
    // f0 became due at 1000; events still come (the last at 1299): held back, and the lane is told when to look
    expect(s.takeDue(1300, 250)).toEqual([]);
    expect(s.nextSend(1300, 250)).toBe(1549); // the last event + a quiet spell, unless more come
    for (; t < 2000; t += 3) s.note(`f${t}`, "changed", t);
    expect(s.takeDue(1999, 250)).toEqual([]);
    expect(s.nextSend(1999, 250)).toBe(2000); // f0 due at 1000 + collect 1000
    const batch = s.takeDue(2000, 250);
    expect(batch.length).toBe(417); // due by 2250: f0 … f1248, one rsync for ~1.25 s of updates
    expect(batch[0]?.path).toBe("f0");
  });

  test("a burst that ended goes at once (W4 latency unchanged)", () => {
    const s = sq();
    for (let i = 0; i < 1000; i++) s.note(`r${i}`, "changed", Math.floor(i / 11)); // 1,000 updates within 91 ms
    expect(s.nextSend(1091, 250)).toBe(1000); // quiet since 90: not streaming, the first is due
    expect(s.takeDue(1090, 250).length).toBe(1000);
  });

  test("never past a record's max_delay: a file rewritten all the time still ships that often", () => {
    const s = new PendingQueue({ debounceMs: 1000, maxDelayMs: 1500, collectMs: 1000 });
    for (let t = 0; t <= 1500; t += 100) s.note("busy", "changed", t); // due at 1500 by max_delay, events still coming
    expect(s.nextSend(1500, 250)).toBe(1500);
    expect(paths(s.takeDue(1500, 250))).toEqual(["busy"]);
  });

  test("batch_max_files due: it goes without waiting", () => {
    const s = sq(100);
    for (let t = 0; t < 1200; t += 3) s.note(`f${t}`, "changed", t);
    expect(s.takeDue(1150, 250).length).toBeGreaterThanOrEqual(100);
  });

  test("off (collectMs 0, --once): the old rule", () => {
    const s = q(1000, 3000);
    for (let t = 0; t < 1300; t += 3) s.note(`f${t}`, "changed", t);
    expect(s.takeDue(1300, 250).length).toBeGreaterThan(0);
  });
});
