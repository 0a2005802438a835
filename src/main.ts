#!/usr/bin/env bun
// Entry point: the command table, and the one place where errors become exit codes.
import { cac } from "cac";
import { homedir } from "node:os";
import pkg from "../package.json" with { type: "json" };
import { Live, liveMode } from "./cli/live.ts";
import { syncOnce } from "./cli/sync.ts";
import { watchDaemon } from "./cli/watch.ts";
import { describeTarget } from "./transport/create.ts";
import { loadConfig } from "./config/load.ts";
import { EXIT_CODE_TABLE, ExitCode, UserError } from "./errors.ts";
import { consoleOptions, Logger } from "./log.ts";

interface Flags {
  config?: string;
  source?: string;
  dest?: string;
  state?: string;
  once?: boolean;
  watch?: boolean;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
}

function buildCli() {
  const cli = cac("rrdsync");
  cli
    .command("", "Replicate a directory tree (OpenNMS RRD data) to a standby host over SSH, recording what changed")
    .usage("--once | --watch [--config PATH] [--source DIR] [--dest [USER@]HOST:/PATH | /PATH]")
    .option("-c, --config <path>", "Config file (JSON; # and // comments allowed). Default: $RRDSYNC_CONFIG, else /etc/rrdsync/config.json if it exists")
    .option("--once", "Run one pass: send every new or changed file, record the changes, exit (the default)")
    .option("--watch", "Run as a daemon: watch the tree and ship changes within debounce_time (SIGTERM stops, SIGHUP reopens logs)")
    .option("--json", "With --watch: print one JSON object per event on stdout")
    .option("--source <dir>", "Directory to replicate (overrides source_dir)")
    .option("--dest <dest>", "Destination: [user@]host:/abs/path over SSH, or /abs/path for a local directory (overrides remote_sync)")
    .option("--state <file>", "State DB path (overrides state_file)")
    .option("-q, --quiet", "Print only errors (no summary)")
    .option("-v, --verbose", "Print every log line (DEBUG) on the console too")
    .example("rrdsync --once --config /etc/rrdsync/config.json")
    .example("rrdsync --once --source /opt/opennms/share/rrd --dest rrdsync@standby:/opt/opennms/share/rrd")
    .action(() => undefined);
  cli.help((all) => {
    // cac lists the default command as a nameless "command" plus a hint about sub-commands we do not have.
    const sections = all.filter((s) => s.title !== "Commands" && !s.title?.startsWith("For more info"));
    sections.splice(1, 0, { body: "Replicates a directory tree (OpenNMS RRD data) to a standby host over SSH (rsync), or to a local\ndirectory, and records what changed in each file (change log with unified diffs, state DB)." });
    sections.push({
      title: "Exit codes",
      body: EXIT_CODE_TABLE.map(([code, text]) => `  ${String(code).padEnd(4)}${text}`).join("\n"),
    });
    sections.push({ title: "Docs", body: "  README.md: config reference, cron and systemd examples, migrating from rrd_sync_new.py" });
    return sections;
  });
  cli.version(pkg.version, "-V, --version");
  return cli;
}

async function main(argv: string[]): Promise<number> {
  const cli = buildCli();
  const parsed = cli.parse(argv, { run: false });
  if (parsed.options.help || parsed.options.version) return ExitCode.Ok;
  cli.runMatchedCommand(); // validates unknown options; the action itself is a no-op
  if (parsed.args.length > 0) {
    throw new UserError(`unexpected argument "${parsed.args[0]}"`, ExitCode.Usage, "see rrdsync --help");
  }
  const flags = parsed.options as Flags;
  const env = process.env as Record<string, string | undefined>;
  const consoleOpts = consoleOptions(flags, env);
  const { config, warnings } = loadConfig({
    configPath: flags.config, source: flags.source, dest: flags.dest, stateFile: flags.state, env, cwd: process.cwd(), home: homedir(),
  });
  const log = new Logger(consoleOpts, config.logging.logFile ? { path: config.logging.logFile, level: config.logging.logLevel } : null);
  try {
    for (const w of warnings) log.warn(w);
    if (flags.once && flags.watch) throw new UserError("--once and --watch exclude each other", ExitCode.Usage, "pick one");
    if (flags.watch) {
      const live = new Live(liveMode(flags, env), describeTarget(config));
      return await watchDaemon(config, log, live);
    }
    const ac = new AbortController();
    const onSignal = (sig: string) => {
      if (ac.signal.aborted) process.exit(ExitCode.Pending); // second signal: go now; unconfirmed files never advanced
      log.warn(`${sig}: stopping; files not yet confirmed stay pending`);
      ac.abort();
    };
    process.on("SIGINT", () => onSignal("SIGINT"));
    process.on("SIGTERM", () => onSignal("SIGTERM"));
    return await syncOnce(config, log, ac.signal);
  } finally {
    log.close();
  }
}

function reportError(e: unknown): number {
  if (e instanceof UserError) {
    process.stderr.write(`rrdsync: ${e.message}\n`);
    if (e.hint) process.stderr.write(`  hint: ${e.hint}\n`);
    return e.exitCode;
  }
  // cac's own errors (unknown option, missing value) are usage errors.
  if (e instanceof Error && e.name === "CACError") {
    process.stderr.write(`rrdsync: ${e.message}\n  hint: see rrdsync --help\n`);
    return ExitCode.Usage;
  }
  process.stderr.write(`rrdsync: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.stderr.write("  this is a bug in rrdsync: please report it with the message above and the version (rrdsync --version)\n");
  return ExitCode.Internal;
}

main(process.argv).then(
  (code) => process.exit(code),
  (e) => process.exit(reportError(e)),
);
