// One ssh2 connection with an SFTP channel: strict host-key checking against known_hosts, key/agent auth, keepalive.
import { readFileSync } from "node:fs";
import type { Socket } from "node:net";
import { userInfo } from "node:os";
import { Client, type SFTPWrapper } from "ssh2";
import type { Target } from "../config/types.ts";
import { fingerprint, type HostKeyVerdict, hostKeyRefusal, judgeHostKey, type KnownHostLine, lookupName, parseKnownHosts, preferKnownTypes } from "./known-hosts.ts";
import type { SshIdentity } from "./ssh-auth.ts";

/** OpenSSH reads the system-wide file beside the user's; so do we, so both transports trust the same keys. */
const GLOBAL_KNOWN_HOSTS = ["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"];
// What ssh2 can do in this runtime (without its native addon, e.g. no chacha20-poly1305 under Bun).
const ssh2Constants = require("ssh2/lib/protocol/constants.js") as { SUPPORTED_CIPHER: string[]; SUPPORTED_SERVER_HOST_KEY: string[] };
/** ssh-dss left out, as OpenSSH does */
const HOST_KEY_ALGORITHMS = ssh2Constants.SUPPORTED_SERVER_HOST_KEY.filter((a) => a !== "ssh-dss");
/** names in ssh_ciphers that ssh2 lacks are skipped */
const SSH2_CIPHERS = new Set(ssh2Constants.SUPPORTED_CIPHER);
/** the same limits the rsync transport gives OpenSSH (ConnectTimeout=15, ServerAliveInterval=15, ServerAliveCountMax=4) */
const CONNECT_TIMEOUT_MS = 15_000;
const KEEPALIVE_MS = 15_000;
const KEEPALIVE_MAX = 4;

/** The connection failed or was refused; the message is for people. `hostKey`: refused for its host key. */
export class SshConnectError extends Error {
  constructor(message: string, readonly hostKey = false) {
    super(message);
  }
}

export function readKnownHosts(file: string): KnownHostLine[] {
  const lines: KnownHostLine[] = [];
  for (const f of [file, ...GLOBAL_KNOWN_HOSTS]) {
    try {
      lines.push(...parseKnownHosts(readFileSync(f, "utf8")));
    } catch {
      // a missing file holds no keys: the host is then unknown and refused
    }
  }
  return lines;
}

/**
 * ssh2 hands the socket each piece of a packet separately (length, ciphertext, tag: 3-4 sendto calls per SFTP
 * request, 18 per small file measured); gathered per event-loop turn they go out as one write. The bytes are copied
 * as they come, since a caller may reuse its buffer once write() returns.
 */
function coalesceWrites(sock: Socket): void {
  const write = sock.write.bind(sock) as (data: Uint8Array) => boolean;
  let corked = false;
  const uncork = () => {
    corked = false;
    sock.uncork();
  };
  sock.write = ((data: Uint8Array) => {
    if (!corked) {
      corked = true;
      sock.cork();
      setImmediate(uncork);
    }
    return write(data);
  }) as typeof sock.write;
}

type Callback<T> = (err: (Error & { code?: number | string }) | null | undefined, value?: T) => void;

export class SshSession {
  /** set once the connection has ended, with why */
  ended: string | null = null;
  /** requests not answered yet, failed at once if the connection ends */
  private readonly waiting = new Set<(reason: string) => void>();

  private constructor(
    readonly client: Client,
    readonly sftp: SFTPWrapper,
  ) {}

