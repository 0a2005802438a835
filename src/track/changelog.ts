// The change log: entries in the seed's format, each written with one write() so a crash never leaves half of one.
import { closeSync, fstatSync, lstatSync, mkdirSync, writeSync } from "node:fs";
import { openAppend } from "../safe-files.ts";
import type { Config } from "../config/types.ts";
import { escapeText } from "../escape.ts";
import { rotateFile } from "./rotate.ts";
import { dirname } from "node:path";
import { quoteName } from "../names.ts";

const RULE = "-".repeat(80);

function localTimestamp(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/**
 * A name with control characters (a newline, ESC, DEL, U+009B) is JSON-quoted with every one of them escaped, so
 * an entry never spans a fake line and a name never drives the terminal that shows it.
 */
export function displayPath(path: string): string {
  return /[\x00-\x1f\x7f-\x9f]/.test(path) ? quoteName(path) : path; // a byte that is not UTF-8 as \xNN (src/names.ts)
}

/** The body is escaped as it is written out (escapeText); the state DB keeps it exact. */
export function formatEntry(time: Date, path: string, details: string): string {
  return `Timestamp: ${localTimestamp(time)}\nFile: ${displayPath(path)}\nChanges:\n${escapeText(`${details}\n`)}${RULE}\n`;
}

export class ChangeLog {
  private fd: number | null = null;

  /** `rotate`: past maxBytes (0 = never) the file becomes path.1.gz, keeping `keep` rotated copies. */
  constructor(
    private readonly path: string,
    private readonly rotate: { maxBytes: number; keep: number; warn?: (msg: string) => void } = { maxBytes: 0, keep: 5 },
  ) {}

  private open(): number {
    if (this.fd === null) {
      mkdirSync(dirname(this.path), { recursive: true, mode: 0o750 });
      this.fd = openAppend(this.path); // never through a symlink planted at its name
    }
    return this.fd;
  }

  private pending: string[] = [];
  private pendingBytes = 0;

  /** Queues an entry; flush() writes the queued ones. Call flush() before the state advances past them. */
  append(time: Date, path: string, details: string): void {
    this.appendFormatted(formatEntry(time, path, details));
  }

  /** An entry already made by formatEntry (ahead of time). */
  appendFormatted(e: string): void {
    this.pending.push(e);
    this.pendingBytes += e.length;
    if (this.pendingBytes > 1 << 20) this.flush();
  }

  /**
   * Writes the queued entries with one write() per MiB (O_APPEND: each lands whole at the end; a crash leaves
   * whole entries, never half of one, and they are on their way before the state DB says the files were synced).
   */
  flush(): void {
    if (this.pending.length === 0) return;
    const buf = Buffer.from(this.pending.join(""));
    this.pending = [];
    this.pendingBytes = 0;
    const fd = this.open();
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off);
    if (this.rotate.maxBytes > 0) {
      try {
        this.maybeRotate(fd);
      } catch (e) {
        // The entries are written; only the rotation failed (disk full?): the log grows until the next try.
        this.rotate.warn?.(`${this.path}: rotation failed: ${(e as Error).message}`);
      }
    }
  }

  /**
   * Rotates after whole entries only. If an external logrotate already moved the file (our fd is no longer the
   * file at `path`), we only reopen: rotating its copy would fight it.
   */
  private maybeRotate(fd: number): void {
    const mine = fstatSync(fd);
    let atPath: ReturnType<typeof lstatSync> | null = null;
    try {
      atPath = lstatSync(this.path);
    } catch {
      atPath = null;
    }
    if (atPath === null || atPath.ino !== mine.ino) {
      this.close();
      return;
    }
    if (mine.size < this.rotate.maxBytes) return;
    this.close();
    rotateFile(this.path, this.rotate.keep);
  }

  /** logrotate moved the file: the next entry goes to a new file at the configured path. */
  reopen(): void {
    this.close(); // flushes first: queued entries belong to the file they were written for
  }

  close(): void {
    this.flush();
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** The configured change log, rotating as change_tracking asks. */
export function openChangeLog(config: Config, log: { warn(msg: string): void }): ChangeLog {
  const ct = config.changeTracking;
  return new ChangeLog(ct.changeLogFile, { maxBytes: ct.maxLogBytes, keep: ct.keepLogs, warn: (m) => log.warn(m) });
}
