import { expect, test } from "bun:test";
import { formatProgress } from "../../src/cli/progress.ts";

const MiB = 1024 * 1024;

test("while the walk still finds files the totals are open (+) and no ETA is promised", () => {
  expect(formatProgress({ scanned: 10496, plannedFiles: 10496, plannedBytes: 300 * MiB, doneFiles: 0, doneBytes: 30 * MiB, walking: true }, 1)).toBe(
    "… 10,496 scanned · 0/10,496+ files · 30.0 MiB of 300.0 MiB+ · 30.0 MiB/s",
  );
});

test("once the walk is done: rate and ETA from the bytes done so far", () => {
  expect(formatProgress({ scanned: 20000, plannedFiles: 20000, plannedBytes: 600 * MiB, doneFiles: 5000, doneBytes: 150 * MiB, walking: false }, 3)).toBe(
    "… 20,000 scanned · 5,000/20,000 files · 150.0 MiB of 600.0 MiB · 50.0 MiB/s · ETA 0:09",
  );
  expect(formatProgress({ scanned: 5, plannedFiles: 0, plannedBytes: 0, doneFiles: 0, doneBytes: 0, walking: false }, 3)).toBe("… 5 scanned");
});
