// Picks the transport for a target; the engine only ever sees the Transport interface.
import type { Config, Target } from "../config/types.ts";
import type { RootMarker } from "./marker.ts";
import { probeRemoteRsync } from "./probe.ts";
import { RsyncTransport } from "./rsync/transport.ts";
import { explainFailureOnline } from "./rsync/errors.ts";
import { SshMaster } from "./ssh/master.ts";
import type { BatchFile, BatchResult, DeleteResult, KeepResult, MoveResult, PullResult, ReplicaState, ReplicaStateOptions, SendOptions, Transport, TransportLog, VerifyRequest, VerifyResult, Version } from "./types.ts";

export function createTransport(config: Config, log?: TransportLog): Transport {
  const t = config.target;
  // The SFTP client (ssh2) loads only when a target uses it: ~10 MB and start-up time every cron run would pay.
  if (t.transport === "sftp") {
    const description = `sftp → ${t.user ? `${t.user}@` : ""}${t.host}:${t.destDir}`;
    const journal = `${config.stateFile}.sftp-inflight`;
    return new DeferredTransport(description, async () => new (await import("./sftp/transport.ts")).SftpTransport({ target: t, sourceDir: config.sourceDir, log, journal }));
  }
  if (t.transport === "auto" && t.host !== "") {
    return new DeferredTransport(`auto → ${t.user ? `${t.user}@` : ""}${t.host}:${t.destDir}`, async () => {
      // The probe's connection becomes the rsync transport's: one login for both.
      const master = new SshMaster(t);
      const c = await chooseTransport(t, master);
      if ("error" in c || c.kind === "sftp") await master.close();
      if ("error" in c) return c.error;
      log?.info(`transport: ${c.kind} (auto: ${c.why})`);
      const chosen = { ...config, target: { ...t, transport: c.kind } };
      return c.kind === "rsync" ? new RsyncTransport({ target: chosen.target, rsync: config.rsync, sourceDir: config.sourceDir, master }) : createTransport(chosen, log);
    });
  }
  return new RsyncTransport({ target: t, rsync: config.rsync, sourceDir: config.sourceDir });
}

/** Why auto picks what it picks, for the log and `check`. `master`: ask through it (started here if need be). */
export async function chooseTransport(t: Target, master?: SshMaster): Promise<{ kind: "rsync" | "sftp"; why: string } | { error: string }> {
  if (Bun.which("rsync") === null) return { kind: "sftp", why: "rsync is not installed here" };
  if (Bun.which("ssh") === null) return { kind: "sftp", why: "the ssh client is not installed here" };
  const failed = await master?.ensure();
  if (failed) return { error: await explainFailureOnline(failed.code, failed.stderr, t) };
  const p = await probeRemoteRsync(t, master?.controlPath);
  if (p.kind === "unreachable") return { error: p.error };
  if (p.kind === "present") return { kind: "rsync", why: `${p.version} on the standby` };
  return { kind: "sftp", why: `the standby has no rsync (${p.detail})` };
}

/**
 * A transport made at first use: SFTP's module is loaded then, and "auto" asks the standby then (one ssh login),
 * keeping the answer for the run. While `make` fails (the standby cannot be reached to ask), each call fails as a
 * transfer would, and the next one tries again.
 */
class DeferredTransport implements Transport {
  private made: Transport | null = null;
  /** the one make under way: callers at the same moment (a pass warming the connection while its batch checks the replica) share it, or each would log in */
  private making: Promise<Transport | string> | null = null;

  constructor(private readonly pending: string, private readonly make: () => Promise<Transport | string>) {}

  get description(): string {
    return this.made?.description ?? this.pending;
  }

  private async get(): Promise<Transport | string> {
    if (this.made) return this.made;
    this.making ??= this.make().finally(() => {
      this.making = null;
    });
    const t = await this.making;
    if (typeof t !== "string") this.made = t;
    return t;
  }

  async walksTree(): Promise<boolean> {
    const t = await this.get();
    return typeof t !== "string" && (await t.walksTree?.()) === true;
  }

