// The standby's listing for failback (transport/replica-list.ts): GNU find's NUL-separated records parsed, rrdsync's
// own names left out, and a listing that names a path outside the tree refused whole. Also run for real: the
// command against a local directory through sh and find, and the same directory listed locally.
import { expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { listCommand, listLocally, mtimeNsOf, parseListing } from "../../src/transport/replica-list.ts";
import type { Version } from "../../src/transport/types.ts";

const rec = (...fields: Array<string | Buffer>) => Buffer.concat(fields.flatMap((f) => [Buffer.from(f as never), Buffer.from([0])]));

function parse(out: Buffer): { files: Map<string, Version>; error: string | null } {
  const files = new Map<string, Version>();
  const error = parseListing(out, (rel, v) => files.set(rel, v));
  return { files, error };
}

test("records: name, size, mtime with ten fractional digits; the marker, kept copies and leftovers left out", () => {
  const out = Buffer.concat([
    rec("a.rrd", "53052", "1700000000.1234567890"),
    rec("snmp/1/strings.properties", "40", "1700000001.0000000000"),
    rec(".rrdsync-promoted", "300", "1700000002.0"),
    rec(".rrdsync-kept/2026-12-01T03-04-05Z/a.rrd", "53052", "1700000000.5"),
    rec("snmp/.ifInOctets.rrd.rrdsync-tmp", "1", "1700000000"),
    rec(Buffer.from([0x62, 0xff, 0x2e, 0x72, 0x72, 0x64]), "8", "1700000003"),
  ]);
  const r = parse(out);
  expect(r.error).toBeNull();
  expect([...r.files.keys()]).toEqual(["a.rrd", "snmp/1/strings.properties", "b\0ff.rrd"]);
  expect(r.files.get("a.rrd")).toEqual({ size: 53052, mtimeNs: 1_700_000_000_123_456_789n });
  expect(mtimeNsOf("1700000000")).toBe(1_700_000_000_000_000_000n);
});

test("a listing cut short, or naming a path outside the tree, is refused whole", () => {
  expect(parse(Buffer.concat([rec("a.rrd", "1", "1700000000.0"), Buffer.from("b.rrd\x002")])).error).toContain("cut short");
  expect(parse(rec("../etc/x.rrd", "1", "1700000000.0")).error).toContain("outside");
  expect(parse(rec("a/./b", "1", "1700000000.0")).error).toContain("outside");
  expect(parse(rec("a.rrd", "x", "notatime")).error).toContain("not GNU find's");
});

test("the command run by sh and GNU find, and the local walk, list the same files; symlinks are never followed", () => {
  const dir = mkdtempSync(join(tmpdir(), "rrdsync-list-"));
  try {
    mkdirSync(join(dir, "snmp/1"), { recursive: true });
    writeFileSync(join(dir, "snmp/1/a.rrd"), "x");
    writeFileSync(join(dir, "it's here.txt"), "y");
    writeFileSync(join(dir, ".rrdsync-promoted"), "{}");
    mkdirSync(join(dir, ".rrdsync-kept/t"), { recursive: true });
    writeFileSync(join(dir, ".rrdsync-kept/t/old.rrd"), "o");
    symlinkSync("/etc", join(dir, "etc-link"));
    symlinkSync("/etc/hostname", join(dir, "file-link"));
    const r = Bun.spawnSync(["sh", "-c", listCommand(dir)]);
    expect(r.exitCode).toBe(0);
    const remote = parse(Buffer.from(r.stdout));
    expect(remote.error).toBeNull();
    const local = new Map<string, Version>();
    expect(listLocally(dir, (rel, v) => local.set(rel, v))).toBeNull();
    expect([...remote.files.keys()].sort()).toEqual(["it's here.txt", "snmp/1/a.rrd"]);
    expect([...local.keys()].sort()).toEqual(["it's here.txt", "snmp/1/a.rrd"]);
    expect(remote.files.get("snmp/1/a.rrd")).toEqual(local.get("snmp/1/a.rrd") as Version);
    // a destination not made yet holds nothing
    const none = Bun.spawnSync(["sh", "-c", listCommand(join(dir, "missing"))]);
    expect(none.exitCode).toBe(0);
    expect(none.stdout.length).toBe(0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
