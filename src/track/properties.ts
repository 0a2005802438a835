// OpenNMS's .properties files (strings.properties, ds.properties) compared key by key: "ifAlias: "uplink" →
// "core uplink"" says more to an admin than a diff whose first line is always a changed timestamp comment.

/** Java-properties lines, simplified as OpenNMS writes them: key=value or key:value, # and ! comments, \ continuations. */
export function parseProperties(text: string): Map<string, string> {
  const out = new Map<string, string>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    let line = (lines[i] as string).replace(/^\s+/, "");
    if (line === "" || line.startsWith("#") || line.startsWith("!")) continue;
    while (/(^|[^\\])(\\\\)*\\$/.test(line) && i + 1 < lines.length) line = line.slice(0, -1) + (lines[++i] as string).replace(/^\s+/, "");
    const m = /^((?:\\.|[^=:\s\\])*)\s*[=:\s]\s*(.*)$/.exec(line);
    const key = unescape(m ? (m[1] as string) : line);
    out.set(key, unescape(m ? (m[2] as string) : ""));
  }
  return out;
}

function unescape(s: string): string {
  return s.replace(/\\(u[0-9a-fA-F]{4}|.)/g, (_, e: string) =>
    e.length === 5 ? String.fromCharCode(Number.parseInt(e.slice(1), 16)) : e === "n" ? "\n" : e === "t" ? "\t" : e === "r" ? "\r" : e,
  );
}

/** One line per changed, added or removed key, in the new file's order (removed ones last). */
export function propertiesChanges(before: string, after: string): string[] {
  const a = parseProperties(before);
  const b = parseProperties(after);
  const out: string[] = [];
  const q = (v: string) => JSON.stringify(v);
  for (const [k, v] of b) {
    const old = a.get(k);
    if (old === undefined) out.push(`${k}: added ${q(v)}`);
    else if (old !== v) out.push(`${k}: ${q(old)} → ${q(v)}`);
  }
  for (const [k, v] of a) if (!b.has(k)) out.push(`${k}: removed (was ${q(v)})`);
  return out;
}
