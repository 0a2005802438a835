import { expect, test } from "bun:test";
import { holdDecision } from "../../src/engine/holds.ts";

test.each([
  // [damage, holds so far, attempts, verdict]
  [null, 0, 3, { kind: "go" }],
  ["size mismatch", 0, 3, { kind: "hold", n: 1, damage: "size mismatch" }],
  ["size mismatch", 2, 3, { kind: "hold", n: 3, damage: "size mismatch" }],
  ["size mismatch", 3, 3, { kind: "ship-flagged" }],
  ["size mismatch", 0, 0, { kind: "ship-flagged" }],
] as Array<[string | null, number, number, unknown]>)("damage %p after %i holds of %i → %o", (damage, n, attempts, verdict) => {
  expect(holdDecision(damage, n, attempts)).toEqual(verdict as never);
});
