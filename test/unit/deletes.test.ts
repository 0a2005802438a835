import { expect, test } from "bun:test";
import { parseMaxDelete } from "../../src/config/max-delete.ts";
import { deleteRefusal } from "../../src/engine/delete-guard.ts";

test("max_delete reads as a count or a percentage; anything else is not a limit", () => {
  expect(parseMaxDelete(25)).toEqual({ count: 25 });
  expect(parseMaxDelete("10%")).toEqual({ percent: 10 });
  expect(parseMaxDelete(" 2.5 % ")).toEqual({ percent: 2.5 });
  expect(parseMaxDelete("40")).toEqual({ count: 40 });
  for (const bad of [-1, 1.5, "150%", "ten", true, null]) expect(parseMaxDelete(bad)).toBeNull();
});

test("the guard: within the limit goes ahead; above it, or an emptied source, is refused with the numbers", () => {
  expect(deleteRefusal(0, 0, { percent: 10 })).toBeNull();
  expect(deleteRefusal(10, 100, { percent: 10 })).toBeNull();
  expect(deleteRefusal(11, 100, { percent: 10 })).toBe("11 files would be deleted on the replica (11.0% of 100 tracked), more than max_delete allows (10% of the tracked files, 10 here)");
  expect(deleteRefusal(100, 100, { percent: 10 })).toBe("100 files would be deleted on the replica (100% of 100 tracked), more than max_delete allows (10% of the tracked files, 10 here)");
  expect(deleteRefusal(3, 5, { count: 3 })).toBeNull();
  expect(deleteRefusal(4, 5, { count: 3 })).toMatch(/^4 files would be deleted/);
});
