// One ssh2 connection with an SFTP channel: strict host-key checking against known_hosts, key/agent auth, keepalive.
import { readFileSync } from "node:fs";
import type { Socket } from "node:net";
import { userInfo } from "node:os";
import { Client, type SFTPWrapper } from "ssh2";
import type { Target } from "../../config/types.ts";
import { fingerprint, type HostKeyVerdict, hostKeyRefusal, judgeHostKey, type KnownHostLine, lookupName, parseKnownHosts, preferKnownTypes } from "./known-hosts.ts";
import type { SshIdentity } from "./auth.ts";

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
 * Gathers what ssh2 sends during one event-loop turn and sends it at the turn's end:
 * - ssh2 hands the socket each piece of a packet separately (length, ciphertext, tag: 3-4 sendto calls per SFTP
 *   request, 18 per small file measured); the socket is corked for the turn, so they go out as one write;
 * - ssh2 makes each SFTP request its own SSH packet, to encrypt here and decrypt on the standby (five per small
 *   file). SFTP is a byte stream, so once `batchChannel` is set, the turn's small requests go as one channel-data
 *   packet (up to the channel's packet size; ssh2 already counted the window per request). Anything else ssh2
 *   sends for that channel (EOF, close) flushes them first, so the order on the wire stays ssh2's.
 */
class TurnBatcher {
  private scheduled = false;
  private pending: Buffer[] = [];
  private pendingLen = 0;
  private flushChannel: () => void = () => undefined;

  constructor(private readonly sock: Socket) {
    const write = sock.write.bind(sock) as (data: Uint8Array) => boolean;
    sock.write = ((data: Uint8Array) => {
      this.schedule();
      return write(data);
    }) as typeof sock.write;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.sock.cork();
    setImmediate(() => {
      this.scheduled = false;
      this.flushChannel();
      this.sock.uncork();
    });
  }

  batchChannel(client: Client, sftp: SFTPWrapper): void {
    type Proto = { channelData(chan: number, data: Buffer): void; channelEOF(chan: number): void; channelClose(chan: number): void };
    const proto = (client as unknown as { _protocol: Proto })._protocol;
    const chan = (sftp as unknown as { outgoing: { id: number; packetSize: number } }).outgoing;
    const send = proto.channelData.bind(proto);
    this.flushChannel = () => {
      if (this.pending.length === 0) return;
      const data = this.pending.length === 1 ? (this.pending[0] as Buffer) : Buffer.concat(this.pending, this.pendingLen);
      this.pending = [];
      this.pendingLen = 0;
      send(chan.id, data);
    };
    proto.channelData = (id, data) => {
      if (id !== chan.id) return send(id, data);
      // A write's data goes as it is (gathering it would copy it once more for nothing), after what waits.
      if (data.length > SMALL_REQUEST || this.pendingLen + data.length > chan.packetSize) this.flushChannel();
      if (data.length > SMALL_REQUEST) return send(id, data);
      this.pending.push(data);
      this.pendingLen += data.length;
      this.schedule();
    };
    for (const m of ["channelEOF", "channelClose"] as const) {
      const orig = proto[m].bind(proto);
      proto[m] = (id) => {
        if (id === chan.id) this.flushChannel();
        orig(id);
      };
    }
  }
}

const SMALL_REQUEST = 4096;

type Callback<T> = (err: (Error & { code?: number | string }) | null | undefined, value?: T) => void;

export class SshSession {
  /** set once the connection has ended, with why */
  ended: string | null = null;

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
      if (signal?.aborted) onAbort();
      client.once("ready", () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      });
      // A connection that closes without an error event still settles the login (later settlements are no-ops).
      client.once("close", () => reject(new SshConnectError(`cannot connect to ${hostPort}: the connection closed during the login`)));
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
    // ssh2 can emit more than one error (a login timer firing after an auth failure, say); an error event
    // without a listener would throw and take a daemon down. Later errors only end the session (below).
    client.on("error", () => undefined);
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
    const batcher = new TurnBatcher((client as unknown as { _sock: Socket })._sock);
    await ready.catch((e) => {
      client.destroy();
      throw e;
    });
    const sftp = await new Promise<SFTPWrapper>((resolve, reject) => {
      client.once("close", () => reject(new SshConnectError(`connection to ${hostPort} closed before the SFTP session opened`)));
      client.sftp((err, s) => (err ? reject(new SshConnectError(`the SFTP subsystem of ${hostPort} is not available: ${err.message} (is "Subsystem sftp" set in its sshd_config?)`)) : resolve(s)));
    }).catch((e) => {
      client.destroy();
      throw e;
    });
    batcher.batchChannel(client, sftp);
    const session = new SshSession(client, sftp);
    client.on("error", (e: Error) => session.end(`connection to ${hostPort} lost: ${e.message}`));
    client.on("close", () => session.end(`connection to ${hostPort} closed`));
    // "end" comes first, from the same call that fails ssh2's pending requests: nothing is sent after it.
    sftp.on("end", () => session.end(`SFTP session with ${hostPort} ended`));
    sftp.on("close", () => session.end(`SFTP session with ${hostPort} closed`));
    return session;
  }

  /**
   * An SFTP request as a promise. ssh2 fails the requests pending when its channel ends, but drops one sent after
   * that without ever answering it: a request after the end is refused here instead.
   */
  call<T = void>(fn: (cb: Callback<T>) => void): Promise<T> {
    if (this.ended !== null) return Promise.reject(new Error(this.ended));
    return new Promise<T>((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value as T))));
  }

  /** Records why the connection ended (the first reason wins) and fails every request still unanswered. */
  end(reason: string): void {
    this.ended ??= reason;
    // ssh2 does this itself when the channel's stream ends; when the connection dies first it may not have yet.
    const pending = (this.sftp as unknown as { _requests?: Record<string, { cb?: (e: Error) => void }> })._requests;
    if (!pending) return;
    const err = new Error(this.ended);
    for (const [id, req] of Object.entries(pending)) {
      delete pending[id];
      req.cb?.(err);
    }
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
