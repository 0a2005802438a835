import { expect, test } from "bun:test";
import { confirmBatch, type Verdict } from "../../src/engine/confirm.ts";
import type { Planned, StatFacts } from "../../src/engine/plan.ts";
import type { FileOutcome } from "../../src/transport/types.ts";

const facts: StatFacts = { size: 10, mtimeNs: "1000", ino: "7" };
const file = (rel: string): Planned => ({ rel, abs: `/src/${rel}`, facts, prev: null });

function verdicts(outcomes: Record<string, FileOutcome>, now: Record<string, StatFacts | null> = {}, error?: string, described: Record<string, { damage?: string }> = {}): Array<[string, Verdict["kind"]]> {
  const files = Object.keys(outcomes).concat(Object.keys(now).filter((k) => !(k in outcomes))).map(file);
  const v = confirmBatch({
    files,
    result: { outcomes: new Map(Object.entries(outcomes)), infoLines: [], bytesSent: 0, ...(error ? { error } : {}) },
    described: (rel) => (described[rel] ? { rec: { damage: described[rel].damage } as never, staged: null } : undefined),
    statNow: (f) => (f.rel in now ? (now[f.rel] ?? null) : facts),
    holdsOn: true,
  });
  return v.map((x) => [x.f.rel, x.kind]);
}

test("confirmed and still the version sent → record; moved on meanwhile → changed; gone → vanished", () => {
  expect(verdicts(
    { a: { ok: true, bytes: 1 }, b: { ok: true, bytes: 1 }, c: { ok: true, bytes: 1 } },
    { b: { ...facts, mtimeNs: "2000" }, c: null },
  )).toEqual([["a", "record"], ["b", "changed"], ["c", "vanished"]]);
});

test("what the transport says it read wins over a stat taken later", () => {
  expect(verdicts({ a: { ok: true, bytes: 1, seen: { ...facts, size: 11 } } })).toEqual([["a", "changed"]]);
});

test("not confirmed → pending (with the transport's reason, else the batch error); vanished and resend as told", () => {
  const v = confirmBatch({
    files: ["a", "b", "c", "d"].map(file),
    result: {
      outcomes: new Map<string, FileOutcome>([["a", { ok: false, reason: "Permission denied" }], ["b", { ok: false, reason: "gone", vanished: true }], ["c", { ok: false, reason: "r", resend: true }]]),
      error: "connection lost", infoLines: [], bytesSent: 0,
    },
    described: () => undefined, statNow: () => facts, holdsOn: true,
  });
  expect(v.map((x) => [x.f.rel, x.kind, x.kind === "pending" ? x.reason : ""])).toEqual([
    ["a", "pending", "Permission denied"], ["b", "vanished", ""], ["c", "resend", ""], ["d", "pending", "connection lost"],
  ]);
});

test("a torn RRD taken by a whole-tree run goes through the holds, unless holds are off or it is already flagged", () => {
  const ok: FileOutcome = { ok: true, bytes: 1 };
  expect(verdicts({ "x.rrd": ok, "y.txt": ok }, {}, undefined, { "x.rrd": { damage: "size mismatch" }, "y.txt": { damage: "n/a" } }))
    .toEqual([["x.rrd", "rehold"], ["y.txt", "record"]]);
  const flagged = { ...file("x.rrd"), damage: "still torn" };
  const v = confirmBatch({
    files: [flagged], result: { outcomes: new Map([["x.rrd", ok]]), infoLines: [], bytesSent: 0 },
    described: () => ({ rec: { damage: "size mismatch" } as never, staged: null }), statNow: () => facts, holdsOn: true,
  });
  expect(v[0]?.kind).toBe("record");
});
