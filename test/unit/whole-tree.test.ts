import { expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildRsyncArgv, treeFilterArgs } from "../../src/transport/rsync-args.ts";
import { treeErrors, wholeTreeOutcomes } from "../../src/transport/rsync.ts";

const target = { user: "u", host: "h", port: 22, destDir: "/d", sshKeyPath: "", knownHostsFile: "/k", sshCiphers: "", transport: "rsync" as const, sftpParallelFiles: 8, sshPassphraseFile: "" };
const rsync = { archive: true, compress: false, verbose: false, update: false, checksum: false, partial: false, bwlimit: 0, itemizeChanges: false, stats: false };

test("exit 0 confirms a file whose inode settled before the run; a fresh one is resent, a missing one vanished", () => {
  const dir = mkdtempSync(join(tmpdir(), "rrdsync-wt-"));
  writeFileSync(join(dir, "a.rrd"), "a");
  const files = [{ path: "a.rrd", size: 1 }, { path: "gone.rrd", size: 1 }];
  const longAfter = BigInt(Date.now() + 10_000) * 1_000_000n; // the run "started" 10 s after the file settled
  const ok = wholeTreeOutcomes(dir, files, 0, longAfter);
  expect(ok.get("a.rrd")).toMatchObject({ ok: true, bytes: 1, seen: { size: 1 } });
  expect(ok.get("gone.rrd")).toMatchObject({ ok: false, vanished: true });
  const justNow = BigInt(Date.now()) * 1_000_000n; // changed within the 2 s margin: cannot vouch
  expect(wholeTreeOutcomes(dir, files, 0, justNow).get("a.rrd")).toMatchObject({ ok: false, resend: true });
  // exit 23: we do not know which file failed, so every present file is resent in a list batch
  expect(wholeTreeOutcomes(dir, files, 23, longAfter).get("a.rrd")).toMatchObject({ ok: false, resend: true });
});

test("with the walk's view (exit 0) no file is stat'ed again: its inode change time decides, its identity is what the walk saw", () => {
  const dir = mkdtempSync(join(tmpdir(), "rrdsync-wt-"));
  const start = 1_700_000_000_000_000_000n;
  const seen = { size: 5, mtimeNs: "1", ino: "7" };
  const files = [
    { path: "settled.rrd", size: 5, walked: { ...seen, ctimeNs: start - 3_000_000_000n } },
    { path: "fresh.rrd", size: 5, walked: { ...seen, ctimeNs: start - 1_000_000_000n } },
  ];
  const out = wholeTreeOutcomes(dir, files, 0, start); // neither exists on disk: they were not looked at
  expect(out.get("settled.rrd")).toMatchObject({ ok: true, bytes: 5, seen });
  expect(out.get("fresh.rrd")).toMatchObject({ ok: false, resend: true });
  expect(wholeTreeOutcomes(dir, files, 24, start).get("settled.rrd")).toMatchObject({ ok: false, vanished: true }); // after 23/24: looked at
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
});
