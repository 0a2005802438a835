import { expect, test } from "bun:test";
import { backoffDelay } from "../../src/engine/backoff.ts";

test("doubles from 1 s and caps at 5 min", () => {
  const mid = () => 0.5; // no jitter
  expect([0, 1, 2, 3].map((a) => backoffDelay(a, undefined, mid))).toEqual([1000, 2000, 4000, 8000]);
  expect(backoffDelay(20, undefined, mid)).toBe(300_000);
  expect(backoffDelay(1000, undefined, mid)).toBe(300_000);
});

test("jitter stays within ±20% and under the cap", () => {
  expect(backoffDelay(3, undefined, () => 0)).toBe(6400);
  expect(backoffDelay(3, undefined, () => 0.999999)).toBeLessThanOrEqual(9600);
  expect(backoffDelay(30, undefined, () => 0.999999)).toBe(300_000);
});
