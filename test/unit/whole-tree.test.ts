import { expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildRsyncArgv, buildHeldArgv, comparesNanoseconds, treeFilterArgs } from "../../src/transport/rsync/args.ts";
import { treeErrors, wholeTreeOutcomes } from "../../src/transport/rsync/transport.ts";

const target = { user: "u", host: "h", port: 22, destDir: "/d", sshKeyPath: "", knownHostsFile: "/k", sshCiphers: "", transport: "rsync" as const, sftpParallelFiles: 8, sshPassphraseFile: "" };
const rsync = { archive: true, compress: false, verbose: false, update: false, checksum: false, partial: false, bwlimit: 0, itemizeChanges: false, stats: false };

test("exit 0 confirms a file whose inode settled before the run; a fresh one is resent, a missing one vanished", () => {
  const dir = mkdtempSync(join(tmpdir(), "rrdsync-wt-"));
  writeFileSync(join(dir, "a.rrd"), "a");
  const files = [{ path: "a.rrd", size: 1 }, { path: "gone.rrd", size: 1 }];
  const longAfter = BigInt(Date.now() + 10_000) * 1_000_000n; // the run "started" 10 s after the file settled
  const ok = wholeTreeOutcomes(dir, files, longAfter);
  expect(ok.get("a.rrd")).toMatchObject({ ok: true, bytes: 1, seen: { size: 1 } });
  expect(ok.get("gone.rrd")).toMatchObject({ ok: false, vanished: true });
  const justNow = BigInt(Date.now()) * 1_000_000n; // changed within the 2 s margin: cannot vouch
  expect(wholeTreeOutcomes(dir, files, justNow).get("a.rrd")).toMatchObject({ ok: false, resend: true });
});

test("after exit 23/24 a file counts only if the dry run found it on the replica; one it did not stays pending, named", () => {
  const dir = mkdtempSync(join(tmpdir(), "rrdsync-wt-"));
  writeFileSync(join(dir, "held.rrd"), "a");
  writeFileSync(join(dir, "failed.rrd"), "a");
  writeFileSync(join(dir, "quiet.rrd"), "a");
  const files = ["held.rrd", "failed.rrd", "quiet.rrd", "gone.rrd"].map((path) => ({ path, size: 1 }));
  const longAfter = BigInt(Date.now() + 10_000) * 1_000_000n;
  const errors = new Map([["failed.rrd", 'rsync: [receiver] mkstemp "/d/.failed.rrd.AbC123" failed: Operation not permitted (1)']]);
  const out = wholeTreeOutcomes(dir, files, longAfter, { code: 23, held: new Set(["held.rrd"]), errors, cause: "rsync: [receiver] mkstemp … failed" });
  expect(out.get("held.rrd")).toMatchObject({ ok: true, seen: { size: 1 } });
  expect(out.get("failed.rrd")).toEqual({ ok: false, reason: errors.get("failed.rrd") as string });
  expect(out.get("quiet.rrd")).toEqual({ ok: false, reason: "not on the replica after rsync exited 23 (rsync: [receiver] mkstemp … failed)" });
  expect(out.get("gone.rrd")).toMatchObject({ ok: false, vanished: true });
  // found on the replica, but changed around the start: sent again in a list batch
  const justNow = BigInt(Date.now()) * 1_000_000n;
  expect(wholeTreeOutcomes(dir, files, justNow, { code: 24, held: new Set(["held.rrd"]), errors, cause: "" }).get("held.rrd")).toMatchObject({ ok: false, resend: true });
});

test("with the walk's view (exit 0) no file is stat'ed again: its inode change time decides, its identity is what the walk saw", () => {
  const dir = mkdtempSync(join(tmpdir(), "rrdsync-wt-"));
  const start = 1_700_000_000_000_000_000n;
  const seen = { size: 5, mtimeNs: "1", ino: "7" };
  const files = [
    { path: "settled.rrd", size: 5, walked: { ...seen, ctimeNs: start - 3_000_000_000n } },
    { path: "fresh.rrd", size: 5, walked: { ...seen, ctimeNs: start - 1_000_000_000n } },
  ];
  const out = wholeTreeOutcomes(dir, files, start); // neither exists on disk: they were not looked at
  expect(out.get("settled.rrd")).toMatchObject({ ok: true, bytes: 5, seen });
  expect(out.get("fresh.rrd")).toMatchObject({ ok: false, resend: true });
  const after = { code: 24, held: new Set(["settled.rrd"]), errors: new Map(), cause: "" };
  expect(wholeTreeOutcomes(dir, files, start, after).get("settled.rrd")).toMatchObject({ ok: false, vanished: true }); // after 23/24: looked at
});

test("whole-tree filter rules: own files out (anchored, wildcards escaped), then only the monitored extensions", () => {
  expect(treeFilterArgs({ extensions: [".rrd", ".txt"], exclude: ["state/state.db", "odd[1]*.db"] })).toEqual([
    "--exclude=/state/state.db",
    "--exclude=/odd\\[1]\\*.db",
    "--include=*/",
    "--include=*.rrd",
    "--include=*.txt",
    "--exclude=*",
  ]);
  expect(treeFilterArgs({ extensions: [], exclude: [] })).toEqual([]);
});

