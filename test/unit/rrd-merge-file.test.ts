// The merge on files beside a live writer: how librrd 1.7.2 locks (found here with the real rrdtool), why a live
// RRD is merged in place under that lock and not by temp + rename (a real `rrdtool update` paused between its open
// and its lock), real updates running during merges with none lost, and a merge cut short converging when run again.
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, copyFileSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MergeBuffers, mergeInto, mergeRrdFiles, readRrdLocked } from "../../src/track/rrd-merge-file.ts";
import { lockWait, LockTimeout, tryLock, unlock } from "../../src/track/rrd-lock.ts";
import { mergeRrd } from "../../src/track/rrd-merge.ts";
import { fetchRows, infoField, infoLines, rrdtool, updates } from "../helpers/rrdtool.ts";

// Each test runs rrdtool (create, update, fetch) a few dozen times: a loaded 2-core CI machine took over 5 s.
setDefaultTimeout(30_000);

const dir = mkdtempSync(join(tmpdir(), "rrdsync-mergefile-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const at = (name: string) => join(dir, name);

const T0 = 1_700_000_100;
const t = (i: number) => T0 + 300 * i;

function create(name: string, rows = 60): string {
  const f = at(name);
  rmSync(f, { force: true });
  rrdtool(["create", f, "--start", String(T0), "--step", "300", "DS:v:GAUGE:600:U:U", "DS:c:COUNTER:600:0:U", `RRA:AVERAGE:0.5:1:${rows}`, "RRA:MAX:0.5:4:20", "RRA:MIN:0.5:4:20", "RRA:LAST:0.5:1:10"]);
  return f;
}

const write = (f: string, from: number, to: number, side = 0) =>
  updates(Array.from({ length: to - from + 1 }, (_, k) => [f, t(from + k), [from + k + side * 1000, 100 * (from + k)]] as [string, number, number[]]));

/** A primary and its standby after a failover: the standby has a gap the primary fills, and newer rows. */
async function failoverPair(tag: string): Promise<{ primary: string; standby: string }> {
  const primary = create(`p-${tag}.rrd`);
  await write(primary, 1, 20);
  const standby = at(`s-${tag}.rrd`);
  copyFileSync(primary, standby);
  await write(primary, 21, 26);
  await write(standby, 30, 40, 1);
  return { primary, standby };
}

const value = (f: string, i: number) => fetchRows(f, "AVERAGE", 300, 1, t(i))[0]?.[1][0];

/** Holds a classic fcntl write lock (as librrd takes it) in another process until killed. */
async function holdClassicLock(file: string): Promise<{ pid: number; stop: () => Promise<void> }> {
  const code = `
    const { dlopen, ptr } = require("bun:ffi");
    const fd = require("node:fs").openSync(process.argv[1], "r+");
    const fl = new DataView(new ArrayBuffer(32)); fl.setInt16(0, 1, true);
    const rc = dlopen("libc.so.6", { fcntl: { args: ["i32", "i32", "ptr"], returns: "i32" } }).symbols.fcntl(fd, 6, ptr(fl.buffer));
    console.log(rc === 0 ? "locked" : "failed"); setInterval(() => {}, 1000);`;
  const p = Bun.spawn([process.execPath, "-e", code, file], { stdout: "pipe", stderr: "inherit" });
  const reader = (p.stdout as ReadableStream<Uint8Array>).getReader();
  const first = Buffer.from((await reader.read()).value ?? []).toString();
  if (!first.startsWith("locked")) throw new Error(`lock holder: ${first}`);
  return {
    pid: p.pid,
    stop: async () => {
      p.kill("SIGKILL");
      await p.exited;
    },
  };
}

describe("librrd 1.7.2's lock, found with the real rrdtool", () => {
  test("while a write lock is held, `rrdtool update` fails at once with 'could not lock RRD' (it never waits); released, it goes through", async () => {
    const f = create("lock.rrd");
    await write(f, 1, 2);
    const fd = openSync(f, "r+");
    try {
      expect(tryLock(fd, "write")).toBe(true);
      const started = performance.now();
      const p = Bun.spawnSync(["rrdtool", "update", f, `${t(3)}:3:300`], { stdout: "pipe", stderr: "pipe" });
      expect({ code: p.exitCode, err: p.stderr.toString().trim() }).toEqual({ code: 1, err: "ERROR: could not lock RRD" });
      expect(performance.now() - started).toBeLessThan(2000);
      // Readers take a read lock the same way: they fail too while we write.
      expect(Bun.spawnSync(["rrdtool", "lastupdate", f], { stderr: "pipe" }).stderr.toString()).toContain("could not lock RRD");
      unlock(fd);
      // A read lock (how merge reads its inputs) lets readers in and keeps the writer out.
      expect(tryLock(fd, "read")).toBe(true);
      expect(Bun.spawnSync(["rrdtool", "lastupdate", f]).exitCode).toBe(0);
      expect(Bun.spawnSync(["rrdtool", "update", f, `${t(3)}:3:300`], { stderr: "pipe" }).exitCode).toBe(1);
      unlock(fd);
      expect(Bun.spawnSync(["rrdtool", "update", f, `${t(3)}:3:300`]).exitCode).toBe(0);
    } finally {
      closeSync(fd);
    }
    expect(value(f, 3)).toBe("3.0000000000e+00");
  });

  test("our lock waits for a classic lock held elsewhere, bounded, and names its holder", async () => {
    const f = create("held.rrd");
    const holder = await holdClassicLock(f);
    try {
      const fd = openSync(f, "r");
      try {
        const err = await lockWait(fd, "read", 300).then(() => null, (e: unknown) => e);
        expect(err).toBeInstanceOf(LockTimeout);
        expect((err as LockTimeout).holder).toBe(holder.pid);
      } finally {
        closeSync(fd);
      }
      const other = await failoverPair("held");
      const e = await mergeRrdFiles(other.primary, f, null, { waitMs: 200 }).then(() => null, (x: unknown) => x);
      expect((e as Error).message).toBe(`${f}: rrdtool's lock is held (locked by pid ${holder.pid} for ${((e as Error).message.match(/for ([\d.]+) s/)?.[1] ?? "?")} s)`);
    } finally {
      await holder.stop();
    }
    expect((await readRrdLocked(f, 200)).bytes.length).toBe(statSync(f).size);
  });
});

describe("mergeInto: in place, under rrdtool's lock", () => {
  test("merges the standby's copy into the live file: same inode, mode and owner; the rows and live state of a merge to a new file", async () => {
    const { primary, standby } = await failoverPair("in");
    const expected = mergeRrd(readFileSync(primary), readFileSync(standby));
    if (expected.kind !== "merged") throw new Error(expected.reason);
    chmodSync(primary, 0o640);
    const before = statSync(primary);
    const r = await mergeInto(primary, standby, { names: ["primary", "standby"] });
    expect(r.wrote).toBe("in place");
    const after = statSync(primary);
    expect([after.ino, after.mode, after.uid, after.size]).toEqual([before.ino, before.mode, before.uid, before.size]);
    // The standby was a byte copy of the primary: one ring position, so the very bytes of a merge to a new file.
    expect(readFileSync(primary).equals(expected.out)).toBe(true);
    expect(infoLines(primary)).toEqual(infoLines(standby));
  });

  test("copies made apart (rings rotated differently): the local file keeps its ring position, rrdtool sees the same rows and state", async () => {
    const local = create("apart-l.rrd");
    let other = create("apart-o.rrd");
    for (let k = 0; k < 20 && infoField(local, "rra[0].cur_row") === infoField(other, "rra[0].cur_row"); k++) other = create("apart-o.rrd");
    await write(local, 1, 25);
    await write(other, 20, 45, 1);
    const newFile = at("apart-new.rrd");
    await mergeRrdFiles(local, other, newFile);
    const ring = infoField(local, "rra[0].cur_row");
    await mergeInto(local, readFileSync(other));
    const notRing = (lines: string[]) => lines.filter((l) => !/^rra\[\d+\]\.cur_row/.test(l));
    expect(notRing(infoLines(local))).toEqual(notRing(infoLines(newFile)));
    expect(Number(infoField(local, "rra[0].cur_row"))).toBe((Number(ring) + 20) % 60); // turned on by the 20 rows the other was ahead
    for (const [cf, period, rows] of [["AVERAGE", 300, 60], ["MAX", 1200, 20], ["MIN", 1200, 20], ["LAST", 300, 10]] as const) {
      const end = t(45); // the last update, a multiple of 1200 s
      expect(fetchRows(local, cf, period, rows, end)).toEqual(fetchRows(newFile, cf, period, rows, end));
    }
    // And rrdtool goes on with it as with the other.
    await write(local, 46, 50, 1);
    await write(newFile, 46, 50, 1);
    expect(notRing(infoLines(local))).toEqual(notRing(infoLines(newFile)));
  });

  const strace = Bun.which("strace") !== null;
  test.skipIf(!strace)(`a real \`rrdtool update\` paused between its open and its lock updates the merged file; temp + rename would lose it${strace ? "" : " (SKIPPED: no strace)"}`, async () => {
    /** `rrdtool update` under strace, its one fcntl (the lock) delayed 1.5 s; resolves once it has the file open. */
    async function pausedUpdate(file: string, update: string) {
      const p = Bun.spawn(["strace", "-f", "-o", "/dev/null", "-e", "trace=fcntl", "-e", "inject=fcntl:delay_enter=1500000", "rrdtool", "update", file, update], { stdout: "pipe", stderr: "pipe" });
      const deadline = Date.now() + 10_000;
      for (;;) {
        const kids = existsSync(`/proc/${p.pid}/task/${p.pid}/children`) ? readFileSync(`/proc/${p.pid}/task/${p.pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean) : [];
        const open = kids.some((k) => {
          try {
            return readdirSync(`/proc/${k}/fd`).some((fd) => readlinkSync(`/proc/${k}/fd/${fd}`) === file);
          } catch {
            return false;
          }
        });
        if (open) break;
        if (Date.now() > deadline) throw new Error("rrdtool never opened the file");
        await Bun.sleep(5);
      }
      return async () => ({ code: await p.exited, err: await new Response(p.stderr).text() });
    }

    // In place: the writer that opened the file before the merge updates the merged bytes.
    const { primary, standby } = await failoverPair("paused");
    const done = await pausedUpdate(primary, `${t(41)}:41:4100`);
    const merged = await mergeInto(primary, readFileSync(standby));
    expect(merged.stats.archives[0]?.onlyB).toBeGreaterThan(0);
    expect((await done()).code).toBe(0);
    expect(value(primary, 41)).toBe("4.1000000000e+01"); // the paused update
    expect(value(primary, 35)).toBe("1.0350000000e+03"); // the standby's row
    expect(value(primary, 25)).toBe("2.5000000000e+01"); // the primary's own row, unreplicated

    // Temp + rename, for contrast: the same writer updates the old inode; rrdtool says success, the file lacks it.
    const pair = await failoverPair("renamed");
    const done2 = await pausedUpdate(pair.primary, `${t(41)}:41:4100`);
    const r = mergeRrd(readFileSync(pair.primary), readFileSync(pair.standby));
    if (r.kind !== "merged") throw new Error(r.reason);
    writeFileSync(`${pair.primary}.tmp`, r.out);
    renameSync(`${pair.primary}.tmp`, pair.primary);
    expect((await done2()).code).toBe(0);
    expect(value(pair.primary, 41)).toBe("nan");
  }, 30_000);

  test("real `rrdtool update`s (one process each, as a collector runs them) during repeated merges: no acknowledged update is lost", async () => {
    const { primary, standby } = await failoverPair("busy");
    // The old primary is the live side again (OpenNMS back on it): it writes on while the standby's rows are merged in.
    await write(primary, 41, 45);
    const other = readFileSync(standby);
    const acked: number[] = [];
    let conflicts = 0;
    let merges = 0;
    let writing = true;
    const writer = (async () => {
      for (let i = 46; i <= 85; i++) {
        for (let attempt = 0; ; attempt++) {
          const p = Bun.spawn(["rrdtool", "update", primary, `${t(i)}:${i}:${100 * i}`], { stdout: "ignore", stderr: "pipe" });
          const [code, err] = [await p.exited, await new Response(p.stderr).text()];
          if (code === 0) {
            acked.push(i);
            break;
          }
          // librrd does not wait for the lock: a writer that wants no gap retries, as this one does.
          if (!err.includes("could not lock RRD") || attempt > 200) throw new Error(`update ${i}: ${err}`);
          conflicts++;
          await Bun.sleep(1);
        }
      }
      writing = false;
    })();
    while (writing) {
      await mergeInto(primary, other);
      merges++;
      await Bun.sleep(0);
    }
    await writer;
    expect(acked.length).toBe(40);
    expect(merges).toBeGreaterThan(20);
    for (const i of acked) expect({ i, v: value(primary, i) }).toEqual({ i, v: `${(i).toExponential(10).replace(/e\+(\d)$/, "e+0$1")}` });
    for (const i of [31, 35, 40]) expect(value(primary, i)).toBe(`${(i + 1000).toExponential(10).replace(/e\+(\d)$/, "e+0$1")}`);
    for (const i of [26, 45]) expect(value(primary, i)).toBe(`${i.toExponential(10).replace(/e\+(\d)$/, "e+0$1")}`);
    console.log(`  ${merges} merges during 40 updates; ${conflicts} updates met the lock and were retried`);
  }, 120_000);

  test("a merge cut short at any page (kill -9 inside its write) converges when run again", async () => {
    for (const apart of [false, true]) {
      const local = create(`cut-l${apart}.rrd`, 400);
      let other = at(`cut-o${apart}.rrd`);
      await write(local, 1, 300);
      if (apart) {
        other = create(`cut-o${apart}.rrd`, 400);
        await write(other, 250, 380, 1);
      } else {
        copyFileSync(local, other);
        await write(local, 301, 310);
        await write(other, 320, 380, 1);
      }
      const prev = readFileSync(local);
      const whole = at(`cut-whole${apart}.rrd`);
      copyFileSync(local, whole);
      await mergeInto(whole, readFileSync(other));
      const next = readFileSync(whole);
      const dataAt = 128 + 120 * 2 + 120 * 4 + 16 + 112 * 2 + 80 * 8 + 8 * 4;
      // mergeInto writes the changed rows as one span, then the changed header: a kill leaves a prefix of that.
      let lo = dataAt;
      while (prev[lo] === next[lo]) lo++;
      let hi = next.length;
      while (prev[hi - 1] === next[hi - 1]) hi--;
      // Every 512 bytes: more places than the page boundaries (4096) where the kernel can stop a write.
      const cuts = [lo, ...Array.from({ length: Math.ceil(hi / 512) }, (_, k) => (k + 1) * 512).filter((c) => c > lo && c < hi), hi];
      expect(cuts.length).toBeGreaterThan(3);
      for (const cut of cuts) {
        const torn = Buffer.from(prev);
        next.copy(torn, lo, lo, cut); // rows up to the cut, the old header
        const f = at("torn.rrd");
        writeFileSync(f, torn);
        await mergeInto(f, readFileSync(other));
        expect({ apart, cut, same: readFileSync(f).equals(next) }).toEqual({ apart, cut, same: true });
      }
    }
  });
});

describe("mergeRrdFiles: a new file, or in place when --to names an input", () => {
  test("a new OUT is written under a random temporary name and renamed; an existing one only with force; a planted symlink is replaced, never followed", async () => {
    const { primary, standby } = await failoverPair("new");
    const out = at("out-new.rrd");
    const r = await mergeRrdFiles(primary, standby, out);
    expect(r.wrote).toBe("new file");
    expect(readdirSync(dir).filter((n) => n.includes("rrdsync-merge"))).toEqual([]);
    expect(infoLines(out)).toEqual(infoLines(standby));
    const e = await mergeRrdFiles(primary, standby, out).then(() => null, (x: unknown) => x as Error);
    expect(e?.message).toBe(`${out} exists`);
    const victim = at("victim.txt");
    writeFileSync(victim, "precious");
    rmSync(out);
    symlinkSync(victim, out);
    await mergeRrdFiles(primary, standby, out, { force: true });
    expect(readFileSync(victim, "utf8")).toBe("precious");
    expect(statSync(out).isFile()).toBe(true);
  });

  test("--to one of the inputs merges into it in place (its inode kept); the report names the sides as given", async () => {
    const { primary, standby } = await failoverPair("intob");
    const ino = statSync(standby).ino;
    const r = await mergeRrdFiles(primary, standby, standby);
    expect(r.wrote).toBe("in place");
    expect(r.names).toEqual([primary, standby]);
    expect(r.stats.liveFrom).toBe("b");
    expect(r.stats.archives[0]?.onlyA).toBeGreaterThan(0); // the primary's unreplicated rows
    expect(statSync(standby).ino).toBe(ino);
    expect(value(standby, 25)).toBe("2.5000000000e+01");
    const same = await mergeRrdFiles(primary, primary, null).then(() => null, (x: unknown) => x as Error);
    expect(same?.message).toBe(`${primary} and ${primary} are the same file`);
  });

  test("--prefer names the inputs as given, whichever one is merged into", async () => {
    const a = create("pref-a.rrd");
    await write(a, 1, 20);
    const b = at("pref-b.rrd");
    copyFileSync(a, b);
    await write(a, 21, 30, 0);
    await write(b, 21, 35, 1); // a split: both wrote 21–30, each its own values; b is newer
    const newFile = at("pref-new.rrd");
    await mergeRrdFiles(a, b, newFile, { prefer: "a" });
    expect(value(newFile, 25)).toBe("2.5000000000e+01"); // a's value, though b is newer
    const r = await mergeRrdFiles(a, b, b, { prefer: "a" }); // into b, in place
    expect([r.wrote, r.stats.winner, r.stats.liveFrom]).toEqual(["in place", "a", "b"]);
    expect(value(b, 25)).toBe("2.5000000000e+01");
    expect(value(b, 33)).toBe("1.0330000000e+03");
    expect(infoLines(b)).toEqual(infoLines(newFile));
  });

  test("one MergeBuffers reused over files of different sizes: the same files as fresh buffers give", async () => {
    const buffers = new MergeBuffers();
    for (const [tag, rows] of [["buf1", 60], ["buf2", 400], ["buf3", 60]] as const) {
      const a = create(`${tag}-a.rrd`, rows);
      await write(a, 1, 20);
      const b = at(`${tag}-b.rrd`);
      copyFileSync(a, b);
      await write(a, 21, 26);
      await write(b, 30, 40, 1);
      await mergeRrdFiles(a, b, at(`${tag}-fresh.rrd`));
      await mergeRrdFiles(a, b, at(`${tag}-reused.rrd`), { buffers });
      expect(readFileSync(at(`${tag}-reused.rrd`)).equals(readFileSync(at(`${tag}-fresh.rrd`)))).toBe(true);
      copyFileSync(a, at(`${tag}-into.rrd`));
      await mergeInto(at(`${tag}-into.rrd`), b, { buffers });
      expect(readFileSync(at(`${tag}-into.rrd`)).equals(readFileSync(at(`${tag}-fresh.rrd`)))).toBe(true);
    }
  });

  test("a symlink or a FIFO under an input's name is refused, not followed or waited on", async () => {
    const { primary, standby } = await failoverPair("odd");
    symlinkSync(primary, at("link.rrd"));
    const e1 = await mergeRrdFiles(at("link.rrd"), standby, at("odd-out.rrd")).then(() => null, (x: unknown) => x as Error);
    expect(e1?.message).toStartWith(`${at("link.rrd")}: cannot read: it is a symlink`);
    Bun.spawnSync(["mkfifo", at("fifo.rrd")]);
    const e2 = await mergeRrdFiles(primary, at("fifo.rrd"), at("odd-out.rrd")).then(() => null, (x: unknown) => x as Error);
    expect(e2?.message).toBe(`${at("fifo.rrd")}: not a regular file`);
    const e3 = await mergeInto(at("fifo.rrd"), readFileSync(primary)).then(() => null, (x: unknown) => x as Error);
    expect(e3?.message).toBe(`${at("fifo.rrd")}: not a regular file`);
    expect(existsSync(at("odd-out.rrd"))).toBe(false);
  });
});
