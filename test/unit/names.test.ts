// File names as bytes and as strings (src/names.ts): names that are not UTF-8 become a collision-free string, come
// back as the same bytes, and show as \xNN.
import { expect, test } from "bun:test";
import { escapeLine } from "../../src/escape.ts";
import { cPath, fsPath, listEntry, nameFromBytes, nameFromShown, nameToBytes, quoteName, replicable, showLatin1, showName, writeCName } from "../../src/names.ts";

const b = (...parts: Array<string | number[]>) => Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p) : Buffer.from(p))));

// valid UTF-8 of every length, at the edges of the ranges (and a real U+FFFD)
const valid = [
  b("ok.txt"), b("café.txt"), b("€"), b("emoji😀"), b([0xf4, 0x8f, 0xbf, 0xbf]), b([0xed, 0x9f, 0xbf]), b([0xe0, 0xa0, 0x80]),
  b([0xf0, 0x90, 0x80, 0x80]), b("repl\uFFFD.txt"), b([0xc2, 0x80]),
];
// one invalid byte sequence each: [bytes, how it shows]
const invalid: Array<[Buffer, string]> = [
  [b("bad-", [0xff], ".txt"), "bad-\\xff.txt"],
  [b([0xa9], "lead"), "\\xa9lead"],
  [b("trunc", [0xc3]), "trunc\\xc3"],
  [b("trunc", [0xe3, 0x81], ".txt"), "trunc\\xe3\\x81.txt"],
  [b("over", [0xe0, 0x80, 0x80]), "over\\xe0\\x80\\x80"],
  [b("over", [0xc0, 0xaf]), "over\\xc0\\xaf"],
  [b("sur", [0xed, 0xa0, 0x80]), "sur\\xed\\xa0\\x80"],
  [b("big", [0xf4, 0x90, 0x80, 0x80]), "big\\xf4\\x90\\x80\\x80"],
  [b("extra", [0xc3, 0xa9, 0xa9]), "extraé\\xa9"],
  [b("x€", [0x80]), "x€\\x80"],
  [b("4", [0xf0, 0x9f, 0x98]), "4\\xf0\\x9f\\x98"],
  [b("latin1 caf", [0xe9], " ok"), "latin1 caf\\xe9 ok"],
];

test("valid names stay as they are; invalid bytes become NUL + hex, back to the same bytes, shown as \\xNN", () => {
  for (const v of valid) {
    expect(nameFromBytes(v)).toBe(v.toString("utf8"));
    expect(replicable(nameFromBytes(v))).toBe(true);
  }
  for (const [bytes, shown] of invalid) {
    const name = nameFromBytes(bytes);
    expect(replicable(name)).toBe(false);
    expect(name.includes("\uFFFD")).toBe(false);
    expect(Buffer.compare(nameToBytes(name), bytes)).toBe(0);
    expect(showName(name)).toBe(shown);
  }
  // a slice of a larger buffer (getdents64's)
  const big = b("xx", [0xff], "yy");
  expect(nameFromBytes(big, 1, 4)).toBe("x\u0000ffy");
});

test("to the kernel and rsync as bytes; to people as \\xNN; back from what people type", () => {
  const name = nameFromBytes(b("d/bad-", [0xff], ".txt"));
  expect(Buffer.compare(fsPath(name) as Buffer, b("d/bad-", [0xff], ".txt"))).toBe(0);
  expect(fsPath("d/ok.txt")).toBe("d/ok.txt");
  expect(Buffer.compare(cPath(name), b("d/bad-", [0xff], ".txt", [0]))).toBe(0);
  expect(Buffer.compare(listEntry(name) as Buffer, b("d/bad-", [0xff], ".txt", [0]))).toBe(0);
  expect(listEntry("d/ok.txt")).toBe("d/ok.txt\0");
  const buf = Buffer.alloc(16);
  expect(writeCName(buf, name)).toBe(11);
  expect(Buffer.compare(buf.subarray(0, 12), b("d/bad-", [0xff], ".txt", [0]))).toBe(0);
  expect(writeCName(buf, "a".repeat(16))).toBe(-1); // does not fit with its NUL
  expect(writeCName(buf, "é".repeat(8))).toBe(-1);
  expect(quoteName(name)).toBe('"d/bad-\\xff.txt"');
  expect(quoteName("a\nb\x9b")).toBe('"a\\nb\\u009b"');
  expect(escapeLine(`sent ${name}\n`)).toBe("sent d/bad-\\xff.txt\\x0a");
  expect(nameFromShown("d/bad-\\xFF.txt")).toBe(name);
  expect(nameFromShown("d/x\\x41.txt")).toBe("d/x\\x41.txt"); // ASCII is never a bad byte: left as typed
  expect(showLatin1(b("rsync: x \"bad-", [0xff], "\"").toString("latin1"))).toBe('rsync: x "bad-\\xff"');
});

test("a NUL that nameFromBytes did not write reads as no name at all: it cannot spell '/' or '..'", () => {
  for (const forged of ["a\u00002f..\u00002fetc", "a\u0000zz", "a\u00004141"]) {
    expect(nameToBytes(forged).includes(0)).toBe(true); // node:fs refuses a path with NUL
    expect(nameToBytes(forged).includes(Buffer.from("/.."))).toBe(false);
    expect(Buffer.compare(cPath(forged), Buffer.from([0]))).toBe(0); // "": openat finds nothing
    expect(writeCName(Buffer.alloc(64), forged)).toBe(-1);
    expect(listEntry(forged)).toBe(""); // not listed for rsync: never split into other entries
  }
});
