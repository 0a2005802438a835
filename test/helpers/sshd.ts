// A throwaway sshd on 127.0.0.1 with generated host and client keys and a pinned known_hosts, for e2e tests and benches.
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";

export interface SshdFixture {
  host: string;
  port: number;
  user: string;
  clientKey: string;
  knownHosts: string;
  dir: string;
  /** the host's public keys by type ("ed25519", "ecdsa", "rsa"), as "type base64" */
  hostKeys: Record<string, string>;
  /** lets a further client public key (a file) log in */
  authorize(pubKeyFile: string): void;
  /** successful ssh logins so far (benches count handshakes, not only seconds) */
  logins(): number;
  stop(): Promise<void>;
  start(): Promise<void>;
  cleanup(): Promise<void>;
}

async function run(argv: string[]): Promise<void> {
  const p = Bun.spawn(argv, { stdout: "ignore", stderr: "pipe", stdin: "ignore" });
  const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`${argv[0]} exited ${code}: ${err}`);
}

async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const addr = s.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect({ host: "127.0.0.1", port });
    c.once("connect", () => {
      c.destroy();
      resolve(true);
    });
    c.once("error", () => resolve(false));
  });
}

export async function keygen(path: string, type = "ed25519", passphrase = ""): Promise<void> {
  await run(["ssh-keygen", "-q", "-t", type, ...(type === "rsa" ? ["-b", "2048"] : []), "-N", passphrase, "-C", "rrdsync-test", "-f", path]);
}

/**
 * `user`: log in as this user instead of the current one (benches use a plain-shell user, like a real standby).
 * `hostKeyTypes`: the host's keys (the first is the one pinned in knownHosts). `withoutRsync`: a standby with no rsync; `withoutSftp`: one with no SFTP subsystem.
 */
export async function startSshd(opts: { user?: string; hostKeyTypes?: string[]; withoutRsync?: boolean; withoutSftp?: boolean } = {}): Promise<SshdFixture> {
  const dir = mkdtempSync(join(tmpdir(), "rrdsync-sshd-"));
  const port = await freePort();
  // Bun's os.userInfo() can report "unknown" (no NSS lookup); `id -un` asks the system.
  const user = opts.user ?? (new TextDecoder().decode(Bun.spawnSync(["id", "-un"]).stdout).trim() || userInfo().username);
  const types = opts.hostKeyTypes ?? ["ed25519"];
  const hostKeyFiles = types.map((t) => join(dir, `host_${t}`));
  const hostKey = hostKeyFiles[0] as string;
  const clientKey = join(dir, "client_ed25519");
  await Promise.all([...types.map((t, i) => keygen(hostKeyFiles[i] as string, t)), keygen(clientKey)]);
  const hostKeys = Object.fromEntries(types.map((t, i) => [t, readFileSync(`${hostKeyFiles[i]}.pub`, "utf8").trim().split(/\s+/).slice(0, 2).join(" ")]));
  writeFileSync(join(dir, "authorized_keys"), readFileSync(`${clientKey}.pub`), { mode: 0o644 });
  // sshd reads authorized_keys as the logging-in user: another user needs to get into the (0700) temp dir.
  if (opts.user) chmodSync(dir, 0o755);
  const hostPub = readFileSync(`${hostKey}.pub`, "utf8").trim().split(/\s+/).slice(0, 2).join(" ");
  const knownHosts = join(dir, "known_hosts");
  writeFileSync(knownHosts, `[127.0.0.1]:${port} ${hostPub}\n`);
  const config = join(dir, "sshd_config");
  writeFileSync(
    config,
    [
      "ListenAddress 127.0.0.1",
      `Port ${port}`,
      ...hostKeyFiles.map((f) => `HostKey ${f}`),
      `PidFile ${join(dir, "sshd.pid")}`,
      `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
      "StrictModes no",
      "UsePAM no",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PermitRootLogin prohibit-password",
      "LogLevel INFO", // INFO logs each "Accepted publickey": the login counter reads it
      "MaxStartups 100:30:200",
      "MaxSessions 100",
      ...(opts.withoutSftp ? [] : ["Subsystem sftp internal-sftp"]),
      // A standby without rsync: commands find nothing on PATH (SFTP runs inside sshd and needs none).
      ...(opts.withoutRsync ? ["SetEnv PATH=/nonexistent"] : []),
      "",
    ].join("\n"),
  );
  mkdirSync("/run/sshd", { recursive: true }); // sshd's privilege-separation dir: it refuses to start without it

  let proc: ReturnType<typeof Bun.spawn> | null = null;
  let stderrText = "";
  let logins = 0;
  const fx: SshdFixture = {
    host: "127.0.0.1",
    port,
    user,
    clientKey,
    knownHosts,
    dir,
    hostKeys,
    authorize(pubKeyFile) {
      writeFileSync(join(dir, "authorized_keys"), readFileSync(pubKeyFile), { flag: "a" });
    },
    logins: () => logins,
    async start() {
      if (proc && proc.exitCode === null) return;
      proc = Bun.spawn(["/usr/sbin/sshd", "-D", "-e", "-f", config], { stdout: "ignore", stderr: "pipe", stdin: "ignore" });
      const p = proc;
      void (async () => {
        // Read sshd's stderr as it comes, keeping only the tail: an unread pipe grows without bound.
        const dec = new TextDecoder();
        for await (const chunk of p.stderr as ReadableStream<Uint8Array>) {
          const text = dec.decode(chunk, { stream: true });
          logins += text.split("Accepted publickey").length - 1;
          stderrText = (stderrText + text).slice(-4000);
        }
      })();
      const deadline = Date.now() + 5000;
      while (Date.now() < deadline) {
        if (p.exitCode !== null) throw new Error(`sshd exited ${p.exitCode}: ${stderrText}`);
        if (await canConnect(port)) return;
        await Bun.sleep(20);
      }
      throw new Error(`sshd did not listen on 127.0.0.1:${port} within 5 s: ${stderrText}`);
    },
    async stop() {
      const p = proc;
      proc = null;
      if (!p || p.exitCode !== null) return;
      // An outage ends open sessions too (a kept-open SFTP connection would otherwise outlive the listener).
      for (const pid of childrenOf(p.pid)) {
        try {
          process.kill(pid, "SIGTERM");
        } catch {
          // already gone
        }
      }
      p.kill("SIGTERM");
      await p.exited;
      const deadline = Date.now() + 5000;
      while (Date.now() < deadline && (await canConnect(port))) await Bun.sleep(20);
    },
    async cleanup() {
      await fx.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await fx.start();
  return fx;
}

/** Direct children of a process (sshd's per-connection processes), from /proc. */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      // the command name (field 2) may hold spaces and parens: fields after the last ')' are fixed
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) out.push(Number(name));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** A known_hosts that pins a DIFFERENT host key for the fixture's [127.0.0.1]:PORT: the connection must be refused. */
export async function wrongKnownHosts(fx: SshdFixture): Promise<string> {
  const other = join(fx.dir, `other_host_${Date.now()}`);
  await keygen(other);
  const pub = readFileSync(`${other}.pub`, "utf8").trim().split(/\s+/).slice(0, 2).join(" ");
  const path = join(fx.dir, `wrong_known_hosts_${Date.now()}`);
  writeFileSync(path, `[127.0.0.1]:${fx.port} ${pub}\n`);
  return path;
}