  async sendBatch(files: BatchFile[] | Promise<BatchFile[]>, signal?: AbortSignal, opts?: SendOptions): Promise<BatchResult> {
    const t = await this.get();
    if (typeof t !== "string") return t.sendBatch(files, signal, opts);
    const outcomes = new Map((await files).map((f) => [f.path, { ok: false as const, reason: t }]));
    return { outcomes, error: t, infoLines: [], bytesSent: 0 };
  }

  async deleteFiles(paths: string[], signal?: AbortSignal): Promise<DeleteResult> {
    const t = await this.get();
    return typeof t === "string" ? { deleted: new Set(), error: t } : t.deleteFiles(paths, signal);
  }

  async moveFiles(moves: Array<{ from: string; to: string }>, signal?: AbortSignal): Promise<MoveResult> {
    const t = await this.get();
    return typeof t === "string" ? { moved: new Set(), error: t } : t.moveFiles(moves, signal);
  }

  async replicaState(paths: string[], signal?: AbortSignal, opts?: ReplicaStateOptions): Promise<ReplicaState> {
    const t = await this.get();
    return typeof t === "string" ? { files: new Map(), marker: null, fence: null, error: t } : t.replicaState(paths, signal, opts);
  }

  async keepReplicaCopies(paths: string[], under: string, signal?: AbortSignal): Promise<KeepResult> {
    const t = await this.get();
    return typeof t === "string" ? { kept: new Set(), error: t } : t.keepReplicaCopies(paths, under, signal);
  }

  async writeRootMarker(name: RootMarker, text: string, signal?: AbortSignal): Promise<string | null> {
    const t = await this.get();
    return typeof t === "string" ? t : t.writeRootMarker(name, text, signal);
  }

  async removeRootMarker(name: RootMarker, signal?: AbortSignal): Promise<string | null> {
    const t = await this.get();
    return typeof t === "string" ? t : t.removeRootMarker(name, signal);
  }

  async listReplica(onFile: (path: string, v: Version) => void, signal?: AbortSignal): Promise<string | null> {
    const t = await this.get();
    return typeof t === "string" ? t : t.listReplica(onFile, signal);
  }

  async pullFiles(paths: string[], into: string, signal?: AbortSignal, onFile?: (done: number) => void): Promise<PullResult> {
    const t = await this.get();
    return typeof t === "string" ? { pulled: new Set(), error: t } : t.pullFiles(paths, into, signal, onFile);
  }

  async clearMarker(text: string, signal?: AbortSignal): Promise<{ outcome: "cleared" | "gone" | "changed"; error: string | null }> {
    const t = await this.get();
    return typeof t === "string" ? { outcome: "changed", error: t } : t.clearMarker(text, signal);
  }

  async readReplicaHeads(paths: string[], bytes: number, signal?: AbortSignal): Promise<Map<string, Buffer>> {
    const t = await this.get();
    return typeof t === "string" ? new Map() : ((await t.readReplicaHeads?.(paths, bytes, signal)) ?? new Map());
  }

  async warm(signal?: AbortSignal): Promise<void> {
    const t = await this.get();
    if (typeof t !== "string") await t.warm?.(signal);
  }

  async verifyFiles(req: VerifyRequest, signal?: AbortSignal): Promise<VerifyResult> {
    const t = await this.get();
    if (typeof t === "string") return { error: t, bytesRead: 0 };
    return t.verifyFiles ? t.verifyFiles(req, signal) : { error: `${t.description} cannot compare the replica`, bytesRead: 0 };
  }

  async close(): Promise<void> {
    await this.made?.close();
  }
}

/** "root@host:22:/dest" or "/dest" for messages. */
export function describeTarget(config: Config): string {
  const t = config.target;
  if (t.host === "") return t.destDir;
  const host = t.host.includes(":") ? `[${t.host}]` : t.host;
  return `${t.user ? `${t.user}@` : ""}${host}:${t.destDir}${t.port !== 22 ? ` (port ${t.port})` : ""}${t.transport !== "rsync" ? ` via ${t.transport}` : ""}`;
}
