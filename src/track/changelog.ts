// The change log: entries in the seed's format, each written with one write() so a crash never leaves half of one.
import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";
import { dirname } from "node:path";

const RULE = "-".repeat(80);

function localTimestamp(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** A name with control characters (a newline) is JSON-quoted, so an entry never spans a fake line. */
export function displayPath(path: string): string {
  return /[\x00-\x1f\x7f]/.test(path) ? JSON.stringify(path) : path;
}

export function formatEntry(time: Date, path: string, details: string): string {
  return `Timestamp: ${localTimestamp(time)}\nFile: ${displayPath(path)}\nChanges:\n${details}\n${RULE}\n`;
}

export class ChangeLog {
  private fd: number | null = null;

  constructor(private readonly path: string) {}

  private open(): number {
    if (this.fd === null) {
      mkdirSync(dirname(this.path), { recursive: true });
      this.fd = openSync(this.path, "a", 0o644);
    }
    return this.fd;
  }

  append(time: Date, path: string, details: string): void {
    const buf = Buffer.from(formatEntry(time, path, details));
    const fd = this.open();
    // O_APPEND: one write lands whole at the end; loop only for the (rare) short write.
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off);
  }

  /** logrotate moved the file: the next entry goes to a new file at the configured path. */
  reopen(): void {
    this.close();
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
