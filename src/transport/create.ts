// Picks the transport for a target; the engine only ever sees the Transport interface.
import type { Config, Target } from "../config/types.ts";
import { probeRemoteRsync } from "./probe.ts";
import { RsyncTransport } from "./rsync.ts";
import { SftpTransport } from "./sftp.ts";
import type { BatchFile, BatchResult, DeleteResult, MoveResult, SendOptions, Transport, TransportLog } from "./types.ts";

export function createTransport(config: Config, log?: TransportLog): Transport {
  const t = config.target;
  if (t.transport === "sftp") return new SftpTransport({ target: t, sourceDir: config.sourceDir, log });
  if (t.transport === "auto" && t.host !== "") return new AutoTransport(config, log);
  return new RsyncTransport({ target: t, rsync: config.rsync, sourceDir: config.sourceDir });
}

/** Why auto picks what it picks, for the log and `check`. */
export async function chooseTransport(t: Target): Promise<{ kind: "rsync" | "sftp"; why: string } | { error: string }> {
  if (Bun.which("rsync") === null) return { kind: "sftp", why: "rsync is not installed here" };
  if (Bun.which("ssh") === null) return { kind: "sftp", why: "the ssh client is not installed here" };
  const p = await probeRemoteRsync(t);
  if (p.kind === "unreachable") return { error: p.error };
  if (p.kind === "present") return { kind: "rsync", why: `${p.version} on the standby` };
  return { kind: "sftp", why: `the standby has no rsync (${p.detail})` };
}

/**
 * "auto": rsync when both ends have it, else SFTP; decided at first use (one ssh login) and kept for the run.
 * While the standby cannot be reached, each attempt fails like a transfer would and the next one asks again.
 */
class AutoTransport implements Transport {
  private chosen: Transport | null = null;

  constructor(private readonly config: Config, private readonly log?: TransportLog) {}

  get description(): string {
    const t = this.config.target;
    return this.chosen?.description ?? `auto → ${t.user ? `${t.user}@` : ""}${t.host}:${t.destDir}`;
  }

  private async pick(): Promise<Transport | string> {
    if (this.chosen) return this.chosen;
    const c = await chooseTransport(this.config.target);
    if ("error" in c) return c.error;
    this.log?.info(`transport: ${c.kind} (auto: ${c.why})`);
    this.chosen = createTransport({ ...this.config, target: { ...this.config.target, transport: c.kind } }, this.log);
    return this.chosen;
  }

  async sendBatch(files: BatchFile[] | Promise<BatchFile[]>, signal?: AbortSignal, opts?: SendOptions): Promise<BatchResult> {
    const t = await this.pick();
    if (typeof t !== "string") return t.sendBatch(files, signal, opts);
    const outcomes = new Map((await files).map((f) => [f.path, { ok: false as const, reason: t }]));
    return { outcomes, error: t, infoLines: [], bytesSent: 0 };
  }

  async deleteFiles(paths: string[], signal?: AbortSignal): Promise<DeleteResult> {
    const t = await this.pick();
    return typeof t === "string" ? { deleted: new Set(), error: t } : t.deleteFiles(paths, signal);
  }

  async moveFiles(moves: Array<{ from: string; to: string }>, signal?: AbortSignal): Promise<MoveResult> {
    const t = await this.pick();
    return typeof t === "string" ? { moved: new Set(), error: t } : t.moveFiles(moves, signal);
  }

  async close(): Promise<void> {
    await this.chosen?.close();
  }
}

/** "root@host:22:/dest" or "/dest" for messages. */
export function describeTarget(config: Config): string {
  const t = config.target;
  if (t.host === "") return t.destDir;
  const host = t.host.includes(":") ? `[${t.host}]` : t.host;
  return `${t.user ? `${t.user}@` : ""}${host}:${t.destDir}${t.port !== 22 ? ` (port ${t.port})` : ""}${t.transport !== "rsync" ? ` via ${t.transport}` : ""}`;
}