test("a whole-tree run walks (-r, no list), skips symlinks/devices after -a, and prints nothing per file by default", () => {
  const argv = buildRsyncArgv({ target, rsync, sourceDir: "/src" }, { extensions: [".rrd"], exclude: [] });
  expect(argv).toContain("-r");
  expect(argv).not.toContain("--files-from=-");
  expect(argv.some((a) => a.startsWith("--out-format"))).toBe(false);
  expect(argv.indexOf("--no-links")).toBeGreaterThan(argv.indexOf("-a"));
  const itemized = buildRsyncArgv({ target, rsync: { ...rsync, itemizeChanges: true }, sourceDir: "/src" }, { extensions: [], exclude: [] });
  expect(itemized.some((a) => a.startsWith("--out-format"))).toBe(true);
  const list = buildRsyncArgv({ target, rsync, sourceDir: "/src" });
  expect(list).toEqual(expect.arrayContaining(["--files-from=-", "--from0", "--ignore-times", "-ii"]));
  expect(list.slice(-2)).toEqual(["/src/", "u@h:/d/"]);
});

test("a whole-tree run's error lines name its failed and vanished files; a line that names none leaves the run unattributed", () => {
  const dir = mkdtempSync(join(tmpdir(), "rrdsync-wt-"));
  writeFileSync(join(dir, "bad.txt"), "b");
  const o = { sourceDir: dir, target: { ...target, destDir: "/srv/replica" } };
  expect(treeErrors(0, ["anything"], o)).toEqual({ code: 0, failed: [], vanished: [], unattributed: [] });
  const r = treeErrors(23, [
    `rsync: [sender] send_files failed to open "${dir}/snmp/1/x.rrd": Permission denied (13)`,
    `file has vanished: "${dir}/snmp/2/y.rrd"`,
    "cannot delete non-empty directory: bad.txt",
    "could not make way for new regular file: bad.txt",
    `rsync: [receiver] write failed on "/srv/replica/snmp/3/z.rrd": No space left on device (28)`,
    "rsync error: some files/attrs were not transferred (see previous errors) (code 23) at main.c(1394) [sender=3.5.0]",
  ], o);
  expect(r).toEqual({ code: 23, failed: ["snmp/1/x.rrd", "bad.txt", "bad.txt", "snmp/3/z.rrd"], vanished: ["snmp/2/y.rrd"], unattributed: [] });
  // a receiver's temp name, or a message that names no file of the tree: which files failed is not known
  expect(treeErrors(23, ['rsync: [receiver] mkstemp "/srv/replica/snmp/1/.x.rrd.Ab12Cd" failed: No space left on device (28)'], o).unattributed).toHaveLength(1);
  expect(treeErrors(23, ["rsync: connection unexpectedly closed (0 bytes received so far) [sender]"], o).unattributed).toHaveLength(1);
  // …but the temporary name of a file the tree has is that file's failure (an immutable directory fails the mkstemp)
  mkdirSync(join(dir, "snmp/4"), { recursive: true });
  writeFileSync(join(dir, "snmp/4/w.rrd"), "w");
  expect(treeErrors(23, ['rsync: [receiver] mkstemp "/srv/replica/snmp/4/.w.rrd.Ab12Cd" failed: Operation not permitted (1)'], o)).toMatchObject({ failed: ["snmp/4/w.rrd"], unattributed: [] });
  expect(treeErrors(23, ['rsync: [receiver] rename "/srv/replica/snmp/4/.rrdsync-partial/w.rrd" -> "snmp/4/w.rrd": Permission denied (13)'], o).failed).toEqual(["snmp/4/w.rrd"]);
  // a directory's failure (mkdir on the replica) names none of the files under it: not attributed
  expect(treeErrors(23, ['rsync: [generator] recv_generator: mkdir "/srv/replica/snmp/4" failed: Operation not permitted (1)'], o).unattributed).toHaveLength(1);
});

test("the check after exit 23/24: a dry run, nanosecond mtimes where the receiver compares them, else checksums", () => {
  const list = buildHeldArgv({ target, rsync, sourceDir: "/src" }, undefined, true);
  expect(list).toEqual(expect.arrayContaining(["--dry-run", "--files-from=-", "--from0", "-ii", "-a", "--modify-window=-1"]));
  expect(list).not.toContain("--ignore-times");
  expect(buildHeldArgv({ target, rsync, sourceDir: "/src" }, undefined, false)).toContain("--checksum");
  expect(buildHeldArgv({ target, rsync: { ...rsync, archive: false }, sourceDir: "/src" }, undefined, true)).toContain("--checksum");
  const tree = buildHeldArgv({ target, rsync, sourceDir: "/src" }, { extensions: [".rrd"], exclude: [] }, true);
  expect(tree).toEqual(expect.arrayContaining(["-r", "--include=*.rrd", "--no-links"]));
  expect(tree.slice(-2)).toEqual(["/src/", "u@h:/d/"]);
  expect([comparesNanoseconds("rsync 3.1.2"), comparesNanoseconds("rsync 3.1.3"), comparesNanoseconds("3.2.7"), comparesNanoseconds("rsync 3.5.0"), comparesNanoseconds("")]).toEqual([false, true, true, true, false]);
});

test("sends keep holes: --sparse for a whole-tree run and a batch holding a sparse file, never --inplace", () => {
  expect(buildRsyncArgv({ target, rsync, sourceDir: "/src" }, undefined, false, true)).toContain("--sparse");
  expect(buildRsyncArgv({ target, rsync, sourceDir: "/src" })).not.toContain("--sparse");
  const tree = buildRsyncArgv({ target, rsync, sourceDir: "/src" }, { extensions: [], exclude: [] });
  expect(tree).toContain("--sparse");
  expect(tree).not.toContain("--inplace");
});
