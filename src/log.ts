// The logger: the log file in the seed's format, and the console. The only place that knows colours and TTYs.
import { closeSync, mkdirSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import pc from "picocolors";
import type { LogLevel } from "./config/types.ts";
import { ExitCode, UserError } from "./errors.ts";
import { escapeLine } from "./escape.ts";
import { openAppend } from "./safe-files.ts";
import { describeFsError } from "./text.ts";

const RANK: Record<LogLevel, number> = { DEBUG: 10, INFO: 20, WARNING: 30, ERROR: 40, CRITICAL: 50 };

export interface ConsoleOptions {
  /** console threshold: quiet → ERROR, default → WARNING, verbose → DEBUG */
  level: LogLevel;
  color: boolean;
  /** stderr is a terminal: shorter lines without timestamps */
  tty: boolean;
}

/** `2024-12-12 15:05:40,908`: Python logging's asctime, which the seed's users grep for. */
export function formatTimestamp(d: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())},${p(d.getMilliseconds(), 3)}`;
}

export function formatLogLine(d: Date, level: LogLevel, message: string): string {
  return `${formatTimestamp(d)} - ${level} - ${message}\n`;
}

export class Logger {
  private fd: number | null = null;

  constructor(
    private readonly console_: ConsoleOptions,
    private readonly file: { path: string; level: LogLevel } | null,
  ) {
    this.openFile();
  }

  /** A log file that cannot be opened is the user's to fix: exit 2 naming it, before anything is done. */
  private openFile(): void {
    if (!this.file?.path) return;
    const path = this.file.path;
    try {
      mkdirSync(dirname(path), { recursive: true, mode: 0o750 });
      // O_APPEND: each line is one write, so concurrent writers and crashes never interleave half lines.
      // O_NOFOLLOW: never through a symlink planted at its name.
      this.fd = openAppend(path);
    } catch (e) {
      throw new UserError(`logging.log_file ${path}: cannot be opened: ${describeFsError(e)}`, ExitCode.Usage,
        "point logging.log_file at a file this user can write (its directory is created if missing), or set it to \"\" to log to the console only");
    }
  }

  /** For logrotate (SIGHUP): the old file was renamed; write to a new one at the configured path. */
  reopen(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    try {
      this.openFile();
    } catch (e) {
      // A daemon keeps running: its lines still reach the console (journald) while the file cannot be written.
      process.stderr.write(`rrdsync: ${escapeLine((e as Error).message)}; logging to the console only until the next SIGHUP\n`);
    }
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  debug(msg: string): void { this.log("DEBUG", msg); }
  info(msg: string): void { this.log("INFO", msg); }
  warn(msg: string): void { this.log("WARNING", msg); }
  error(msg: string): void { this.log("ERROR", msg); }

  /** Would a line of this level go anywhere? (A caller skips building a costly debug line otherwise.) */
  wants(level: LogLevel): boolean {
    return (this.fd !== null && this.file !== null && RANK[level] >= RANK[this.file.level]) || RANK[level] >= RANK[this.console_.level];
  }

  log(level: LogLevel, raw: string): void {
    // Most DEBUG lines go nowhere: nothing is escaped or formatted for them (a daemon makes several per update).
    if (!this.wants(level)) return;
    const now = new Date();
    // Messages carry file names and remote error text: neither may drive a terminal nor split a log line.
    const message = escapeLine(raw);
    if (this.fd !== null && this.file && RANK[level] >= RANK[this.file.level]) {
      try {
        writeSync(this.fd, formatLogLine(now, level, message));
      } catch (e) {
        // A full disk must not stop replication (nor turn into "internal error"): the console still has the lines.
        this.fd = null;
        process.stderr.write(`rrdsync: logging.log_file ${escapeLine(this.file.path)}: cannot be written (${describeFsError(e)}); logging to the console only until the next start or SIGHUP\n`);
      }
    }
    if (RANK[level] >= RANK[this.console_.level]) {
      this.progressLine?.clear();
      process.stderr.write(this.renderConsole(now, level, message));
    }
  }

  /** A progress line on the console (a terminal) that log lines must clear before they are written. */
  progressLine: { clear(): void } | null = null;

  /** Progress lines are for a terminal that shows more than errors. */
  wantsProgress(): boolean {
    return this.console_.tty && this.console_.level !== "ERROR" && this.console_.level !== "CRITICAL";
  }

  private renderConsole(now: Date, level: LogLevel, message: string): string {
    if (!this.console_.tty) return formatLogLine(now, level, message);
    const c = this.colors();
    const tag =
      level === "ERROR" || level === "CRITICAL" ? c.red("error")
      : level === "WARNING" ? c.yellow("warning")
      : level === "INFO" ? c.cyan("info")
      : c.dim("debug");
    return `${tag} ${message}\n`;
  }

  /** A result line for people (the run summary): stdout, coloured on a TTY; not in the log file. */
  summary(parts: { ok: boolean; text: string }): void {
    if (this.console_.level === "ERROR" || this.console_.level === "CRITICAL") return;
    this.progressLine?.clear();
    const c = this.colors();
    const mark = parts.ok ? c.green("✓") : c.red("✗");
    process.stdout.write(this.console_.tty ? `${mark} ${parts.text}\n` : `${formatTimestamp(new Date())} ${parts.text}\n`);
  }

  colors() {
    return pc.createColors(this.console_.color);
  }
}

/** Console options from the flags and the environment (NO_COLOR: https://no-color.org). */
export function consoleOptions(flags: { quiet?: boolean; verbose?: boolean }, env: Record<string, string | undefined>): ConsoleOptions {
  const tty = Boolean(process.stderr.isTTY);
  return {
    level: flags.quiet ? "ERROR" : flags.verbose ? "DEBUG" : "WARNING",
    color: tty && !("NO_COLOR" in env && env.NO_COLOR !== ""),
    tty,
  };
}
