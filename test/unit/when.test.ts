import { expect, test } from "bun:test";
import { parseWhen } from "../../src/cli/when.ts";
test("--since/--until/--at: dates in local time or UTC, ages, today and yesterday; anything else is a usage error", () => {
  const now = new Date(2024, 11, 12, 15, 5, 40).getTime();
  expect(parseWhen("2h", "--since", now)).toBe(now - 7200000);
  expect(parseWhen("2024-12-12", "--since", now)).toBe(new Date(2024, 11, 12).getTime());
  expect(parseWhen("2024-12-12 15:05", "--since", now)).toBe(new Date(2024, 11, 12, 15, 5).getTime());
  expect(parseWhen("2024-12-12T15:05:40.5Z", "--since", now)).toBe(Date.UTC(2024, 11, 12, 15, 5, 40, 500));
  expect(parseWhen("yesterday", "--since", now)).toBe(new Date(2024, 11, 11).getTime());
  expect(() => parseWhen("soon", "--since", now)).toThrow('--since "soon": not a time');
});

test("dates that do not exist are refused, never rolled over; a leading - on an age means ago too", () => {
  const now = new Date(2024, 11, 12, 15, 5, 40).getTime();
  for (const bad of ["2024-13-45", "2024-02-30", "2023-02-29", "2024-00-10", "2024-12-12 24:00", "2024-12-12 15:60", "2024-12-12T15:05:61Z"]) {
    expect(() => parseWhen(bad, "--since", now)).toThrow(`--since ${JSON.stringify(bad)}: no such date or time`);
  }
  expect(parseWhen("2024-02-29", "--since", now)).toBe(new Date(2024, 1, 29).getTime());
  expect(parseWhen("-5d", "--since", now)).toBe(now - 5 * 86_400_000);
});
