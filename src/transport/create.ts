// Picks the transport for a target; the engine only ever sees the Transport interface.
import type { Config } from "../config/types.ts";
import { RsyncTransport } from "./rsync.ts";
import type { Transport } from "./types.ts";

export function createTransport(config: Config): Transport {
  return new RsyncTransport({ target: config.target, rsync: config.rsync, sourceDir: config.sourceDir });
}

/** "root@host:22:/dest" or "/dest" for messages. */
export function describeTarget(config: Config): string {
  const t = config.target;
  if (t.host === "") return t.destDir;
  const host = t.host.includes(":") ? `[${t.host}]` : t.host;
  return `${t.user ? `${t.user}@` : ""}${host}:${t.destDir}${t.port !== 22 ? ` (port ${t.port})` : ""}`;
}
