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