  static async open(t: Target, id: SshIdentity, signal?: AbortSignal): Promise<SshSession> {
    const known = readKnownHosts(t.knownHostsFile);
    const name = lookupName(t.host, t.port);
    let verdict: (HostKeyVerdict & { fp: string }) | null = null;
    const ciphers = t.sshCiphers.split(",").map((c) => c.trim()).filter((c) => SSH2_CIPHERS.has(c));
    const client = new Client();
    const hostPort = `${t.host.includes(":") ? `[${t.host}]` : t.host}:${t.port}`;
    const ready = new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        client.destroy();
        reject(new SshConnectError("interrupted"));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      client.once("ready", () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      });
      client.once("error", (e: Error & { level?: string; code?: string }) => {
        signal?.removeEventListener("abort", onAbort);
        if (verdict && verdict.kind !== "ok") {
          reject(new SshConnectError(hostKeyRefusal(verdict.kind, t, verdict.fp), true));
        } else if (e.level === "client-authentication") {
          reject(new SshConnectError(`ssh authentication to ${t.user ? `${t.user}@` : ""}${hostPort} failed with ${id.keyPath || "the keys in ssh-agent"}${id.agent && id.keyPath ? " and ssh-agent" : ""}: add the public key to the remote authorized_keys`));
        } else if (e.level === "client-timeout" || /timed out/i.test(e.message)) {
          reject(new SshConnectError(`cannot connect to ${hostPort}: Connection timed out`));
        } else if (e.code === "ECONNREFUSED") {
          reject(new SshConnectError(`cannot connect to ${hostPort}: Connection refused`));
        } else if (e.code === "ENOTFOUND" || e.code === "EAI_AGAIN") {
          reject(new SshConnectError(`cannot connect to ${hostPort}: Could not resolve hostname ${t.host}`));
        } else {
          reject(new SshConnectError(`cannot connect to ${hostPort}: ${e.message}`));
        }
      });
    });
    client.connect({
      host: t.host,
      port: t.port,
      username: t.user || process.env.USER || userInfo().username,
      privateKey: id.privateKey,
      passphrase: id.passphrase,
      agent: id.agent,
      readyTimeout: CONNECT_TIMEOUT_MS,
      keepaliveInterval: KEEPALIVE_MS,
      keepaliveCountMax: KEEPALIVE_MAX,
      algorithms: {
        serverHostKey: preferKnownTypes(known, name, HOST_KEY_ALGORITHMS) as never,
        ...(ciphers.length > 0 ? { cipher: ciphers as never } : {}),
      },
      // Never accept an unknown, changed or revoked key: ssh2's default (no verifier) accepts any.
      hostVerifier: (key: Buffer) => {
        verdict = { ...judgeHostKey(known, name, key), fp: fingerprint(key) };
        return verdict.kind === "ok";
      },
    });
    coalesceWrites((client as unknown as { _sock: Socket })._sock);
    await ready;
    const sftp = await new Promise<SFTPWrapper>((resolve, reject) => {
      client.sftp((err, s) => (err ? reject(new SshConnectError(`the SFTP subsystem of ${hostPort} is not available: ${err.message} (is "Subsystem sftp" set in its sshd_config?)`)) : resolve(s)));
    }).catch((e) => {
      client.end();
      throw e;
    });
    const session = new SshSession(client, sftp);
    client.on("error", (e: Error) => session.end(`connection to ${hostPort} lost: ${e.message}`));
    client.on("close", () => session.end(`connection to ${hostPort} closed`));
    sftp.on("close", () => session.end(`SFTP session with ${hostPort} closed`));
    return session;
  }

  /**
   * An SFTP request as a promise. ssh2 answers requests pending when its channel closes with an error, but one
   * sent after that is dropped and never answered: this one settles when the connection ends, whatever ssh2 does.
   */
  call<T = void>(fn: (cb: Callback<T>) => void): Promise<T> {
    if (this.ended !== null) return Promise.reject(new Error(this.ended));
    return new Promise<T>((resolve, reject) => {
      const onEnd = (reason: string) => reject(new Error(reason));
      this.waiting.add(onEnd);
      fn((err, value) => {
        this.waiting.delete(onEnd);
        if (err) reject(err);
        else resolve(value as T);
      });
    });
  }

  /** Records why the connection ended (the first reason wins) and fails every request still waiting. */
  end(reason: string): void {
    this.ended ??= reason;
    const why = this.ended;
    for (const w of [...this.waiting]) w(why);
    this.waiting.clear();
  }

  close(): void {
    this.end("closed");
    this.client.end();
  }

  destroy(): void {
    this.end("interrupted");
    this.client.destroy();
  }
}
