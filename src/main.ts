#!/usr/bin/env bun
// Entry point: the command table, and the one place where errors become exit codes.
import { cac } from "cac";
import { homedir } from "node:os";
import { isOutputClosed, writeOut } from "./cli/out.ts";
import { runChecks } from "./cli/check.ts";
import { helpCommand } from "./cli/help.ts";
import { showLog } from "./cli/history.ts";
import { initConfig } from "./cli/init.ts";
import { installCommand, uninstallCommand } from "./cli/install.ts";
import { mergeCommand } from "./cli/merge.ts";
import { promoteCommand } from "./cli/promote.ts";
import { failbackCommand } from "./cli/failback.ts";
import { restoreFile } from "./cli/restore.ts";
import { showStatus } from "./cli/status.ts";
import { syncOnce } from "./cli/sync.ts";
import { unfenceCommand } from "./cli/unfence.ts";
import { TOPICS } from "./cli/topics.ts";
import { verifyCommand } from "./cli/verify.ts";
import { watchDaemon } from "./cli/watch.ts";
import { loadConfig } from "./config/load.ts";
import { refuseSharedDirs } from "./config/places.ts";
import { EXIT_CODE_TABLE, ExitCode, UserError } from "./errors.ts";
import { escapeLine, escapeText } from "./escape.ts";
import { consoleOptions, Logger } from "./log.ts";
import { isDiskFull, stateDiskFull } from "./store/state.ts";
import { versionLine } from "./version.ts";

interface Flags {
  config?: string;
  source?: string;
  dest?: string;
  state?: string;
  transport?: string;
  once?: boolean;
  watch?: boolean;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  force?: boolean;
  since?: string;
  until?: string;
  kind?: string | string[];
  stat?: boolean;
  at?: string;
  to?: string;
  list?: boolean;
  version?: boolean;
  repair?: boolean;
  sample?: string;
  combined?: boolean;
  lag?: boolean;
  prefer?: string;
  dryRun?: boolean;
  rebuildState?: boolean;
  target?: string;
  overwrite?: boolean;
  keepReplica?: boolean;
}

/** cac checks a command's options only when it has an action; main() dispatches itself. */
const noop = () => undefined;

