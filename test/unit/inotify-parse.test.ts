// The struct inotify_event parser on crafted buffers: padded names, the directory's own events, bytes that are not
// UTF-8, an event cut at the end of a read, and stopping early.
import { expect, test } from "bun:test";
import { IN_CLOSE_WRITE, IN_CREATE, IN_IGNORED, IN_ISDIR, parseInotifyEvents } from "../../src/watch/inotify-sys.ts";

function ev(wd: number, mask: number, cookie: number, name: Uint8Array, padTo = 0): Uint8Array {
  const len = name.length === 0 ? 0 : Math.max(padTo, Math.ceil((name.length + 1) / 16) * 16);
  const b = new Uint8Array(16 + len);
  const v = new DataView(b.buffer);
  v.setInt32(0, wd, true);
  v.setUint32(4, mask, true);
  v.setUint32(8, cookie, true);
  v.setUint32(12, len, true);
  b.set(name, 16);
  return b;
}
const cat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));
const utf8 = (s: string) => new TextEncoder().encode(s);

test("whole events are parsed; a cut one is left for the next read", () => {
  const whole = cat(
    ev(1, IN_CLOSE_WRITE, 0, utf8("ifHCInOctets.rrd"), 32),
    ev(2, IN_CREATE | IN_ISDIR, 0, utf8("é ü")),
    ev(3, IN_IGNORED, 0, new Uint8Array()),
    ev(4, IN_CLOSE_WRITE, 7, Uint8Array.from([0x62, 0x61, 0x64, 0xff])),
  );
  const next = ev(5, IN_CLOSE_WRITE, 0, utf8("next.rrd"));
  const buf = cat(whole, next.subarray(0, 20));
  const seen: unknown[] = [];
  const used = parseInotifyEvents(buf, (wd, mask, cookie, name) => seen.push([wd, mask, cookie, name]) > 0);
  expect(used).toBe(whole.length);
  expect(seen).toEqual([
    [1, IN_CLOSE_WRITE, 0, "ifHCInOctets.rrd"],
    [2, IN_CREATE | IN_ISDIR, 0, "é ü"],
    [3, IN_IGNORED, 0, ""],
    [4, IN_CLOSE_WRITE, 7, "bad\u0000ff"],
  ]);
});

test("stops when the callback says so, after the event it was given", () => {
  const buf = cat(ev(1, IN_CLOSE_WRITE, 0, utf8("a")), ev(1, IN_CLOSE_WRITE, 0, utf8("b")));
  const names: string[] = [];
  const used = parseInotifyEvents(buf, (_wd, _m, _c, name) => names.push(name) < 1);
  expect(names).toEqual(["a"]);
  expect(used).toBe(32);
});
