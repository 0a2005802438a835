// The master's socket directory: where it goes (sun_path's limit), and which leftovers are removed.
import { expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cleanStaleSocketDirs, socketBase } from "../../src/transport/ssh/master.ts";

test("socket directories go to XDG_RUNTIME_DIR, else TMPDIR, else /tmp; never where the socket path would not fit", () => {
  expect(socketBase({ XDG_RUNTIME_DIR: "/run/user/0", TMPDIR: "/var/tmp" })).toBe("/run/user/0");
  expect(socketBase({ XDG_RUNTIME_DIR: "", TMPDIR: "/var/tmp/" })).toBe("/var/tmp");
  expect(socketBase({ XDG_RUNTIME_DIR: "relative", TMPDIR: undefined })).toBe("/tmp");
  const long = `/${"x".repeat(70)}`;
  expect(socketBase({ XDG_RUNTIME_DIR: long, TMPDIR: "/var/tmp" })).toBe("/var/tmp");
  // the longest accepted base still leaves room for the socket and the suffix ssh adds while binding
  const base = `/${"y".repeat(40)}`;
  expect(socketBase({ TMPDIR: base })).toBe(base);
  expect(Buffer.byteLength(`${base}/rrdsync-mux-4194304-AbCdEf/m99999.0123456789abcdef`)).toBeLessThan(104);
});

test("stale socket directories: only ours, only of processes that are gone", () => {
  const base = mkdtempSync(join(tmpdir(), "rrdsync-stale-"));
  try {
    const dead = join(base, "rrdsync-mux-999999999-AbCdEf");
    const live = join(base, `rrdsync-mux-${process.ppid}-AbCdEf`);
    const other = join(base, "rrdsync-mux-999999999-toolongname");
    const unrelated = join(base, "something-else");
    for (const d of [dead, live, other, unrelated]) mkdirSync(d);
    cleanStaleSocketDirs(base);
    expect([dead, live, other, unrelated].map((d) => existsSync(d))).toEqual([false, true, true, true]);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test("a command through the master keeps every option of a direct connection, and can never log in on its own", async () => {
  const { sshCommand, buildRsyncArgv } = await import("../../src/transport/rsync/args.ts");
  const t = {
    user: "u", host: "standby", port: 2222, destDir: "/d", sshKeyPath: "/k", knownHostsFile: "/kh", sshCiphers: "aes128-gcm@openssh.com",
    transport: "rsync" as const, sftpParallelFiles: 8, sshPassphraseFile: "",
  };
  const direct = sshCommand(t);
  const slave = sshCommand(t, "/run/x y/rrdsync-mux-1-AbCdEf/m");
  expect(slave.slice(0, direct.length)).toEqual(direct);
  expect(direct).toContain("StrictHostKeyChecking=yes");
  expect(direct).toContain("BatchMode=yes");
  expect(slave.slice(direct.length)).toEqual(["-o", "ControlMaster=no", "-o", "ControlPath=/run/x y/rrdsync-mux-1-AbCdEf/m", "-o", "ProxyCommand=false"]);
  const rsync = { archive: true, compress: false, verbose: false, update: false, checksum: false, partial: false, bwlimit: 0, itemizeChanges: false, stats: false };
  const argv = buildRsyncArgv({ target: t, rsync, sourceDir: "/src", controlPath: "/run/x y/rrdsync-mux-1-AbCdEf/m" });
  expect(argv[argv.indexOf("-e") + 1]).toEndWith("-o ControlMaster=no -o 'ControlPath=/run/x y/rrdsync-mux-1-AbCdEf/m' -o ProxyCommand=false");
});
