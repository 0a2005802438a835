// Unified diffs in the seed's shape (--- before / +++ after), exact: no doubled blank lines, bounded in length.
import { structuredPatch } from "diff";

export interface FormattedDiff {
  text: string;
  added: number;
  removed: number;
  truncated: boolean;
}

export const DEFAULT_MAX_DIFF_LINES = 2000;

function truncate(header: string[], body: string[], maxLines: number): { text: string; truncated: boolean } {
  if (body.length <= maxLines) return { text: [...header, ...body].join("\n"), truncated: false };
  const shown = body.slice(0, maxLines);
  shown.push(`… diff truncated: ${body.length - maxLines} more lines not shown`);
  return { text: [...header, ...shown].join("\n"), truncated: true };
}

export function formatUnifiedDiff(before: string, after: string, opts: { maxLines?: number } = {}): FormattedDiff {
  const patch = structuredPatch("before", "after", before, after, undefined, undefined, { context: 3 });
  const body: string[] = [];
  let added = 0;
  let removed = 0;
  for (const h of patch.hunks) {
    // diff's convention for an empty side: start 0 when the range is empty, as GNU diff prints it.
    body.push(`@@ -${h.oldStart},${h.oldLines} +${h.newStart},${h.newLines} @@`);
    for (const l of h.lines) {
      if (l.startsWith("+")) added++;
      else if (l.startsWith("-")) removed++;
      body.push(l);
    }
  }
  const t = truncate(["--- before", "+++ after"], body, opts.maxLines ?? DEFAULT_MAX_DIFF_LINES);
  return { text: t.text, added, removed, truncated: t.truncated };
}

/** Lines split the way diff counts them: a final line without "\n" is a line too. */
export function splitLines(text: string): string[] {
  if (text === "") return [];
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines;
}

/** An append-only change as a zero-context hunk: `@@ -N,0 +N+1,M @@` and the new lines. */
export function formatAppendDiff(oldLineCount: number, appended: string[], totalAppended: number, maxLines = DEFAULT_MAX_DIFF_LINES): FormattedDiff {
  const body = [`@@ -${oldLineCount},0 +${oldLineCount + 1},${totalAppended} @@`, ...appended.slice(0, maxLines).map((l) => `+${l}`)];
  const hidden = totalAppended - Math.min(appended.length, maxLines);
  if (hidden > 0) body.push(`… diff truncated: ${hidden} more lines not shown`);
  return { text: ["--- before", "+++ after", ...body].join("\n"), added: totalAppended, removed: 0, truncated: hidden > 0 };
}
