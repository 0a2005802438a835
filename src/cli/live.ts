// Live output of the daemon: coloured lines on a TTY, timestamped plain lines otherwise, JSON lines with --json.
import pc from "picocolors";
import { escapeLine, safeJson } from "../escape.ts";
import { formatTimestamp } from "../log.ts";
import { formatBytes } from "../text.ts";
import { plural } from "../text.ts";
import type { BatchReport, Progress } from "../engine/types.ts";
import { ProgressLine } from "./progress.ts";

export type LiveMode = "tty" | "plain" | "json" | "off";

export function liveMode(flags: { json?: boolean; quiet?: boolean }, env: Record<string, string | undefined>): LiveMode {
  if (flags.json) return "json";
  if (flags.quiet) return "off";
  return process.stdout.isTTY && !(env.NO_COLOR ?? "") ? "tty" : "plain";
}

export class Live {
  private readonly c;
  constructor(private readonly mode: LiveMode, private readonly target: string) {
    this.c = pc.createColors(mode === "tty");
  }

  /** The same output for another target's lines (the daemon's further targets). */
  forTarget(target: string): Live {
    return new Live(this.mode, target);
  }

  private readonly line = new ProgressLine(process.stdout, (s) => this.c.dim(s));

  /** One self-overwriting line on a terminal while a pass walks and sends; nothing elsewhere (it would be noise). */
  progress(p: Progress): void {
    if (this.mode === "tty") this.line.update(p);
  }

  event(type: string, fields: Record<string, unknown>, text: string): void {
    if (this.mode === "off") return;
    this.line.clear();
    if (this.mode === "json") {
      process.stdout.write(`${safeJson({ time: new Date().toISOString(), event: type, ...fields })}\n`);
      return;
    }
    const stamp = this.mode === "tty" ? this.c.dim(new Date().toTimeString().slice(0, 8)) : formatTimestamp(new Date());
    process.stdout.write(`${stamp} ${text}\n`);
  }

  batch(b: BatchReport): void {
    const c = this.c;
    if (b.files > 0) {
      this.event("batch", { files: b.files, bytes: b.bytes, seconds: Number(b.seconds.toFixed(3)), target: this.target, pending: b.pending.length, routine: b.routine.length },
        `${c.green("↑")} ${c.bold(plural(b.files, "file"))} ${formatBytes(b.bytes)} in ${b.seconds.toFixed(2)} s → ${escapeLine(this.target)}${b.routine.length > 0 ? c.dim(` (${b.routine.length} routine RRD updates)`) : ""}`);
    }
    // Per-file lines only on a terminal (and as JSON events for scripts): the plain view is journald's, where a
    // tree updated day and night would be a line per RRD update (issue 25); there a batch is one line.
    if (this.mode === "tty" || this.mode === "json") {
      for (const ch of b.changes) {
        const mark = ch.kind.endsWith("created") ? c.green("+") : c.yellow("~");
        this.event("change", { path: ch.path, kind: ch.kind, summary: ch.summary }, `  ${mark} ${escapeLine(ch.path)} ${c.dim(escapeLine(ch.summary))}`);
      }
    }
    if (this.mode === "tty") for (const p of b.routine) this.event("routine", {}, `  ${c.dim("·")} ${escapeLine(p)} ${c.dim("routine update")}`);
    if (b.pending.length > 0) {
      this.event("pending", { files: b.pending.length, error: b.error }, `${c.red("!")} ${plural(b.pending.length, "file")} pending${b.error ? `: ${escapeLine(b.error)}` : ""}`);
    }
  }
}