/** The command table: what --help prints, what main() dispatches on, and what the man page lists (scripts/docs.ts). */
export function buildCli() {
  const cli = cac("rrdsync");
  cli
    .option("-c, --config <path>", "Config file (JSON; # and // comments allowed). Default: $RRDSYNC_CONFIG, else /etc/rrdsync/config.json if it exists")
    .option("--source <dir>", "Directory to replicate (overrides source_dir)")
    .option("--dest <dest>", "Destination: [user@]host:/abs/path over SSH, or /abs/path for a local directory (overrides remote_sync)")
    .option("--state <file>", "State DB path (overrides state_file)")
    .option("--transport <kind>", "rsync (default), sftp (built-in SSH client, no rsync needed on the standby) or auto (overrides remote_sync.transport)")
    .option("-q, --quiet", "Print only errors (no summary)")
    .option("-v, --verbose", "Print every log line (DEBUG) on the console too")
    .option("-V, --version", "Print the version, the commit and date it was built from, and the target");
  cli
    .command("", "Replicate the tree to the standby, recording what changed (--once, the default; or --watch)")
    .usage("[--once | --watch] [--config PATH] [--source DIR] [--dest [USER@]HOST:/PATH | /PATH]")
    .option("--once", "Run one pass: send every new or changed file, record the changes, exit (the default)")
    .option("--watch", "Run as a daemon: watch the tree and ship changes within debounce_time (SIGTERM stops, SIGHUP reopens logs)")
    .option("--json", "With --watch: print one JSON object per event on stdout")
    .option("--rebuild-state", "A state DB that describes another source or destination than the config's is kept aside (<state_file>.replaced-<time>) and made anew by one full pass (without this flag such a DB stops the run, exit 2)")
    .example("rrdsync --once --config /etc/rrdsync/config.json")
    .example("rrdsync --once --source /opt/opennms/share/rrd --dest rrdsync@standby:/opt/opennms/share/rrd")
    .action(noop);
  cli
    .command("init", "Write a commented starter config to --config (default /etc/rrdsync/config.json); --source/--dest fill it in")
    .option("--force", "Replace an existing config file")
    .example("rrdsync init --config /etc/rrdsync/config.json --source /opt/opennms/share/rrd --dest opennms@standby:/opt/opennms/share/rrd")
    .action(noop);
  const pathOptions = (c: ReturnType<typeof cli.command>) =>
    c
      .option("--etc <dir>", "Config directory: ETC/config.json, and the install manifest (default /etc/rrdsync)")
      .option("--root <dir>", "Write (or remove) everything under DIR, as a package build or an image does; the files name the paths without it")
      .option("--dry-run", "Print what would be done; change nothing");
  pathOptions(cli.command("install", "Install this binary, the systemd unit and logrotate snippet (both built in), a starter config if there is none, and the state and log directories; print the next steps"))
    .usage("install [--dry-run] [--user NAME] [--source DIR --dest DEST] [--prefix DIR] [--etc DIR] [--state-dir DIR] [--log-dir DIR] [--root DIR] …")
    .option("--prefix <dir>", "The binary goes to PREFIX/bin/rrdsync (default /usr/local)")
    .option("--state-dir <dir>", "State DB and backups (default /var/lib/rrdsync)")
    .option("--log-dir <dir>", "Log and change log (default /var/log/rrdsync)")
    .option("--systemd-dir <dir>", "Where the unit goes (default /etc/systemd/system)")
    .option("--without-systemd", "No systemd unit (run from cron)")
    .option("--logrotate-dir <dir>", "Where the logrotate snippet goes (default /etc/logrotate.d)")
    .option("--user <name>", "Run the daemon as NAME (an existing user that can read the tree): User= in the unit, the state and log directories NAME's")
    .example("sudo ./rrdsync-0.2.0-linux-x64 install --user opennms")
    .action(noop);
  pathOptions(cli.command("uninstall", "Remove what install wrote, as its manifest lists it (a file changed since stays); the config, state and logs stay unless --purge"))
    .usage("uninstall [--dry-run] [--purge] [--etc DIR] [--root DIR]")
    .option("--purge", "Also remove the config, and the state and log directories install created")
    .action(noop);
  cli.command("check", "Verify the setup (config, source, key, host key, ssh login, remote rsync, destination, not promoted, not fenced, inotify, free space); exit 0 only if all pass").action(noop);
  cli
    .command("status", "Files tracked, pending, replica lag, last pass, batch and verify, target reachable, down or FENCED since, last error, running pid; exit 1 if pending or down, 4 if fenced")
    .option("--json", "One JSON object")
    .option("--lag", "Look at every tracked RRD now for the replica lag (done anyway up to 200,000 files; above, the lag recorded by the last pass or batch)")
    .action(noop);
  cli
    .command("verify [pattern]", "Compare the replica with the source by content (the standby hashes its copies); PATTERN: a path or glob as for log. Exit 0 if it matches, 1 with every difference named")
    .usage("verify [PATH|GLOB] [--repair] [--sample N%] [--combined | --json]")
    .option("--repair", "Send every differing or missing file again through the normal engine, recorded as repaired (takes the lock: not beside a running daemon); a newer one (a conflict) only with --overwrite")
    .option("--overwrite", "With --repair: also send ours over the files newer on the standby (conflicts), keeping each standby copy first in DEST/.rrdsync-kept/<time>/")
    .option("--sample <share>", "Check a random share of the files, e.g. 10% (for a nightly cron on a big tree); extra files are then not looked for")
    .option("--combined", "List every file checked, the same ones as = too (by default only differences are listed)")
    .option("--json", "One JSON object per target instead of the marker lines")
    .option("--rebuild-state", "With --repair: a state DB that describes another source or destination is kept aside and made anew (see rrdsync --help)")
    .example("rrdsync verify                      # one line per difference: * differs, - missing, + extra, > changed on the standby (a conflict), ! unreadable, ~ pending")
    .example("rrdsync verify 'snmp/*/strings.properties' --combined")
    .example("rrdsync verify --sample 10%         # nightly")
    .action(noop);
  cli
    .command("unfence", "Lift a target's fence (the standby was written to behind rrdsync, or promoted): without a choice, explain it and the ways on; exit 4 while fenced")
    .usage("unfence [--target NAME] [--overwrite | --keep-replica]")
    .option("--target <name>", "Only this target (as status names it, or its name in targets, host:port, or destination path)")
    .option("--overwrite", "This host's files win: every file the standby changed is kept there first (in DEST/.rrdsync-kept/<time>/), then ours is written over it (takes the lock)")
    .option("--keep-replica", "The standby's versions win: kept there and taken as delivered, no longer pending (takes the lock)")
    .example("rrdsync unfence                     # what happened, and the choices")
    .example("rrdsync unfence --overwrite")
    .action(noop);
  cli
    .command("failback", "On the old primary, for a promoted or fenced target: bring every row the standby collected back here (RRDs merged in place under rrdtool's lock, newer text files taken, new files copied), make both sides equal, remove the promotion marker and lift the fence (takes the lock)")
    .usage("failback [--target NAME] [--dry-run]")
    .option("--target <name>", "Only this target (as status names it, or its name in targets, host:port, or destination path)")
    .option("--dry-run", "Say per file what it would do and the rows each side would give; change nothing on either side")
    .example("rrdsync failback --dry-run            # what the standby collected, per file")
    .example("rrdsync failback")
    .action(noop);
  cli
    .command("promote <dir>", "On the standby, when failing over to it: mark DIR (the replica) as promoted, so the old primary's rrdsync refuses it (exit 4) before it compares or writes anything; print the next steps")
    .example("sudo rrdsync promote /opt/opennms/share/rrd")
    .action(noop);
  cli
    .command("log [pattern]", "The change history from the state DB; PATTERN is a path (file or directory) or a glob (* also crosses /)")
    .option("--since <time>", 'Only changes at or after TIME ("2024-12-12", "2024-12-12 15:05", "2h", "3d", "yesterday")')
    .option("--until <time>", "Only changes at or before TIME")
    .option("--kind <kind>", "created, modified, deleted, renamed, repaired, or conflict, overwritten, kept (a fence and unfence), merged (failback); repeat or comma-separate for several")
    .option("--stat", "One line per change: time, +added −removed lines, kind, path, summary")
    .option("--json", "One JSON object per change (with its diff or RRD note in details)")
    .example("rrdsync log 'snmp/*/strings.properties' --since 1d")
    .action(noop);
  cli
    .command("restore <path>", "Print a text file as it was synced (the newest kept version, or the one valid --at TIME), or write it --to FILE")
    .option("--at <time>", "The version that was current at TIME")
    .option("--to <file>", "Write it to FILE (atomically) instead of stdout; an existing FILE only with --force")
    .option("--force", "With --to: replace an existing FILE")
    .option("--list", "List the kept versions")
    .example("rrdsync restore snmp/1/ds.properties --at yesterday --to /tmp/ds.properties")
    .action(noop);
  cli
    .command("merge <a> <b>", "Merge two copies of one RRD (e.g. the primary's and the standby's after a failover) into one, no row lost: see rrdsync merge --help")
    .usage("merge A.rrd B.rrd --to OUT.rrd [--prefer a|b] [--force] [--dry-run] [--json]")
    .option("--to <file>", "The merged file: a new file (written beside, then renamed), or A or B itself (merged in place under rrdtool's lock)")
    .option("--prefer <side>", "a or b: whose value to keep where both files hold one (default: the file updated last)")
    .option("--force", "Replace an existing OUT that is neither A nor B")
    .option("--dry-run", "Report what each file would give; write nothing")
    .option("--json", "One JSON object instead of the report")
    .example("rrdsync merge /opt/opennms/share/rrd/snmp/1/ifInOctets.rrd /tmp/from-standby/ifInOctets.rrd --to /opt/opennms/share/rrd/snmp/1/ifInOctets.rrd")
    .action(noop);
  cli
    .command("help [topic]", `Print a page of the docs from inside the binary (paged on a terminal, plain on a pipe); without TOPIC, the list: ${TOPICS.map((t) => t.name).join(", ")}`)
    .example("rrdsync help troubleshooting")
    .action(noop);
  cli.help((all) => {
    const sections = all.filter((s) => !s.title?.startsWith("For more info"));
    if (sections[0] !== undefined && sections[0].title === undefined) sections[0] = { body: versionLine() }; // cac's header would be a bare "rrdsync"
    // cac lists the default command under its empty name: a blank row. Name it as it is invoked.
    const commands = sections.find((s) => s.title === "Commands");
    if (commands) {
      const rows = cli.commands.map((c) => [c.rawName === "" ? "[--once | --watch]" : c.rawName, c.description] as const);
      const width = Math.max(...rows.map(([n]) => n.length));
      commands.body = rows.map(([n, d]) => `  ${n.padEnd(width)}  ${d}`).join("\n");
    }
    sections.splice(1, 0, { body: "Replicates a directory tree (OpenNMS RRD data) to a standby host over SSH (rsync, or SFTP built in), or to a local\ndirectory, and records what changed in each file (change log with unified diffs, state DB)." });
    if (cli.matchedCommandName === "verify") {
      sections.push({
        title: "Report (rclone check's --combined markers, one line per file: MARKER PATH)",
        body: [
          "  =  the same content (listed with --combined)",
          "  *  differs: the replica's copy has other bytes (same size and mtime included: the standby hashes its copies)",
          "  -  missing on the replica",
          "  +  extra: a monitored file on the replica that the source lacks",
          "  >  a conflict: changed on the standby, its copy newer than ours (written there); --repair leaves it,",
          "     --repair --overwrite keeps it aside on the standby (DEST/.rrdsync-kept/<time>/) and sends ours",
          "  !  could not be compared (unreadable)",
          "  ~  differs, but rrdsync knows why: changed since the last sync or not synced yet (the next pass sends it),",
          "     or deleted from the source and kept (delete off) or about to be deleted. Not a failure.",
          "  Exit 0 when nothing but = and ~ is found; 1 otherwise (with --repair: 1 if anything is left unrepaired).",
          "  A plain verify only reads: it runs beside a daemon. --repair takes the lock (exit 3 while a daemon runs).",
        ].join("\n"),
      });
    }
    if (cli.matchedCommandName === "merge") {
      sections.push({
        title: "Merge rule (per archive and row slot, rows matched by the time they stand for)",
        body: [
          "  A value known in one file and unknown (or outside the other file's range) in the other: the known one.",
          "  Known in both: the value of the file updated last (last_update), or of the --prefer side.",
          "  The live state (last update, PDP/CDP preparation, each archive's current row) comes from the file updated",
          "  last (A on a tie), so rrdtool update continues on OUT as it would have on that file (merged in place, OUT",
          "  keeps its own ring position: the same rows at the same times, other row numbers).",
          "  Refused (exit 2, the difference named): another step, other data sources or archives, a Holt-Winters",
          "  archive, a JRobin (.jrb) file, an RRD from another architecture, a damaged file.",
          "  Inputs are read under rrdtool's read lock; with --to A (or B) the file is merged in place under its write",
          "  lock, so it can run beside OpenNMS (an rrdtool update meanwhile fails with 'could not lock RRD', as rrdtool",
          "  makes it; the lock is held for the merge of that one file, milliseconds). With rrdcached, flush it first.",
        ].join("\n"),
      });
    }
    sections.push({
      title: "Exit codes",
      body: EXIT_CODE_TABLE.map(([code, text]) => `  ${String(code).padEnd(4)}${text}`).join("\n"),
    });
    sections.push({ title: "Docs", body: "  rrdsync COMMAND --help for a command's options; rrdsync help TOPIC for a page of the docs (rrdsync help lists\n  them: install, config, troubleshooting, …); man rrdsync for the manual page" });
    return sections;
  });
  return cli;
}

