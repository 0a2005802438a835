// The failback decision as a table: what rrdsync delivered, what the standby holds and what is here → left to the
// ordinary send, or pulled and merged, taken, copied or left (engine/policy/failback.ts).
import { describe, expect, test } from "bun:test";
import type { Known } from "../../src/engine/policy/conflict.ts";
import { isTempDirOf, type LocalFile, pickFailback, rowCounts, tempDirName, textWinner } from "../../src/engine/policy/failback.ts";

const S = 1_700_000_000n * 1_000_000_000n;
const at = (seconds: number, ns = 0) => S + BigInt(seconds) * 1_000_000_000n + BigInt(ns);
const v = (size: number, mtimeNs: bigint) => ({ size, mtimeNs });
const settledMs = Number(at(100) / 1_000_000n);
const known = (k: Partial<Known>): Known => ({ delivered: null, source: null, settledMs, ...k });
const here = (size: number, mtimeNs: bigint): LocalFile => ({ kind: "file", size, mtimeNs });
const absent: LocalFile = { kind: "absent" };

type Row = [what: string, rel: string, standby: { size: number; mtimeNs: bigint }, known: Known, local: LocalFile, monitored: boolean, expected: string];
const rows: Row[] = [
  ["as delivered: left to the ordinary send", "a.rrd", v(100, at(200, 7)), known({ delivered: v(100, at(200, 7)), source: v(100, at(300)) }), here(100, at(300)), true, "stay: delivered"],
  ["as delivered, SFTP's whole seconds", "a.rrd", v(100, at(200)), known({ delivered: v(100, at(200, 7)), source: v(100, at(300)) }), here(100, at(300)), true, "stay: delivered"],
  ["taken as accepted by an earlier failback (a kill -9 after the note)", "a.rrd", v(100, at(250)), known({ delivered: v(100, at(200)), also: [v(100, at(250))], source: v(100, at(300)) }), here(100, at(300)), true, "stay: delivered"],
  ["an RRD the standby wrote (promoted): merged", "a.rrd", v(100, at(400)), known({ delivered: v(100, at(200)), source: v(100, at(300)) }), here(100, at(300)), true, "merge"],
  ["an RRD the standby wrote, ours unchanged since: merged", "a.rrd", v(100, at(400)), known({ delivered: v(100, at(200)), source: v(100, at(200)) }), here(100, at(200)), true, "merge"],
  ["an RRD only on the standby: copied", "node9/if.rrd", v(100, at(400)), known({}), absent, true, "copy"],
  ["a file we delivered and deleted here, changed there since: copied back", "gone.rrd", v(100, at(400)), known({ delivered: v(100, at(200)) }), absent, true, "copy"],
  ["a text file the standby changed: the newer one wins", "strings.properties", v(30, at(400)), known({ delivered: v(20, at(200)), source: v(20, at(200)) }), here(20, at(200)), true, "text"],
  ["a JRobin file the standby changed: left on both sides", "a.jrb", v(100, at(400)), known({ delivered: v(100, at(200)), source: v(100, at(300)) }), here(100, at(300)), true, "leave"],
  ["a directory here where the standby has a file: left on both sides (reported)", "a.rrd", v(100, at(400)), known({}), { kind: "other", what: "directory" }, true, "leave"],
  ["a name the config does not replicate: never pulled", "notes.bak", v(100, at(400)), known({}), absent, false, "stay: not a monitored file"],
  ["a name that climbs out of the tree (a compromised standby's listing): never pulled", "../../etc/cron.d/x.rrd", v(100, at(400)), known({}), absent, true, "stay: a name outside the tree (refused)"],
  ["an absolute name: never pulled", "/etc/passwd", v(100, at(400)), known({}), absent, true, "stay: a name outside the tree (refused)"],
  ["a copy from before the first sync (pre-seeded, not ours to pull)", "old.rrd", v(100, at(50)), known({}), absent, true, "stay: from before the first sync"],
];

describe("pickFailback", () => {
  for (const [what, rel, standby, k, local, monitored, expected] of rows) {
    test(what, () => {
      const p = pickFailback(rel, standby, k, local, monitored);
      expect(p.pull ? p.action : `stay: ${p.why}`).toBe(expected);
    });
  }
});

describe("textWinner", () => {
  test("the later mtime wins; a tie keeps ours; SFTP's whole seconds compare at their precision", () => {
    expect(textWinner(v(1, at(200)), v(1, at(300)))).toBe("standby");
    expect(textWinner(v(1, at(300)), v(1, at(200)))).toBe("local");
    expect(textWinner(v(1, at(200, 5)), v(1, at(200, 5)))).toBe("local");
    expect(textWinner(v(1, at(200, 500_000_000)), v(1, at(200)))).toBe("local"); // same second, standby in whole seconds
    expect(textWinner(v(1, at(200, 500_000_000)), v(1, at(201)))).toBe("standby");
  });
});

describe("the temporary directory's name", () => {
  test("exactly the pattern of this target, nothing looser", () => {
    const n = tempDirName("0123abcd", "00112233aabb");
    expect(isTempDirOf(n, "0123abcd")).toBe(true);
    expect(isTempDirOf(n, "ffffffff")).toBe(false); // another target's run
    expect(isTempDirOf(`${n}x`, "0123abcd")).toBe(false);
    expect(isTempDirOf(".rrdsync-failback-0123abcd-", "0123abcd")).toBe(false);
    expect(isTempDirOf("rrd", "0123abcd")).toBe(false);
  });
});

test("rowCounts: the standby's rows added, the rows both held, ours alone", () => {
  expect(rowCounts([{ onlyA: 1, onlyB: 2, both: 3 }, { onlyA: 4, onlyB: 5, both: 6 }])).toEqual({ added: 7, both: 9, ours: 5 });
});
