// Pure parsers for rsync's output: itemize lines (per-file outcomes) and error lines (which file failed, why).
import { nameFromBytes, showLatin1 } from "../../names.ts";
import { tempNameOwner } from "../temp-names.ts";

/** The prefix of our --out-format lines, so they are never confused with --stats or warnings. */
export const ITEMIZE_MARKER = "RRDSYNC> ";
export const OUT_FORMAT = `${ITEMIZE_MARKER}%i %b %n`;

/**
 * rsync prints unprintable bytes of names as \#ooo (octal), and a backslash that precedes '#' as \#134,
 * so the escaping is reversible. `raw` is the line decoded as latin1 (one char per byte), so bytes survive.
 */
export function decodeRsyncName(raw: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    if (raw.charCodeAt(i) === 0x5c && raw[i + 1] === "#" && /^[0-7]{3}$/.test(raw.slice(i + 2, i + 5))) {
      bytes.push(Number.parseInt(raw.slice(i + 2, i + 5), 8));
      i += 4;
    } else {
      bytes.push(raw.charCodeAt(i) & 0xff);
    }
  }
  return nameFromBytes(Buffer.from(bytes)); // the exact name, also where it is not UTF-8 (src/names.ts)
}

export interface ItemizeLine {
  /** rsync's 11 itemize characters, e.g. ">f+++++++++", ".f         ", "cd+++++++++" */
  flags: string;
  bytes: number;
  path: string;
  /** rsync names directories with a trailing '/' (stripped from `path`) */
  dir: boolean;
}

/** `line` is latin1-decoded (see decodeRsyncName); null for lines that are not ours. */
export function parseItemizeLine(line: string): ItemizeLine | null {
  if (!line.startsWith(ITEMIZE_MARKER)) return null;
  const rest = line.slice(ITEMIZE_MARKER.length);
  // %i is exactly 11 characters (it may contain spaces), then " %b %n".
  const flags = rest.slice(0, 11);
  const m = /^ (\d+) (.*)$/s.exec(rest.slice(11));
  if (flags.length !== 11 || !m) return null;
  let path = decodeRsyncName(m[2] as string);
  const dir = path.endsWith("/");
  if (dir) path = path.slice(0, -1);
  return { flags, bytes: Number(m[1]), path, dir };
}

const NEWER = " is newer";

/**
 * `--update` with `--info=skip1`: the receiver prints "NAME is newer" for a file whose copy there has a later
 * mtime, and skips it (no itemize line). null for any other line.
 */
export function parseNewerLine(line: string): string | null {
  if (line.startsWith(ITEMIZE_MARKER) || !line.endsWith(NEWER) || line.length === NEWER.length) return null;
  return decodeRsyncName(line.slice(0, -NEWER.length));
}

/** A `--list-only --no-h` line: "-rw-r--r--          1234 2024/12/12 15:05:40 a/b.rrd"; regular files only. */
export function parseListOnlyFile(line: string): string | null {
  const m = /^-\S{9} +\d+ \d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d (.+)$/s.exec(line);
  return m ? decodeRsyncName(m[1] as string) : null;
}

/** Is this itemize line about a regular file (sent, or already up to date)? */
export function isFileItem(flags: string): boolean {
  return flags[1] === "f";
}

/**
 * The names an rsync error line mentions: quoted ("…") ones, and the text after the last ": " for messages
 * such as `could not make way for new regular file: a.txt` that do not quote.
 */
export function namesInErrorLine(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/"((?:[^"]|"(?!(?: |:|$)))*)"/g)) out.push(decodeRsyncName(m[1] as string));
  const i = line.lastIndexOf(": ");
  if (i >= 0) out.push(decodeRsyncName(line.slice(i + 2).replace(/ \(\d+\)$/, "")));
  return out;
}

/**
 * Which batch path a name from an error line refers to, else the file a temporary name stands for (the receiver
 * names its mkstemp file: `.a.txt.XXXXXX`). Given `roots` (the source and destination dirs, under which rsync
 * prints absolute paths), a name under one of them, or a relative one, must match exactly; without them, or for an
 * absolute name elsewhere, a name matches itself or a '/'-suffix of it.
 */
export function matchBatchPath(name: string, batch: ReadonlySet<string>, roots: readonly string[] = []): string | null {
  const n = name.endsWith("/") ? name.slice(0, -1) : name;
  const owner = tempNameOwner(n);
  return matchName(n, batch, roots) ?? (owner === null ? null : matchName(owner, batch, roots));
}

function matchName(name: string, batch: ReadonlySet<string>, roots: readonly string[]): string | null {
  for (const root of roots) {
    const prefix = root.endsWith("/") ? root : `${root}/`;
    if (name.startsWith(prefix)) {
      const rel = name.slice(prefix.length);
      return batch.has(rel) ? rel : null;
    }
  }
  // rsync prints other names relative to the transfer's root
  if (roots.length > 0 && !name.startsWith("/")) return batch.has(name) ? name : null;
  let n = name;
  // O(depth) set lookups, never O(batch) per line.
  for (;;) {
    if (batch.has(n)) return n;
    const i = n.indexOf("/");
    if (i < 0) return null;
    n = n.slice(i + 1);
  }
}

/** Maps batch paths to the first error line naming them. */
export function attributeErrors(lines: Iterable<string>, batch: ReadonlySet<string>, roots: readonly string[] = []): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of lines) {
    for (const name of namesInErrorLine(line)) {
      const p = matchBatchPath(name, batch, roots);
      if (p !== null && !out.has(p)) out.set(p, showLatin1(line));
    }
  }
  return out;
}
