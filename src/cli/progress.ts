// The progress line of a long pass: files and bytes done of those found to send, rate, and an ETA once the walk
// has found everything (before that the total can still grow, so no ETA is promised).
import { formatBytes } from "../text.ts";
import type { Progress } from "../engine/types.ts";

export function formatProgress(p: Progress, elapsedS: number): string {
  const parts = [`${p.scanned.toLocaleString("en-US")} scanned`];
  if (p.plannedFiles > 0) {
    parts.push(`${p.doneFiles.toLocaleString("en-US")}/${p.plannedFiles.toLocaleString("en-US")}${p.walking ? "+" : ""} files`);
    parts.push(`${formatBytes(p.doneBytes)} of ${formatBytes(p.plannedBytes)}${p.walking ? "+" : ""}`);
    const rate = elapsedS > 0.5 ? p.doneBytes / elapsedS : 0;
    if (rate > 0) {
      parts.push(`${formatBytes(rate)}/s`);
      if (!p.walking && p.doneBytes < p.plannedBytes) parts.push(`ETA ${clock((p.plannedBytes - p.doneBytes) / rate)}`);
    }
  }
  return `… ${parts.join(" · ")}`;
}

function clock(s: number): string {
  const t = Math.max(0, Math.round(s));
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = String(t % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

/** Rewrites one terminal line at most every 200 ms; clear() before printing anything else. */
export class ProgressLine {
  private last = 0;
  private shown = false;
  private readonly started = performance.now();

  constructor(private readonly out: NodeJS.WriteStream, private readonly dim: (s: string) => string) {}

  update(p: Progress): void {
    this.show((elapsedS) => formatProgress(p, elapsedS));
  }

  /** Any text (made only when the line is due): verify's "files checked" line. */
  show(text: (elapsedS: number) => string): void {
    const now = performance.now();
    if (now - this.last < 200) return;
    this.last = now;
    this.out.write(`\r${this.dim(text((now - this.started) / 1000))}\x1b[K`);
    this.shown = true;
  }

  clear(): void {
    if (!this.shown) return;
    this.out.write("\r\x1b[K");
    this.shown = false;
  }
}
