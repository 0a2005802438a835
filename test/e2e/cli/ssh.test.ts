// Host keys and credentials, end to end: the same scenarios for both transports (RRDSYNC_TEST_TRANSPORT), against
// an sshd offering Ed25519, ECDSA and RSA host keys. OpenSSH judges for rsync, rrdsync's own code for SFTP.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, copyFileSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { keygen, wrongKnownHosts } from "../../helpers/sshd.ts";
import { e2eSuite } from "../../helpers/suite.ts";
import { runRrdsync, TRANSPORT, type World, writeTree } from "../../helpers/world.ts";

setDefaultTimeout(60_000);

const suite = e2eSuite("ssh", { hostKeyTypes: ["ed25519", "ecdsa", "rsa"] });

function withRemote(w: World, extra: Record<string, unknown>): string {
  const s = suite.sshd();
  return w.writeConfig({
    remote_sync: { remote_user: s.user, remote_host: s.host, port: s.port, remote_dest_dir: w.dest, ssh_key_path: s.clientKey, known_hosts_file: s.knownHosts, transport: TRANSPORT, ...extra },
  });
}

function knownHostsWith(w: World, lines: string[]): string {
  const f = join(w.dir, `known_hosts_${Math.random().toString(36).slice(2)}`);
  writeFileSync(f, lines.map((l) => `${l}\n`).join(""));
  return f;
}

const pinned = (type: string) => `[127.0.0.1]:${suite.sshd().port} ${suite.sshd().hostKeys[type]}`;

function fingerprintOf(pubLine: string): string {
  const f = join(suite.sshd().dir, `fp_${Math.random().toString(36).slice(2)}.pub`);
  writeFileSync(f, `${pubLine}\n`);
  return Bun.spawnSync(["ssh-keygen", "-l", "-f", f]).stdout.toString().split(/\s+/)[1] as string;
}

