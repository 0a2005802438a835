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

  private pending: string[] = [];
  private pendingBytes = 0;

  /** Queues an entry; flush() writes the queued ones. Call flush() before the state advances past them. */
  append(time: Date, path: string, details: string): void {
    const e = formatEntry(time, path, details);
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
