import { expect, test } from "bun:test";
import { newDebounce, nextDeadline, takeDue, touch } from "../../src/engine/debounce.ts";

test("a file is due once it has been quiet for the debounce time", () => {
  const s = newDebounce(1000, 3000);
  touch(s, "a", 0);
  touch(s, "a", 500);
  expect(takeDue(s, 1400)).toEqual([]);
  expect(nextDeadline(s)).toBe(1500);
  expect(takeDue(s, 1500)).toEqual(["a"]);
  expect(nextDeadline(s)).toBeNull();
});

test("a file rewritten continuously still ships after maxDelay", () => {
  const s = newDebounce(1000, 3000);
  for (let t = 0; t <= 2900; t += 100) touch(s, "busy", t);
  expect(takeDue(s, 2950)).toEqual([]);
  expect(takeDue(s, 3000)).toEqual(["busy"]);
  touch(s, "busy", 3100); // the next round starts a new window
  expect(nextDeadline(s)).toBe(4100);
});

test("due files come oldest first; others stay", () => {
  const s = newDebounce(100, 1000);
  touch(s, "b", 10);
  touch(s, "a", 0);
  touch(s, "c", 150);
  expect(takeDue(s, 200)).toEqual(["a", "b"]);
  expect([...s.entries.keys()]).toEqual(["c"]);
});

test("maxDelay below the debounce is raised to it", () => {
  const s = newDebounce(1000, 10);
  touch(s, "a", 0);
  expect(nextDeadline(s)).toBe(1000);
});

test("a due file brings along those due within the gather window, not later ones", () => {
  const s = newDebounce(1000, 3000);
  touch(s, "a", 0);
  touch(s, "b", 200);
  touch(s, "c", 600);
  expect(takeDue(s, 999, 250)).toEqual([]);
  expect(takeDue(s, 1000, 250)).toEqual(["a", "b"]);
  expect(takeDue(s, 1600, 250)).toEqual(["c"]);
});
