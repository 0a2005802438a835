// The replica check's remote command, run here by a real sh against a real directory (as the standby runs it
// over ssh), and its parser: files, parents that are symlinks, names of any bytes, the markers, stat's errors; and
// the fence marker's writes (root-markers.ts), locally and as the remote command.
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatFenceMarker, formatMarker, parseFenceMarker, parseMarker } from "../../src/transport/marker.ts";
import { removeMarkerCommand, removeMarkerLocally, writeMarkerCommand, writeMarkerLocally } from "../../src/transport/root-markers.ts";
import { checkCommand, checkInput, localReplicaState, parseCheckOutput } from "../../src/transport/replica-check.ts";
import type { ReplicaState } from "../../src/transport/types.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function replica(): string {
  const d = mkdtempSync(join(tmpdir(), "rrdsync-check-"));
  dirs.push(d);
  mkdirSync(join(d, "n/1"), { recursive: true });
  writeFileSync(join(d, "n/1/a.rrd"), "abc");
  utimesSync(join(d, "n/1/a.rrd"), 1_700_000_000.5, 1_700_000_000.25);
  writeFileSync(join(d, "with space & 'quote'.txt"), "12345");
  writeFileSync(join(d, "outside.txt"), "x");
  symlinkSync(d, join(d, "loop")); // a parent that is a symlink: nothing behind it is the tree's
  symlinkSync("outside.txt", join(d, "link.rrd"));
  return d;
}

