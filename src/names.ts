// Pure: file names as the kernel gives them (bytes) and as rrdsync carries them (strings), the one place that
// converts between them. Linux names are bytes; Bun decodes them as UTF-8, and a byte that is not part of valid
// UTF-8 becomes U+FFFD, which cannot be turned back into the name (nothing could open, send or delete that file
// by it). So a name read as bytes becomes a string in which each such byte is NUL + two hex digits ("bad-\xff.txt"
// → "bad-\u0000ff.txt"): NUL is never in a real name, so this cannot collide with any valid name (a name that
// really holds U+FFFD stays itself), and the state DB, queues and messages carry it as any other string. Every
// edge that hands a path to the kernel or to rsync converts it back here (fsPath, cPath, writeCName, listEntry);
// people see each such byte as \xNN (showName, quoteName; escapeLine does the same for log lines). The SFTP
// transport cannot carry such names (SFTP_CANNOT_CARRY).
import { safeJson } from "./escape.ts";

/** How many bytes the valid UTF-8 sequence at b[i] has (at most up to `end`); 0 where none starts there. */
function sequenceAt(b: Uint8Array, i: number, end: number): number {
  const c = b[i] as number;
  if (c < 0x80) return 1;
  const cont = (j: number, lo = 0x80, hi = 0xbf) => j < end && (b[j] as number) >= lo && (b[j] as number) <= hi;
  if (c >= 0xc2 && c <= 0xdf) return cont(i + 1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    // no overlong forms (E0 A0..), no UTF-16 surrogates (ED 80..9F)
    const [lo, hi] = c === 0xe0 ? [0xa0, 0xbf] : c === 0xed ? [0x80, 0x9f] : [0x80, 0xbf];
    return cont(i + 1, lo, hi) && cont(i + 2) ? 3 : 0;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    // no overlong forms (F0 90..), nothing above U+10FFFF (F4 80..8F)
    const [lo, hi] = c === 0xf0 ? [0x90, 0xbf] : c === 0xf4 ? [0x80, 0x8f] : [0x80, 0xbf];
    return cont(i + 1, lo, hi) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  }
  return 0; // a continuation byte where a character starts, C0, C1, F5..FF
}

const hex = (c: number) => c.toString(16).padStart(2, "0");

/**
 * A name from its bytes (b[start..end)): the text where they are valid UTF-8 (the common case costs one decode
 * and one scan for U+FFFD), else the text with each invalid byte as NUL + two hex digits.
 */
export function nameFromBytes(b: Buffer, start = 0, end = b.length): string {
  const text = b.toString("utf8", start, end);
  if (!text.includes("\uFFFD")) return text;
  let out = "";
  let from = start; // the valid run not yet copied
  for (let i = start; i < end; ) {
    const n = sequenceAt(b, i, end);
    if (n > 0) {
      i += n;
      continue;
    }
    out += `${b.toString("utf8", from, i)}\0${hex(b[i] as number)}`;
    from = ++i;
  }
  return out + b.toString("utf8", from, end);
}

/**
 * A name that came from `nameFromBytes` as its bytes again. Only NUL + a byte that is never UTF-8 of its own (80 to
 * ff) is read so: a string from elsewhere (a state DB made by hand) cannot spell '/' or '.' this way, and any other
 * NUL stays a NUL byte, which no file-system call takes (node:fs refuses it; cPath and writeCName refuse it).
 */
export function nameToBytes(name: string): Buffer {
  if (!name.includes("\0")) return Buffer.from(name);
  const parts: Buffer[] = [];
  let from = 0;
  for (let i = name.indexOf("\0"); i >= 0; i = name.indexOf("\0", i + 1)) {
    if (!/^[89a-f][0-9a-f]$/.test(name.slice(i + 1, i + 3))) continue;
    parts.push(Buffer.from(name.slice(from, i)), Buffer.from([Number.parseInt(name.slice(i + 1, i + 3), 16)]));
    from = i + 3;
  }
  parts.push(Buffer.from(name.slice(from)));
  return Buffer.concat(parts);
}

/** Was every byte of this name (or path) valid UTF-8? (Else only the rsync transport can carry it.) */
export const replicable = (name: string): boolean => !name.includes("\0");

/** A name (or path) for people: each byte that is not valid UTF-8 as \xNN (as `ls -b` shows it). */
export const showName = (name: string): string => (replicable(name) ? name : name.replace(/\0([0-9a-f]{2})/g, "\\x$1"));


/** A path (built from such names) for node:fs: the string itself, or its bytes where a name is not UTF-8. */
export const fsPath = (path: string): string | Buffer => (replicable(path) ? path : nameToBytes(path));

/** A path as a C string for a libc call through bun:ffi (its bytes and a NUL; "" where a NUL is inside: no file). */
export function cPath(path: string): Buffer {
  if (replicable(path)) return Buffer.from(`${path}\0`);
  const b = nameToBytes(path);
  return b.includes(0) ? Buffer.from([0]) : Buffer.concat([b, Buffer.from([0])]);
}

/**
 * Writes `name`'s bytes and a NUL into `buf` (a reused C-string buffer): the length without the NUL, or -1 when it
 * does not fit.
 */
export function writeCName(buf: Buffer, name: string): number {
  if (replicable(name)) {
    const n = buf.write(name, 0);
    if (n >= buf.length - 1 || Buffer.byteLength(name) !== n) return -1;
    buf[n] = 0;
    return n;
  }
  const b = nameToBytes(name);
  if (b.length >= buf.length || b.includes(0)) return -1;
  b.copy(buf, 0);
  buf[b.length] = 0;
  return b.length;
}

/** Bun.file for such a path (lazy: nothing is read until asked). */
export const bunFile = (path: string): ReturnType<typeof Bun.file> => (replicable(path) ? Bun.file(path) : Bun.file(new Uint8Array(nameToBytes(path))));

/**
 * A path as one entry of a NUL-separated list (rsync's --from0 stdin): text where it can be, else its bytes; none
 * where a NUL is inside (it would split into other entries: such a file is then not listed, so not confirmed).
 */
export function listEntry(path: string): string | Buffer {
  if (replicable(path)) return `${path}\0`;
  const b = nameToBytes(path);
  return b.includes(0) ? "" : Buffer.concat([b, Buffer.from([0])]);
}

/** A line of another program's output read as latin1 (one char per byte), shown: UTF-8 as text, other bytes as \xNN. */
export const showLatin1 = (line: string): string => showName(nameFromBytes(Buffer.from(line, "latin1")));

/**
 * Why the SFTP transport cannot carry such a name: ssh2 takes paths as strings and sends them as UTF-8 (and
 * OpenSSH's server reads C strings: the NUL form would name another file).
 */
export const SFTP_CANNOT_CARRY = "the name is not valid UTF-8, which the SFTP transport cannot carry: use the rsync transport, or rename the file";

/** A path in double quotes, JSON-escaped (safeJson), a byte that is not UTF-8 as \xNN: for people, in one line. */
export const quoteName = (path: string): string => safeJson(path).replace(/\\u0000([0-9a-f]{2})/g, "\\x$1");

/**
 * A name as a person gives it back (`rrdsync restore 'd/bad-\xff.rrd'`): each \xNN that is no UTF-8 of its own
 * (80 to ff) as that byte. The caller tries the name as given first (it may really hold such text).
 */
export const nameFromShown = (shown: string): string => shown.replace(/\\x([89a-f][0-9a-f])/gi, (_, h: string) => `\0${h.toLowerCase()}`);