describe(`host keys are never accepted blindly (${TRANSPORT})`, () => {
  async function refused(kh: string) {
    const w = suite.world();
    writeTree(w.src, { "a.txt": "a\n" });
    const r = await runRrdsync(["--once", "--config", withRemote(w, { known_hosts_file: kh })]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("nothing was sent");
    expect(r.stderr).toContain(`ssh-keyscan -p ${suite.sshd().port} 127.0.0.1 >> ${kh}`);
    expect(readdirSync(w.dest)).toEqual([]);
    return r.stderr;
  }

  test("an unknown host is refused, with the offered key's fingerprint and the command that adds it", async () => {
    const w = suite.world();
    const kh = knownHostsWith(w, [`[127.0.0.1]:1 ${suite.sshd().hostKeys.ed25519}`]); // same key, another port
    const err = await refused(kh);
    expect(err).toContain(`host key of [127.0.0.1]:${suite.sshd().port} is not in ${kh}`);
    // OpenSSH offers its preferred key type to a host it knows no key of: ed25519 here, as ssh2 does
    expect(err).toContain(`(the standby offered ${fingerprintOf(suite.sshd().hostKeys.ed25519 as string)})`);
  });

  test("a missing known_hosts file is an unknown host", async () => {
    const w = suite.world();
    expect(await refused(join(w.dir, "no-such-file"))).toContain("is not in");
  });

  test("a changed key is refused loudly", async () => {
    const kh = await wrongKnownHosts(suite.sshd());
    expect(await refused(kh)).toContain(`host key of [127.0.0.1]:${suite.sshd().port} has CHANGED`);
  });

  test("a revoked key is refused, even when also listed as good", async () => {
    const w = suite.world();
    const kh = knownHostsWith(w, [pinned("ed25519"), `@revoked [127.0.0.1]:${suite.sshd().port} ${suite.sshd().hostKeys.ed25519}`]);
    expect(await refused(kh)).toContain("is REVOKED in");
  });

  for (const type of ["ecdsa", "rsa"]) {
    test(`a host known only by its ${type} key is accepted (that key type is asked for first)`, async () => {
      const w = suite.world();
      writeTree(w.src, { "a.txt": "a\n" });
      const r = await runRrdsync(["--once", "--config", withRemote(w, { known_hosts_file: knownHostsWith(w, [pinned(type)]) })]);
      expect({ code: r.code, err: r.stderr }).toEqual({ code: 0, err: "" });
      expect(readFileSync(join(w.dest, "a.txt"), "utf8")).toBe("a\n");
    });
  }

  test("hashed known_hosts (ssh-keygen -H) and wildcard lines are read", async () => {
    const w = suite.world();
    const kh = knownHostsWith(w, [pinned("ed25519")]);
    expect(Bun.spawnSync(["ssh-keygen", "-q", "-H", "-f", kh]).exitCode).toBe(0);
    expect(readFileSync(kh, "utf8")).toStartWith("|1|");
    writeTree(w.src, { "a.txt": "a\n" });
    expect((await runRrdsync(["--once", "--config", withRemote(w, { known_hosts_file: kh })])).code).toBe(0);
    const w2 = suite.world();
    writeTree(w2.src, { "b.txt": "b\n" });
    const wild = knownHostsWith(w2, [`[127.0.0.?]:${suite.sshd().port},!other ${suite.sshd().hostKeys.ed25519}`]);
    expect((await runRrdsync(["--once", "--config", withRemote(w2, { known_hosts_file: wild })])).code).toBe(0);
    expect(readFileSync(join(w2.dest, "b.txt"), "utf8")).toBe("b\n");
  });

  test("a known_hosts path with spaces, quotes, a backslash and % is read whole (ssh would split or expand it); check agrees", async () => {
    const w = suite.world();
    const dir = join(w.dir, "known hosts dir");
    mkdirSync(dir);
    const kh = join(dir, `k h 'q' "d" \\ 100%h.txt`);
    writeFileSync(kh, `${pinned("ed25519")}\n`);
    // the pieces ssh would read if it split the path on whitespace: none of them may serve
    writeFileSync(join(w.dir, "known"), `${pinned("ed25519")}\n`);
    writeTree(w.src, { "a.txt": "a\n" });
    const cfg = withRemote(w, { known_hosts_file: kh });
    const r = await runRrdsync(["--once", "--config", cfg]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    expect(readFileSync(join(w.dest, "a.txt"), "utf8")).toBe("a\n");
    const check = await runRrdsync(["check", "--config", cfg]);
    expect(check.stdout).toContain(`✓ host key: [127.0.0.1]:${suite.sshd().port} is in ${kh}`);
    expect(check.stdout).toContain("✓ ssh login: ");
    // …and an unknown host there is still refused: the quoting did not turn the check off
    writeFileSync(kh, "");
    writeTree(w.src, { "a.txt": "b\n" });
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(1);
  });
});

describe(`credentials (${TRANSPORT})`, () => {
  for (const type of ["rsa", "ecdsa"]) {
    test(`an ${type} client key`, async () => {
      const w = suite.world();
      const key = join(w.dir, `id_${type}`);
      await keygen(key, type);
      suite.sshd().authorize(`${key}.pub`);
      writeTree(w.src, { "a.txt": "a\n" });
      const r = await runRrdsync(["--once", "--config", withRemote(w, { ssh_key_path: key })]);
      expect({ code: r.code, err: r.stderr }).toEqual({ code: 0, err: "" });
    });
  }

  test("a key not in authorized_keys: exit 1, the message names the key", async () => {
    const w = suite.world();
    const key = join(w.dir, "id_stranger");
    await keygen(key);
    writeTree(w.src, { "a.txt": "a\n" });
    const r = await runRrdsync(["--once", "--config", withRemote(w, { ssh_key_path: key })]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`ssh authentication to ${suite.sshd().user}@127.0.0.1:${suite.sshd().port} failed with ${key}`);
  });

  test("a key others can read: OpenSSH refuses it (rsync), the SFTP client warns and uses it", async () => {
    const w = suite.world();
    const key = join(w.dir, "loose_key");
    copyFileSync(suite.sshd().clientKey, key);
    chmodSync(key, 0o644);
    writeTree(w.src, { "a.txt": "a\n" });
    const r = await runRrdsync(["--once", "--config", withRemote(w, { ssh_key_path: key })]);
    if (TRANSPORT === "rsync") {
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`ssh authentication to ${suite.sshd().user}@127.0.0.1:${suite.sshd().port} failed with ${key}`);
    } else {
      expect(r.code).toBe(0);
      expect(r.stderr).toContain(`WARNING - ssh key ${key} is accessible by others (mode 644): OpenSSH refuses such keys; fix: chmod 600 ${key}`);
    }
  });

  test("a passphrase-protected key through ssh-agent", async () => {
    const w = suite.world();
    const key = join(w.dir, "id_locked");
    await keygen(key, "ed25519", "s3cret words");
    suite.sshd().authorize(`${key}.pub`);
    const sock = join(w.dir, "agent.sock");
    const askpass = join(w.dir, "askpass");
    writeFileSync(askpass, "#!/bin/sh\necho 's3cret words'\n", { mode: 0o755 });
    const agent = Bun.spawn(["ssh-agent", "-D", "-a", sock], { stdout: "ignore", stderr: "ignore" });
    try {
      for (let i = 0; i < 100 && Bun.spawnSync(["test", "-S", sock]).exitCode !== 0; i++) await Bun.sleep(20);
      const add = Bun.spawnSync(["ssh-add", key], { env: { ...process.env, SSH_AUTH_SOCK: sock, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: "force", DISPLAY: ":0" }, stdin: "ignore" });
      if (add.exitCode !== 0) throw new Error(`ssh-add: ${add.stderr.toString()}`);
      writeTree(w.src, { "a.txt": "a\n" });
      const r = await runRrdsync(["--once", "--config", withRemote(w, { ssh_key_path: key })], { env: { SSH_AUTH_SOCK: sock } });
      expect({ code: r.code, err: r.stderr }).toEqual({ code: 0, err: "" });
    } finally {
      agent.kill();
    }
  });

  // OpenSSH in batch mode cannot be given a passphrase (only an agent): these are the SFTP client's own.
  test.if(TRANSPORT === "sftp")("a passphrase from RRDSYNC_SSH_PASSPHRASE or ssh_passphrase_file; none or a wrong one is a clear error", async () => {
    const w = suite.world();
    const key = join(w.dir, "id_locked");
    await keygen(key, "ed25519", "s3cret words");
    suite.sshd().authorize(`${key}.pub`);
    writeTree(w.src, { "a.txt": "a\n" });
    const env = { SSH_AUTH_SOCK: "" };
    let r = await runRrdsync(["--once", "--config", withRemote(w, { ssh_key_path: key })], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`ssh key ${key} is protected by a passphrase: set RRDSYNC_SSH_PASSPHRASE or remote_sync.ssh_passphrase_file`);
    r = await runRrdsync(["--once", "--config", withRemote(w, { ssh_key_path: key })], { env: { ...env, RRDSYNC_SSH_PASSPHRASE: "wrong" } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("the passphrase does not open it");
    r = await runRrdsync(["--once", "--config", withRemote(w, { ssh_key_path: key })], { env: { ...env, RRDSYNC_SSH_PASSPHRASE: "s3cret words" } });
    expect({ code: r.code, err: r.stderr }).toEqual({ code: 0, err: "" });
    const pf = join(w.dir, "passphrase");
    writeFileSync(pf, "s3cret words\n", { mode: 0o600 });
    writeTree(w.src, { "b.txt": "b\n" });
    r = await runRrdsync(["--once", "--config", withRemote(w, { ssh_key_path: key, ssh_passphrase_file: pf })], { env });
    expect({ code: r.code, err: r.stderr }).toEqual({ code: 0, err: "" });
    expect(readFileSync(join(w.dest, "b.txt"), "utf8")).toBe("b\n");
  });
});

describe(`the standby's own files are not written through (${TRANSPORT})`, () => {
  // rsync's temporary names are random; SFTP's are fixed per file, so a planted symlink must not be followed.
  test.if(TRANSPORT === "sftp")("a symlink planted at a temporary name or in place of a directory leads nowhere", async () => {
    const w = suite.world();
    const outside = join(w.dir, "outside");
    writeTree(outside, { "victim.txt": "keep\n" });
    writeTree(w.src, { "a.txt": "a\n", "sub/b.txt": "b\n" });
    symlinkSync(join(outside, "victim.txt"), join(w.dest, ".a.txt.rrdsync-tmp"));
    symlinkSync(outside, join(w.dest, "sub"));
    const r = await runRrdsync(["--once", "--config", withRemote(w, {})]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${join(w.dest, "sub")} on the standby is a symlink: not written through`);
    expect(readFileSync(join(outside, "victim.txt"), "utf8")).toBe("keep\n");
    expect(readdirSync(outside)).toEqual(["victim.txt"]);
    expect(readFileSync(join(w.dest, "a.txt"), "utf8")).toBe("a\n");
  });
});