/** Options whose value may start with "-": an age written "-5d" (5 days ago) is a value, not options -5 -d. */
const TIME_OPTIONS = new Set(["--since", "--until", "--at"]);

function joinDashValues(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const next = argv[i + 1];
    if (TIME_OPTIONS.has(a) && next !== undefined && /^-\d/.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else {
      out.push(a);
    }
  }
  return out;
}

/**
 * The values of the options that take one, exactly as typed (by the option's camelCase name, as cac names them):
 * mri reads an empty value as 0 (`--config ''` became "0") and a number-like one as a number ("0123" → 123, "1e3" →
 * 1000, a directory of that name). An empty value is an error naming the option.
 */
function typedValues(argv: string[], cli: ReturnType<typeof buildCli>): Map<string, string[]> {
  const takes = new Map<string, string>(); // "-c" / "--config" → "config"
  for (const c of [cli.globalCommand, ...cli.commands]) {
    for (const o of c.options) {
      if (!/[<[]/.test(o.rawName)) continue;
      const long = o.names[o.names.length - 1] as string;
      for (const n of o.rawName.match(/--?[A-Za-z][\w-]*/g) ?? []) takes.set(n, long);
    }
  }
  const out = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === "--") break;
    const m = /^(--?[A-Za-z][\w-]*)(=([\s\S]*))?$/.exec(a);
    const name = m?.[1];
    if (name === undefined || !takes.has(name)) continue;
    const value = m?.[2] !== undefined ? (m[3] as string) : argv[i + 1];
    if (m?.[2] === undefined) i++;
    if (value === undefined) continue; // cac says the value is missing
    if (value === "") throw new UserError(`${name} is given an empty value`, ExitCode.Usage, `give ${name} a value (rrdsync ${name === "--config" || name === "-c" ? "--config /etc/rrdsync/config.json" : "--help"})`);
    const key = takes.get(name) as string;
    out.set(key, [...(out.get(key) ?? []), value]);
  }
  return out;
}