/** The remote command as the standby's shell runs it, with the paths on stdin. */
async function remote(dest: string, paths: string[]): Promise<ReplicaState> {
  const p = Bun.spawn(["sh", "-c", checkCommand(dest)], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  for (const part of checkInput(paths)) p.stdin.write(part);
  await p.stdin.end();
  const [out, err, code] = await Promise.all([new Response(p.stdout).arrayBuffer(), new Response(p.stderr).text(), p.exited]);
  return parseCheckOutput(Buffer.from(out), paths, code, err.split("\n").filter(Boolean));
}

const paths = ["n/1/a.rrd", "n/2/missing.rrd", "with space & 'quote'.txt", "loop/outside.txt", "link.rrd", "n", "bad-\u0000ff.rrd"];

describe("the replica check", () => {
  for (const how of ["remote command (GNU stat)", "local destination (lstat)"] as const) {
    test(`${how}: files with size and ns mtime, absent ones, a symlinked parent, a symlink, a directory`, async () => {
      const d = replica();
      writeFileSync(Buffer.concat([Buffer.from(`${d}/bad-`), Buffer.from([0xff]), Buffer.from(".rrd")]), "z"); // a name that is not UTF-8
      const r = how.startsWith("remote") ? await remote(d, paths) : localReplicaState(d, paths);
      expect(r.error).toBeUndefined();
      expect(r.marker).toBeNull();
      expect(r.files.get("n/1/a.rrd")).toEqual({ kind: "file", size: 3, mtimeNs: 1_700_000_000_250_000_000n });
      expect(r.files.get("n/2/missing.rrd")).toEqual({ kind: "absent" });
      expect(r.files.get("with space & 'quote'.txt")).toMatchObject({ kind: "file", size: 5 });
      expect(r.files.get("loop/outside.txt")).toEqual({ kind: "absent" });
      expect(r.files.get("link.rrd")).toEqual({ kind: "other", what: "symlink" });
      expect(r.files.get("n")).toEqual({ kind: "other", what: "directory" });
      expect(r.files.get("bad-\u0000ff.rrd")).toMatchObject({ kind: "file", size: 1 });
      expect(r.files.size).toBe(paths.length);
    });
  }

  test("the marker is read in the same round trip; a destination that does not exist yet holds nothing", async () => {
    const d = replica();
    const m = formatMarker({ host: "standby", promotedAt: "2026-12-01T03:04:05.000Z", user: "root", by: "rrdsync", replica: { files: 1, bytes: 3, newest: null } });
    writeFileSync(join(d, ".rrdsync-promoted"), m);
    const r = await remote(d, ["n/1/a.rrd"]);
    expect(r.marker).toEqual({ text: m });
    expect(parseMarker(m)?.host).toBe("standby");
    expect(localReplicaState(d, []).marker).toEqual({ text: m });
    const none = await remote(join(d, "not-yet"), ["a.rrd"]);
    expect([none.error, none.marker, none.files.get("a.rrd")]).toEqual([undefined, null, { kind: "absent" }]);
  });

  test("the fence marker is read in the same round trip as the promotion marker; an empty file or a symlink there still counts", async () => {
    const d = replica();
    const f = formatFenceMarker({ fencedAt: "2026-12-01T03:10:00.000Z", host: "primary", by: "rrdsync", files: 3, conflicts: [{ path: "n/1/a.rrd", why: "changed" }] });
    writeFileSync(join(d, ".rrdsync-fenced"), f);
    for (const r of [await remote(d, ["n/1/a.rrd"]), localReplicaState(d, ["n/1/a.rrd"])]) {
      expect([r.error, r.marker, r.fence]).toEqual([undefined, null, { text: f }]);
      expect(r.files.get("n/1/a.rrd")).toMatchObject({ kind: "file", size: 3 });
    }
    expect(parseFenceMarker(f)).toMatchObject({ host: "primary", files: 3, conflicts: [{ path: "n/1/a.rrd", why: "changed" }] });
    expect(parseFenceMarker("{cut")).toBeNull();
    writeFileSync(join(d, ".rrdsync-promoted"), "");
    rmSync(join(d, ".rrdsync-fenced"));
    symlinkSync(join(d, "outside.txt"), join(d, ".rrdsync-fenced"));
    for (const r of [await remote(d, []), localReplicaState(d, [])]) {
      expect([r.error, r.marker, r.fence]).toEqual([undefined, { text: "" }, { unreadable: "not a regular file" }]);
    }
  });

  test("the local marker write: atomic, never through a symlink or over a directory; removal takes a symlink, not its target", () => {
    const d = replica();
    const at = join(d, ".rrdsync-fenced");
    symlinkSync(join(d, "outside.txt"), at);
    expect(writeMarkerLocally(d, ".rrdsync-fenced", "x")).toContain("a symlink: not written through");
    expect(readFileSync(join(d, "outside.txt"), "utf8")).toBe("x");
    expect(removeMarkerLocally(d, ".rrdsync-fenced")).toBeNull();
    expect(existsSync(join(d, "outside.txt"))).toBe(true);
    mkdirSync(at);
    expect(writeMarkerLocally(d, ".rrdsync-fenced", "y")).toContain("a directory");
    expect(removeMarkerLocally(d, ".rrdsync-fenced")).toContain("a directory");
    rmSync(at, { recursive: true });
    expect(writeMarkerLocally(d, ".rrdsync-fenced", "one")).toBeNull();
    expect(writeMarkerLocally(d, ".rrdsync-fenced", "two")).toBeNull();
    expect(readFileSync(at, "utf8")).toBe("two");
    expect(readdirSync(d).filter((n) => n.startsWith(".rrdsync-fenced"))).toEqual([".rrdsync-fenced"]);
    expect(removeMarkerLocally(d, ".rrdsync-fenced")).toBeNull();
    expect(removeMarkerLocally(d, ".rrdsync-fenced")).toBeNull();
  });

  test("the remote marker commands, run by a real sh: written from stdin, a symlink or a directory at the name refused; removed", () => {
    const d = replica();
    const at = join(d, ".rrdsync-fenced");
    const run = (cmd: string, input = "") => Bun.spawnSync(["sh", "-c", cmd], { stdin: Buffer.from(input), stderr: "pipe" });
    symlinkSync(join(d, "outside.txt"), at);
    const refused = run(writeMarkerCommand(d, ".rrdsync-fenced"), "evil");
    expect(refused.exitCode).toBe(4);
    expect(refused.stderr.toString()).toContain("is a symlink: not written through");
    expect(readFileSync(join(d, "outside.txt"), "utf8")).toBe("x");
    expect(run(removeMarkerCommand(d, ".rrdsync-fenced")).exitCode).toBe(0);
    expect(existsSync(join(d, "outside.txt"))).toBe(true);
    mkdirSync(at);
    expect(run(writeMarkerCommand(d, ".rrdsync-fenced"), "z").exitCode).toBe(4);
    expect(run(removeMarkerCommand(d, ".rrdsync-fenced")).exitCode).toBe(4);
    rmSync(at, { recursive: true });
    expect(run(writeMarkerCommand(d, ".rrdsync-fenced"), "one 'quoted' $(x)\n").exitCode).toBe(0);
    expect(readFileSync(at, "utf8")).toBe("one 'quoted' $(x)\n");
    expect(run(writeMarkerCommand(d, ".rrdsync-fenced"), "two").exitCode).toBe(0);
    expect(readFileSync(at, "utf8")).toBe("two");
    expect(readdirSync(d).filter((n) => n.startsWith(".rrdsync-fenced"))).toEqual([".rrdsync-fenced"]);
    expect(run(removeMarkerCommand(d, ".rrdsync-fenced")).exitCode).toBe(0);
    expect(existsSync(at)).toBe(false);
    expect(run(removeMarkerCommand(join(d, "not-yet"), ".rrdsync-fenced")).exitCode).toBe(0);
  });

  test("stat's other errors (permissions, no GNU stat) make the whole answer an error: nothing may be written on a guess", () => {
    const r = parseCheckOutput(Buffer.from("//rrdsync-marker//\0"), ["a"], 123, ["stat: cannot statx 'a': Permission denied"]);
    expect(r.error).toContain("Permission denied");
    const gnu = parseCheckOutput(Buffer.from(""), ["a"], 123, ["stat: unrecognized option '--printf'"]);
    expect(gnu.error).toContain("it needs GNU coreutils' stat there");
    expect(parseCheckOutput(Buffer.from("a\0"), ["a"], 0, []).error).toBeDefined(); // cut short
    expect(parseCheckOutput(Buffer.from("//rrdsync-marker//\0"), ["a"], 0, []).error).toContain("cut short"); // no fence section
  });
});
