// Control characters made visible wherever text from files reaches a terminal or a log: a file's content (an
// SNMP ifAlias can hold anything) or name must never drive the terminal that shows it. Only output is escaped;
// the state DB keeps the exact text (`rrdsync log --json` gives it back exactly).
//
// The forms: C0 controls and DEL as \xNN ("\x1b" for ESC), C1 controls (U+0080–U+009F; U+009B is a one-character
// CSI to some terminals) as \uNNNN. A backslash is not doubled, so "\x1b" typed into a file reads the same as an
// escaped ESC: the escapes are for reading, the exact text is in the state DB.

const CONTROLS_TEXT = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]|\r(?!\n)/g;
const CONTROLS_LINE = /[\x00-\x08\x0a-\x1f\x7f-\x9f]/g;
const NAME_BYTE = /\0([0-9a-f]{2})/g;

function visible(c: string): string {
  const n = c.charCodeAt(0);
  return n < 0x80 ? `\\x${n.toString(16).padStart(2, "0")}` : `\\u${n.toString(16).padStart(4, "0")}`;
}

/** Multi-line text (a diff, a change-log body): newlines, tabs and CRLF line ends stay; every other control shows. */
export function escapeText(s: string): string {
  return s.replace(CONTROLS_TEXT, visible);
}

/**
 * One line (a log message, a summary, a name in a message): only tabs stay, a newline shows as \x0a. A byte of a
 * name that is not UTF-8 (NUL + two hex digits in rrdsync's strings, src/names.ts) shows as that byte: \xff.
 */
export function escapeLine(s: string): string {
  return s.replace(NAME_BYTE, "\\x$1").replace(CONTROLS_LINE, visible);
}

/**
 * JSON for a terminal or a pipe: JSON.stringify escapes C0 but leaves DEL and C1 raw; these become \u escapes
 * too, which JSON reads back as the same characters, so the value is unchanged.
 */
export function safeJson(value: unknown): string {
  return JSON.stringify(value).replace(/[\x7f-\x9f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}
