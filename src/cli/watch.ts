// The watch command (--watch): the live view for this terminal (or JSON lines), then the daemon until a signal.
import type { Config } from "../config/types.ts";
import type { ExitCode } from "../errors.ts";
import type { Logger } from "../log.ts";
import { describeTarget } from "../transport/create.ts";
import { runDaemon } from "../watch/daemon.ts";
import { Live, liveMode } from "./live.ts";

export function watchDaemon(config: Config, log: Logger, flags: { json?: boolean; quiet?: boolean }, env: Record<string, string | undefined>): Promise<ExitCode> {
  return runDaemon(config, log, new Live(liveMode(flags, env), describeTarget(config)));
}
