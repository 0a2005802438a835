// The conflict rule as a table: what rrdsync delivered (and what it is about to write), what the replica holds
// → go ahead, or a conflict (the file is left as it is and the target is fenced).
import { describe, expect, test } from "bun:test";
import { judgeReplica, type Known, newerThan, type Op, type ReplicaFile, sameMtime } from "../../src/engine/policy/conflict.ts";

const S = 1_700_000_000n * 1_000_000_000n; // a second, in ns
const at = (seconds: number, ns = 0) => S + BigInt(seconds) * 1_000_000_000n + BigInt(ns);
const v = (size: number, mtimeNs: bigint) => ({ size, mtimeNs });
const file = (size: number, mtimeNs: bigint): ReplicaFile => ({ kind: "file", size, mtimeNs });
const absent: ReplicaFile = { kind: "absent" };
const link: ReplicaFile = { kind: "other", what: "symbolic link" };
/** the first sync ended at +100 s (ms) */
const settled = Number(at(100) / 1_000_000n);
const known = (k: Partial<Known>): Known => ({ delivered: null, source: null, settledMs: settled, ...k });

type Row = [what: string, op: Op, known: Known, replica: ReplicaFile, expected: string];
const rows: Row[] = [
  // delivered (a state row) and rewritten by the primary
  ["delivered, replica as delivered (ns)", "write", known({ delivered: v(100, at(200, 123_456_789)), source: v(100, at(300, 1)) }), file(100, at(200, 123_456_789)), "ok: delivered"],
  ["delivered, replica as delivered, whole seconds (SFTP)", "write", known({ delivered: v(100, at(200, 123_456_789)), source: v(100, at(300)) }), file(100, at(200)), "ok: delivered"],
  ["delivered, replica as delivered, microseconds (utimes)", "write", known({ delivered: v(100, at(200, 123_456_789)), source: v(100, at(300)) }), file(100, at(200, 123_456_000)), "ok: delivered"],
  ["delivered, replica rewritten on the standby (rrdtool update: same size, later mtime)", "write", known({ delivered: v(100, at(200, 5)), source: v(100, at(400, 7)) }), file(100, at(300, 9)), "conflict: changed"],
  ["delivered, the standby's write newer than ours too", "write", known({ delivered: v(100, at(200, 5)), source: v(100, at(250)) }), file(100, at(300, 9)), "conflict: changed"],
  ["delivered, replica a whole second with another size", "write", known({ delivered: v(100, at(200, 5)), source: v(100, at(400)) }), file(120, at(200)), "conflict: changed"],
  ["delivered, same second but other nanoseconds", "write", known({ delivered: v(100, at(200, 5)), source: v(100, at(400)) }), file(100, at(200, 6)), "conflict: changed"],
  ["delivered, deleted on the standby", "write", known({ delivered: v(100, at(200)), source: v(100, at(400)) }), absent, "ok: absent"],
  ["delivered, a symlink planted at the name", "write", known({ delivered: v(100, at(200)), source: v(100, at(400)) }), link, "ok: not a file"],
  ["delivered, replica holds a version sent but not confirmed (kill -9 before the commit)", "write", known({ delivered: v(100, at(200)), also: [v(100, at(250, 3))], source: v(100, at(400)) }), file(100, at(250, 3)), "ok: delivered"],
  ["delivered, the file changed while it was sent: the replica holds one of the versions in between", "write", known({ delivered: v(100, at(200)), also: [{ size: -1, mtimeNs: at(250), uptoNs: at(251, 500) }], source: v(120, at(400)) }), file(110, at(251, 2)), "ok: delivered"],
  ["delivered, changed while sent, then written on the standby (after the range)", "write", known({ delivered: v(100, at(200)), also: [{ size: -1, mtimeNs: at(250), uptoNs: at(251, 500) }], source: v(120, at(400)) }), file(110, at(300)), "conflict: changed"],
  ["delivered, replica already holds exactly ours", "write", known({ delivered: v(100, at(200)), source: v(100, at(400, 1)) }), file(100, at(400, 1)), "ok: same as ours"],
  ["delivered, the standby wrote in the same second as our newest version (whole seconds: not taken for ours)", "write", known({ delivered: v(100, at(200)), source: v(100, at(400, 1)) }), file(100, at(400)), "conflict: changed"],
  ["delivered by the first sync's run, replica a newer version it took then", "write", known({ delivered: v(100, at(50)), source: v(100, at(400)) }), file(100, at(90, 1)), "ok: from before the first sync"],
  ["delivered, replica an old copy restored there (older than the first sync's end)", "write", known({ delivered: v(100, at(200)), source: v(100, at(400)) }), file(90, at(10)), "ok: from before the first sync"],
  // never delivered (no row)
  ["no row, nothing there", "write", known({ source: v(10, at(400)) }), absent, "ok: absent"],
  ["no row, a pre-seeded older copy from before the first sync", "write", known({ source: v(10, at(400)) }), file(8, at(20)), "ok: from before the first sync"],
  ["no row, created on the standby after the first sync (the primary then made the same name)", "write", known({ source: v(10, at(400)) }), file(8, at(300)), "conflict: created"],
  ["no row, on the standby and newer than ours", "write", known({ source: v(10, at(400)) }), file(8, at(500)), "conflict: newer"],
  ["no row, from before the first sync but newer than ours", "write", known({ source: v(10, at(40)) }), file(8, at(60)), "conflict: newer"],
  ["no row, a first sync under way: an older copy is replaced", "write", known({ settledMs: null, replaceable: true, source: v(10, at(400)) }), file(8, at(300)), "ok: replaceable"],
  ["no row, a first sync under way: a newer copy is not", "write", known({ settledMs: null, replaceable: true, source: v(10, at(400)) }), file(8, at(401)), "conflict: newer"],
  ["no row, a first sync under way, same second as ours (whole seconds)", "write", known({ settledMs: null, replaceable: true, source: v(10, at(400, 7)) }), file(8, at(400)), "ok: replaceable"],
  ["no row, sent but not confirmed before a kill -9", "write", known({ also: [v(10, at(350))], source: v(10, at(400)) }), file(10, at(350)), "ok: delivered"],
  ["the seed script's row, replica as the seed sent it", "write", known({ seedMtime: 1_700_000_200.25, source: v(10, at(400)) }), file(10, at(200, 250_000_000)), "ok: the seed's"],
  ["the seed script's row, written on the standby since", "write", known({ seedMtime: 1_700_000_200.25, source: v(10, at(400)) }), file(10, at(300)), "conflict: created"],
  // verify --repair: the replica's copy was found wrong
  ["repair: an older wrong copy is replaced", "write", known({ delivered: v(10, at(200)), replaceable: true, source: v(10, at(200)) }), file(10, at(150)), "ok: replaceable"],
  ["repair: a copy newer than ours is a conflict", "write", known({ delivered: v(10, at(200)), replaceable: true, source: v(10, at(200)) }), file(10, at(250)), "conflict: changed"],
  // deletes (delete: true)
  ["delete, replica as delivered", "delete", known({ delivered: v(10, at(200)) }), file(10, at(200)), "ok: delivered"],
  ["delete, changed on the standby", "delete", known({ delivered: v(10, at(200)) }), file(10, at(300)), "conflict: changed"],
  ["delete, already gone there", "delete", known({ delivered: v(10, at(200)) }), absent, "ok: absent"],
  // renames: the old name must be ours, the new name free or ours
  ["move, old name as delivered", "move-from", known({ delivered: v(10, at(200)) }), file(10, at(200)), "ok: delivered"],
  ["move, old name changed on the standby", "move-from", known({ delivered: v(10, at(200)) }), file(12, at(300)), "conflict: changed"],
  ["move, new name free", "move-to", known({ source: v(10, at(200)) }), absent, "ok: absent"],
  ["move, new name holds the moved file already (moved before a crash)", "move-to", known({ source: v(10, at(200)) }), file(10, at(200)), "ok: same as ours"],
  ["move, new name written on the standby since ours", "move-to", known({ source: v(10, at(200)) }), file(7, at(300)), "conflict: newer"],
  ["move, new name created on the standby after the first sync", "move-to", known({ source: v(10, at(400)) }), file(7, at(300)), "conflict: created"],
  ["move, new name holds a stale delivered file changed there", "move-to", known({ delivered: v(5, at(150)), source: v(10, at(200)) }), file(6, at(300)), "conflict: changed"],
];

describe("the conflict rule", () => {
  for (const [what, op, k, replica, expected] of rows) {
    test(what, () => {
      const j = judgeReplica(op, k, replica);
      expect(`${j.ok ? "ok" : "conflict"}: ${j.why}`).toBe(expected);
    });
  }
});

describe("mtimes at the precision the transport delivered", () => {
  test.each([
    [at(5, 123_456_789), at(5, 123_456_789), true],
    [at(5), at(5, 999_999_999), true], // whole seconds: SFTP
    [at(5, 123_000_000), at(5, 123_456_789), true], // milliseconds
    [at(5, 123_456_000), at(5, 123_456_789), true], // microseconds
    [at(5, 123_456_000), at(5, 123_457_789), false],
    [at(6), at(5, 999_999_999), false],
    [at(5, 1), at(5, 2), false],
  ])("%p vs ours %p → %p", (replica, ours, same) => {
    expect(sameMtime(replica, ours)).toBe(same);
  });
  test("newer is judged at the replica's precision", () => {
    expect(newerThan(at(5), at(5, 500))).toBe(false);
    expect(newerThan(at(6), at(5, 500))).toBe(true);
    expect(newerThan(at(5, 2), at(5, 1))).toBe(true);
  });
});