/** Values as strings, as typed (see typedValues), each option at most once (twice would be an array). */
function checkFlags(options: Record<string, unknown>, typed: Map<string, string[]>): Flags {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options)) {
    if (Array.isArray(v) && k !== "kind" && k !== "--") {
      throw new UserError(`--${k} is given ${v.length} times`, ExitCode.Usage, `give --${k} once`);
    }
    const t = typed.get(k);
    out[k] = t !== undefined && t.length === 1 && !Array.isArray(v) ? t[0] : typeof v === "number" ? String(v) : v;
  }
  return out as Flags;
}

async function main(argv: string[]): Promise<number> {
  const cli = buildCli();
  const args = joinDashValues(argv);
  const typed = typedValues(args.slice(2), cli);
  const parsed = cli.parse(args, { run: false });
  if (parsed.options.help) return ExitCode.Ok;
  if (parsed.options.version) {
    await writeOut(`${versionLine()}\n`);
    return ExitCode.Ok;
  }
  if (cli.matchedCommand === undefined) {
    throw new UserError(`unknown command "${parsed.args[0]}"`, ExitCode.Usage, "see rrdsync --help");
  }
  cli.runMatchedCommand(); // validates unknown options; the actions themselves are no-ops
  const command = cli.matchedCommandName ?? "";
  const flags = checkFlags(parsed.options, typed);
  const env = process.env as Record<string, string | undefined>;
  if (command === "init") return await initConfig(flags, env);
  if (command === "install") return await installCommand(flags);
  if (command === "uninstall") return await uninstallCommand(flags);
  if (command === "merge") return await mergeCommand(parsed.args, flags);
  if (command === "promote") return await promoteCommand(parsed.args[0] === undefined ? undefined : String(parsed.args[0]), env);
  if (command === "help") return await helpCommand(parsed.args[0] === undefined ? undefined : String(parsed.args[0]), env);
  const consoleOpts = consoleOptions(flags, env);
  const { config, warnings } = loadConfig({
    configPath: flags.config, source: flags.source, dest: flags.dest, stateFile: flags.state, transport: flags.transport, env, cwd: process.cwd(), home: homedir(),
    rebuildState: flags.rebuildState === true,
    requireSource: command === "",
  });
  // Every command that opens rrdsync's own files: none of their directories may be writable by another user.
  if (command !== "check") refuseSharedDirs(config);
  // The read-side commands neither log to the log file nor take the lock: they run beside a daemon.
  if (command !== "") {
    for (const w of warnings) process.stderr.write(`rrdsync: warning: ${escapeLine(w)}\n`);
    if (command === "check") return await runChecks(config, env);
    if (command === "status") return await showStatus(config, flags, env);
    if (command === "log") return await showLog(config, parsed.args[0] === undefined ? undefined : String(parsed.args[0]), flags, env);
    if (command === "restore") return await restoreFile(config, String(parsed.args[0]), flags);
  }
  const log = new Logger(consoleOpts, config.logging.logFile ? { path: config.logging.logFile, level: config.logging.logLevel } : null);
  try {
    for (const w of warnings) log.warn(w);
    if (flags.once && flags.watch) throw new UserError("--once and --watch exclude each other", ExitCode.Usage, "pick one");
    if (flags.watch) {
      stopWhenStdoutCloses(log);
      return await watchDaemon(config, log, flags, env);
    }
    const ac = new AbortController();
    if (command === "failback") {
      process.on("SIGINT", () => ac.abort());
      process.on("SIGTERM", () => ac.abort());
      return await failbackCommand(config, { target: flags.target, dryRun: flags.dryRun }, log, ac.signal);
    }
    if (command === "unfence") {
      process.on("SIGINT", () => ac.abort());
      process.on("SIGTERM", () => ac.abort());
      return await unfenceCommand(config, { target: flags.target, overwrite: flags.overwrite, keepReplica: flags.keepReplica }, log, ac.signal);
    }
    if (command === "verify") {
      process.on("SIGINT", () => ac.abort());
      process.on("SIGTERM", () => ac.abort());
      if (flags.overwrite && !flags.repair) throw new UserError("--overwrite goes with --repair", ExitCode.Usage, "rrdsync verify --repair --overwrite");
      return await verifyCommand(config, parsed.args[0] as string | undefined, flags, log, ac.signal);
    }
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

/**
 * `rrdsync --watch --json | head`: once the reader is gone the daemon stops as on SIGTERM (the running transfer
 * finishes, exit 0) instead of dying on the next line it prints. Once: a second SIGTERM would mean "exit now".
 */
function stopWhenStdoutCloses(log: Logger): void {
  let closed = false;
  process.stdout.on("error", (e) => {
    if (!isOutputClosed(e)) throw e;
    if (closed) return;
    closed = true;
    log.info("stdout was closed by its reader: stopping");
    process.kill(process.pid, "SIGTERM");
  });
}

function reportError(e: unknown): number {
  // `rrdsync log | head`: the reader has what it wanted; nothing failed.
  if (isOutputClosed(e)) return ExitCode.Ok;
  // Messages echo paths and arguments as given (a destination, an unknown option): never raw control characters.
  if (e instanceof UserError) {
    process.stderr.write(`rrdsync: ${escapeLine(e.message)}\n`);
    if (e.hint) process.stderr.write(`  hint: ${escapeLine(e.hint)}\n`);
    return e.exitCode;
  }
  // cac's own errors (unknown option, missing value) are usage errors.
  if (e instanceof Error && e.name === "CACError") {
    process.stderr.write(`rrdsync: ${escapeLine(e.message)}\n  hint: see rrdsync --help\n`);
    return ExitCode.Usage;
  }
  // A state DB that ran out of space mid-pass (SQLITE_FULL): the user's to fix, not a bug (docs/troubleshooting.md).
  const full = isDiskFull(e) ? stateDiskFull(null, e) : null;
  if (full !== null) {
    process.stderr.write(`rrdsync: ${escapeLine(full.message)}\n  hint: ${escapeLine(full.hint ?? "")}\n`);
    return full.exitCode;
  }
  process.stderr.write(`rrdsync: internal error: ${escapeText(e instanceof Error ? (e.stack ?? e.message) : String(e))}\n`);
  process.stderr.write("  this is a bug in rrdsync: please report it with the message above and the version (rrdsync --version)\n");
  return ExitCode.Internal;
}

// Only as the program: scripts/docs.ts imports the command table for the man page.
if (import.meta.main) {
  main(process.argv).then(
    (code) => process.exit(code),
    (e) => process.exit(reportError(e)),
  );
}
