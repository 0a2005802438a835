// The tree watcher against the real writers (rrdtool, Python mmap, write() in place, rename), no daemon: every
// scenario asserts the event that must arrive, and the writer that raises none until close is found by the sweep.
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { closeSync, existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { statFacts, versionKey } from "../../../src/engine/plan.ts";
import { sweepChanged } from "../../../src/source/sweep.ts";
import type { TreeWatcher, WatchEvent } from "../../../src/watch/events.ts";
import { InotifyTreeWatcher } from "../../../src/watch/inotify.ts";
import { createTreeWatcher, FsTreeWatcher } from "../../../src/watch/watcher.ts";
import { loopGapMeter } from "../../helpers/loop-gap.ts";

setDefaultTimeout(30_000);

const REPO = resolve(import.meta.dir, "../../..");
const CHILD = join(REPO, "test/helpers/watch-child.ts");
// RRDSYNC_TEST_WATCHER=fs.watch runs the scenarios against the fallback, to see which of them it fails (issue #13).
const make = process.env.RRDSYNC_TEST_WATCHER === "fs.watch"
  ? (root: string, on: (e: WatchEvent) => void) => new FsTreeWatcher(root, on)
  : (root: string, on: (e: WatchEvent) => void) => new InotifyTreeWatcher(root, on);
// Nothing here depends on the transport: the SFTP rerun of test/e2e (scripts/test.sh) skips it.
const run = describe.skipIf(process.env.RRDSYNC_TEST_TRANSPORT === "sftp");

interface Watched {
  w: TreeWatcher;
  root: string;
  events: WatchEvent[];
  /** resolves with the first event from index `from` on that matches; throws after `ms` with the events seen */
  until(pred: (e: WatchEvent) => boolean, what: string, ms?: number, from?: number): Promise<WatchEvent>;
  /** waits `ms` and fails if an event from index `from` on matches */
  none(pred: (e: WatchEvent) => boolean, what: string, ms?: number, from?: number): Promise<void>;
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempDir(base = tmpdir()): string {
  const d = mkdtempSync(join(base, "rrdsync-watch-"));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

type Factory = (root: string, on: (e: WatchEvent) => void) => TreeWatcher;

async function watch(root: string, factory: Factory = make): Promise<Watched> {
  const events: WatchEvent[] = [];
  let wake = () => {};
  const w = factory(root, (e) => {
    events.push(e);
    wake();
  });
  cleanups.push(() => w.close());
  w.start();
  await w.ready;
  const waitSome = (ms: number) =>
    new Promise<void>((r) => {
      const t = setTimeout(r, ms);
      wake = () => {
        clearTimeout(t);
        r();
      };
    });
  return {
    w,
    root,
    events,
    async until(pred, what, ms = 5000, from = 0) {
      const deadline = Date.now() + ms;
      for (;;) {
        const hit = events.slice(from).find(pred);
        if (hit) return hit;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no ${what} within ${ms} ms; events: ${JSON.stringify(events.slice(-20))}`);
        await waitSome(Math.min(left, 200));
      }
    },
    async none(pred, what, ms = 500, from = 0) {
      await Bun.sleep(ms);
      const hit = events.slice(from).find(pred);
      if (hit) throw new Error(`unexpected ${what}: ${JSON.stringify(hit)}`);
    },
  };
}

const isPath = (rel: string) => (e: WatchEvent) => (e.type === "path" && e.rel === rel) || (e.type === "move" && e.to === rel);
const about = (rel: string) => (e: WatchEvent) =>
  ((e.type === "path" || e.type === "gone") && (e.rel === rel || e.rel.startsWith(`${rel}/`))) ||
  (e.type === "move" && (e.from === rel || e.to === rel));

function sh(argv: string[], input?: string): string {
  const p = Bun.spawnSync(argv, { stdin: input === undefined ? "ignore" : Buffer.from(input), stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`${argv.join(" ")} exited ${p.exitCode}: ${p.stderr.toString()}`);
  return p.stdout.toString();
}

const T0 = 1_700_000_000;
/** A small real RRD whose last update is T0: updates at T0 + 300·k are accepted. */
function rrdCreate(file: string): void {
  sh(["rrdtool", "create", file, "--start", String(T0), "--step", "300", "DS:v:GAUGE:600:U:U", "RRA:AVERAGE:0.5:1:100"]);
}

const keyOf = (abs: string) => versionKey(statFacts(lstatSync(abs, { bigint: true })));

async function sweep(root: string, entries: Array<{ rel: string; key: string }>): Promise<string[]> {
  const out: string[] = [];
  for await (const rel of sweepChanged(root, entries)) out.push(rel);
  return out;
}

run("tree watcher: real writers", () => {
  test("inotify is what createTreeWatcher picks here", async () => {
    const t = await watch(tempDir(), createTreeWatcher);
    expect(t.w.kind).toBe("inotify");
    expect(t.w.watchCount()).toBe(1);
  });

  test("`rrdtool update` of one file (mmap: only IN_CLOSE_WRITE shows it)", async () => {
    const root = tempDir();
    mkdirSync(join(root, "snmp/1"), { recursive: true });
    rrdCreate(join(root, "snmp/1/ifInOctets.rrd"));
    const t = await watch(root);
    sh(["rrdtool", "update", join(root, "snmp/1/ifInOctets.rrd"), `${T0 + 300}:42`]);
    await t.until(isPath("snmp/1/ifInOctets.rrd"), "event for the rrdtool update");
  });

  test("Bun's fs.watch does not see `rrdtool update` (why the fallback is not enough)", async () => {
    const root = tempDir();
    rrdCreate(join(root, "a.rrd"));
    const t = await watch(root, (r, on) => new FsTreeWatcher(r, on));
    sh(["rrdtool", "update", join(root, "a.rrd"), `${T0 + 300}:1`]);
    await t.none(isPath("a.rrd"), "fs.watch event for an rrdtool update (has Bun's fs.watch learnt IN_CLOSE_WRITE? then update docs/watch.md)", 1000);
    writeFileSync(join(root, "a.txt"), "x"); // ...while it does see a write()
    await t.until(isPath("a.txt"), "fs.watch event for write()");
  });

  test("a burst of updates through one `rrdtool -` process: every file is reported", async () => {
    const root = tempDir();
    const files: string[] = [];
    for (let n = 0; n < 20; n++) {
      mkdirSync(join(root, `snmp/${n}`), { recursive: true });
      for (const ds of ["ifHCInOctets", "ifHCOutOctets", "ifInErrors", "ifOutErrors", "ifInDiscards"]) {
        files.push(`snmp/${n}/${ds}.rrd`);
        rrdCreate(join(root, `snmp/${n}/${ds}.rrd`));
      }
    }
    const t = await watch(root);
    const script = [1, 2, 3].flatMap((k) => files.map((f) => `update ${join(root, f)} ${T0 + 300 * k}:${k}`)).join("\n");
    const out = sh(["rrdtool", "-"], `${script}\n`);
    expect(out.match(/^OK/gm)?.length).toBe(files.length * 3);
    for (const f of files) await t.until(isPath(f), `event for ${f}`);
  });

  test("`rrdtool tune` (a structure change)", async () => {
    const root = tempDir();
    rrdCreate(join(root, "t.rrd"));
    const t = await watch(root);
    sh(["rrdtool", "tune", join(root, "t.rrd"), "--heartbeat", "v:900"]);
    await t.until(isPath("t.rrd"), "event for rrdtool tune");
  });

  test("`rrdtool create` in a directory made by `mkdir -p` just before", async () => {
    const root = tempDir();
    const t = await watch(root);
    sh(["mkdir", "-p", join(root, "a/b/c")]);
    rrdCreate(join(root, "a/b/c/new.rrd"));
    await t.until(isPath("a/b/c/new.rrd"), "event for the new RRD");
    expect(t.w.watchCount()).toBe(4);
    sh(["rrdtool", "update", join(root, "a/b/c/new.rrd"), `${T0 + 300}:1`]);
    const from = t.events.length;
    sh(["rrdtool", "update", join(root, "a/b/c/new.rrd"), `${T0 + 600}:2`]);
    await t.until(isPath("a/b/c/new.rrd"), "event for an update in the new directory", 5000, from);
  });

  test("files written into a new directory before its watch existed are reported (mkdir -p + write in one go)", async () => {
    const root = tempDir();
    const t = await watch(root);
    // One synchronous burst: the watcher cannot add the watch for x before all of this is done.
    mkdirSync(join(root, "x/y/z"), { recursive: true });
    writeFileSync(join(root, "x/one.txt"), "1");
    writeFileSync(join(root, "x/y/z/two.txt"), "2");
    await t.until(isPath("x/one.txt"), "x/one.txt");
    await t.until(isPath("x/y/z/two.txt"), "x/y/z/two.txt");
  });

  test("a Python writer that maps the file, writes and closes", async () => {
    const root = tempDir();
    rrdCreate(join(root, "m.rrd"));
    const t = await watch(root);
    sh(["python3", "-c", "import mmap,os,sys\nfd=os.open(sys.argv[1],os.O_RDWR)\nm=mmap.mmap(fd,0)\nm[200:204]=b'abcd'\nm.flush()\nm.close()\nos.close(fd)", join(root, "m.rrd")]);
    await t.until(isPath("m.rrd"), "event for the mmap writer's close");
  });

  test("a Python writer that maps and KEEPS the file open: no event until close, the sweep finds it", async () => {
    const root = tempDir();
    rrdCreate(join(root, "nio.rrd"));
    const before = keyOf(join(root, "nio.rrd"));
    const t = await watch(root);
    await Bun.sleep(20); // the mtime must be able to tick past the create's
    const py = Bun.spawn(["python3", "-u", "-c", "import mmap,os,sys\nfd=os.open(sys.argv[1],os.O_RDWR)\nm=mmap.mmap(fd,0)\nm[200:204]=b'abcd'\nm.flush()\nprint('written')\nsys.stdin.readline()\nm.close()\nos.close(fd)", join(root, "nio.rrd")], { stdin: "pipe", stdout: "pipe" });
    cleanups.push(() => void py.kill());
    const reader = (py.stdout as ReadableStream<Uint8Array>).getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toContain("written");
    await t.none(about("nio.rrd"), "event while the writer keeps the mapping open", 1000);
    expect(readFileSync(join(root, "nio.rrd")).subarray(200, 204).toString()).toBe("abcd");
    expect(await sweep(root, [{ rel: "nio.rrd", key: before }])).toEqual(["nio.rrd"]);
    (py.stdin as import("bun").FileSink).end();
    await py.exited;
    await t.until(isPath("nio.rrd"), "event at the close");
  });

  test("write() in place, as JRobin's file backend does (IN_MODIFY while the file stays open)", async () => {
    const root = tempDir();
    writeFileSync(join(root, "j.jrb"), Buffer.alloc(4096));
    const t = await watch(root);
    const fd = openSync(join(root, "j.jrb"), "r+");
    try {
      writeSync(fd, Buffer.from("JRobin"), 0, 6, 1000);
      await t.until(isPath("j.jrb"), "event for write() before close");
    } finally {
      closeSync(fd);
    }
  });

  test("temp file + rename over the target: one move onto the target", async () => {
    const root = tempDir();
    writeFileSync(join(root, "strings.properties"), "a=1\n");
    const t = await watch(root);
    writeFileSync(join(root, ".strings.tmp"), "a=2\n");
    renameSync(join(root, ".strings.tmp"), join(root, "strings.properties"));
    const m = await t.until((e) => e.type === "move", "move");
    expect(m).toEqual({ type: "move", from: ".strings.tmp", to: "strings.properties", dir: false });
  });

  test("a file rename is one move event, nothing gone", async () => {
    const root = tempDir();
    mkdirSync(join(root, "d1"));
    mkdirSync(join(root, "d2"));
    writeFileSync(join(root, "d1/f.rrd"), "x");
    const t = await watch(root);
    renameSync(join(root, "d1/f.rrd"), join(root, "d2/g.rrd"));
    await t.until((e) => e.type === "move", "move");
    await t.none((e) => e.type === "gone" || e.type === "path", "gone or path for a rename", 300);
    expect(t.events).toEqual([{ type: "move", from: "d1/f.rrd", to: "d2/g.rrd", dir: false }]);
  });

  test("a directory move is one move event; later writes in it carry the new path", async () => {
    const root = tempDir();
    mkdirSync(join(root, "snmp/7/eth0"), { recursive: true });
    rrdCreate(join(root, "snmp/7/eth0/in.rrd"));
    const t = await watch(root);
    expect(t.w.watchCount()).toBe(4);
    renameSync(join(root, "snmp/7"), join(root, "node7"));
    await t.until((e) => e.type === "move", "move");
    expect(t.events).toEqual([{ type: "move", from: "snmp/7", to: "node7", dir: true }]);
    sh(["rrdtool", "update", join(root, "node7/eth0/in.rrd"), `${T0 + 300}:5`]);
    await t.until(isPath("node7/eth0/in.rrd"), "event at the new path");
    expect(t.events.some((e) => e.type === "path" && e.rel.startsWith("snmp/"))).toBe(false);
    expect(t.w.watchCount()).toBe(4);
  });

  test("a directory moved out of the tree is gone (its watches dropped); one moved in is walked", async () => {
    const root = tempDir();
    const outside = tempDir();
    mkdirSync(join(root, "a/b/c"), { recursive: true });
    writeFileSync(join(root, "a/b/c/f.txt"), "1");
    const t = await watch(root);
    expect(t.w.watchCount()).toBe(4);
    renameSync(join(root, "a"), join(outside, "a"));
    const g = await t.until((e) => e.type === "gone", "gone");
    expect(g).toEqual({ type: "gone", rel: "a", dir: true });
    expect(t.w.watchCount()).toBe(1);
    writeFileSync(join(outside, "a/b/c/f.txt"), "2"); // outside now: nothing to report
    await t.none(about("a"), "event from outside the tree", 300, t.events.length);
    const from = t.events.length;
    renameSync(join(outside, "a"), join(root, "back"));
    await t.until(isPath("back/b/c/f.txt"), "the moved-in directory's file", 5000, from);
    expect(t.w.watchCount()).toBe(4);
    writeFileSync(join(root, "back/b/c/g.txt"), "3");
    await t.until(isPath("back/b/c/g.txt"), "a write in the moved-in directory");
  });

  test("deletes: a file and a directory are gone", async () => {
    const root = tempDir();
    mkdirSync(join(root, "d/e"), { recursive: true });
    writeFileSync(join(root, "d/e/f.rrd"), "x");
    const t = await watch(root);
    rmSync(join(root, "d"), { recursive: true });
    await t.until((e) => e.type === "gone" && e.rel === "d", "gone d");
    expect(t.events.filter((e) => e.type === "gone")).toEqual([
      { type: "gone", rel: "d/e/f.rrd", dir: false },
      { type: "gone", rel: "d/e", dir: true },
      { type: "gone", rel: "d", dir: true },
    ]);
    expect(t.w.watchCount()).toBe(1);
  });

  test("the root replaced (mv src src.old && mkdir src): gone, back, new writes seen, nothing reported deleted", async () => {
    const base = tempDir();
    const root = join(base, "src");
    mkdirSync(join(root, "snmp/1"), { recursive: true });
    rrdCreate(join(root, "snmp/1/a.rrd"));
    const t = await watch(root);
    renameSync(root, join(base, "src.old"));
    mkdirSync(join(root, "snmp/2"), { recursive: true });
    await t.until((e) => e.type === "root" && e.state === "gone", "root gone");
    await t.until((e) => e.type === "root" && e.state === "back", "root back", 4000);
    expect(t.events.filter((e) => e.type === "gone" || e.type === "move")).toEqual([]);
    expect(t.w.watchCount()).toBe(3);
    const from = t.events.length;
    sh(["rrdtool", "update", join(base, "src.old/snmp/1/a.rrd"), `${T0 + 300}:1`]); // the old tree: not ours any more
    rrdCreate(join(root, "snmp/2/b.rrd"));
    await t.until(isPath("snmp/2/b.rrd"), "a write in the new root", 5000, from);
    await t.none(isPath("snmp/1/a.rrd"), "event from the old root", 200, from);
  });

  test("the root removed: gone; made again: back", async () => {
    const base = tempDir();
    const root = join(base, "src");
    mkdirSync(root);
    const t = await watch(root);
    rmSync(root, { recursive: true });
    await t.until((e) => e.type === "root" && e.state === "gone", "root gone");
    await Bun.sleep(1200);
    expect(t.events.filter((e) => e.type === "root")).toEqual([{ type: "root", state: "gone" }]); // no flapping
    mkdirSync(root);
    await t.until((e) => e.type === "root" && e.state === "back", "root back", 4000);
    writeFileSync(join(root, "f"), "x");
    await t.until(isPath("f"), "a write after the root came back");
  });

  test("a root that does not exist yet: gone at start, back when made", async () => {
    const root = join(tempDir(), "later");
    const t = await watch(root);
    expect(t.events).toEqual([{ type: "root", state: "gone" }]);
    mkdirSync(root);
    await t.until((e) => e.type === "root" && e.state === "back", "root back", 4000);
    expect(t.w.watchCount()).toBe(1);
  });

  test("symlinks are never followed, inside the tree or as new entries", async () => {
    const root = tempDir();
    const outside = tempDir();
    mkdirSync(join(outside, "d"));
    symlinkSync(join(outside, "d"), join(root, "link"));
    const t = await watch(root);
    expect(t.w.watchCount()).toBe(1);
    symlinkSync(outside, join(root, "link2"));
    writeFileSync(join(outside, "d/f"), "x");
    writeFileSync(join(outside, "g"), "x");
    await t.none((e) => "rel" in e && e.rel !== "link2", "event through a symlink", 500);
    expect(t.w.watchCount()).toBe(1);
  });

  test("a name that is not valid UTF-8 does not stop the watcher (reported in src/names.ts's form: each bad byte as NUL + hex)", async () => {
    const root = tempDir();
    const t = await watch(root);
    sh(["python3", "-c", "import os,sys\nopen(os.path.join(os.fsencode(sys.argv[1]), b'bad\\xff.rrd'),'wb').close()", root]);
    await t.until((e) => e.type === "path" && e.rel === "bad\u0000ff.rrd", "the undecodable name");
    writeFileSync(join(root, "ok.rrd"), "x");
    await t.until(isPath("ok.rrd"), "the next event");
  });

  test("20,000 directories: added without holding the event loop (longest gap < 250 ms)", async () => {
    const root = tempDir(existsSync("/dev/shm") ? "/dev/shm" : tmpdir());
    for (let i = 0; i < 200; i++) for (let j = 0; j < 100; j++) mkdirSync(join(root, String(i), String(j)), { recursive: true });
    const meter = loopGapMeter();
    const t0 = performance.now();
    const t = await watch(root);
    const ms = performance.now() - t0;
    const gap = meter.stop();
    expect(t.w.watchCount()).toBe(20_201);
    expect(gap).toBeLessThan(250);
    console.log(`20,201 watches in ${ms.toFixed(0)} ms, longest event-loop gap ${gap.toFixed(0)} ms`);
  });
});

/** Runs watch-child (from source, or a compiled binary) and reads its JSON lines. */
function child(argv: string[], env: Record<string, string> = {}) {
  const p = Bun.spawn(argv, { stdin: "pipe", stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } });
  cleanups.push(() => void p.kill("SIGKILL"));
  const lines: Array<Record<string, unknown>> = [];
  void (async () => {
    let buf = "";
    for await (const c of p.stdout as ReadableStream<Uint8Array>) {
      buf += new TextDecoder().decode(c);
      let i = buf.indexOf("\n");
      while (i >= 0) {
        lines.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
        buf = buf.slice(i + 1);
        i = buf.indexOf("\n");
      }
    }
  })();
  return {
    p,
    lines,
    async until(pred: (l: Record<string, unknown>) => boolean, what: string, ms = 10_000) {
      const deadline = Date.now() + ms;
      while (Date.now() < deadline) {
        const hit = lines.find(pred);
        if (hit) return hit;
        if (p.exitCode !== null) break;
        await Bun.sleep(20);
      }
      throw new Error(`no ${what}; lines: ${JSON.stringify(lines)}; stderr: ${await new Response(p.stderr as ReadableStream).text()}`);
    },
  };
}

// User namespaces (kernel ≥ 5.11 for per-namespace inotify limits) give a test its own limits and mounts, disturbing nothing else.
const unshareOk = existsSync("/proc/sys/user/max_inotify_watches") && Bun.spawnSync(["unshare", "-U", "-r", "-m", "true"]).exitCode === 0;

run("tree watcher: its own process", () => {
  test("inside a `bun build --compile` binary: sees rrdtool update, and exits by itself after close", async () => {
    const dir = tempDir();
    const bin = join(dir, "watch-child");
    sh([process.execPath, "build", CHILD, "--compile", "--minify", "--bytecode", "--outfile", bin]);
    const root = join(dir, "tree");
    mkdirSync(join(root, "n"), { recursive: true });
    rrdCreate(join(root, "n/x.rrd"));
    const c = child([bin, root]);
    expect(await c.until((l) => l.type === "ready", "ready")).toEqual({ type: "ready", kind: "inotify", watches: 2 });
    sh(["rrdtool", "update", join(root, "n/x.rrd"), `${T0 + 300}:1`]);
    await c.until((l) => l.type === "path" && l.rel === "n/x.rrd", "event for rrdtool update");
    (c.p.stdin as import("bun").FileSink).end();
    const code = await Promise.race([c.p.exited, Bun.sleep(5000).then(() => "still running 5 s after close")]);
    expect(code).toBe(0);
    expect(c.lines.at(-1)).toEqual({ type: "closed" });
  });

  test("a kernel queue overflow (the watcher's process stopped during a flood): overflow, after the directories made meanwhile are watched", async () => {
    const root = tempDir();
    mkdirSync(join(root, "flood"));
    const c = child([process.execPath, CHILD, root]);
    await c.until((l) => l.type === "ready", "ready");
    const max = Number(readFileSync("/proc/sys/fs/inotify/max_queued_events", "utf8"));
    c.p.kill("SIGSTOP"); // every thread stopped: nothing reads the fd, the kernel's queue fills
    try {
      mkdirSync(join(root, "made/during/overflow"), { recursive: true });
      for (let i = 0; i < Math.ceil(max / 2) + 1000; i++) closeSync(openSync(join(root, "flood", String(i)), "w")); // IN_CREATE + IN_CLOSE_WRITE
    } finally {
      c.p.kill("SIGCONT");
    }
    await c.until((l) => l.type === "overflow", "overflow");
    expect(c.lines.some((l) => l.type === "path" && l.rel === "made/during/overflow")).toBe(false);
    writeFileSync(join(root, "made/during/overflow/f"), "x");
    await c.until((l) => l.type === "path" && l.rel === "made/during/overflow/f", "a write in a directory made during the overflow");
  });

  test.skipIf(!unshareOk)("the source file system unmounted and mounted again (a user and mount namespace): gone, not back on the bare mount point, back when mounted", async () => {
    const root = join(tempDir(), "mnt");
    mkdirSync(root);
    // A shell in the namespaces mounts a tmpfs on the root, runs watch-child on it, then obeys lines on its stdin.
    const script = `mount -t tmpfs none "$1" && mkdir "$1/a" || exit 9
tail -f /dev/null | "$2" "$3" "$1" &
while read -r cmd; do
  case $cmd in
    umount) umount -l "$1" ;;
    mount) mount -t tmpfs none "$1" && mkdir "$1/b" ;;
    write) echo x > "$1/b/f" ;;
  esac
done`;
    // Its own pid namespace too (-p -f --kill-child): when the test ends (or fails) and kills unshare, the kernel
    // takes the background watch-child with the namespace's init, instead of leaving it behind on tail -f.
    const c = child(["unshare", "-U", "-r", "-m", "-p", "-f", "--kill-child", "sh", "-c", script, "sh", root, process.execPath, CHILD]);
    const say = (cmd: string) => (c.p.stdin as import("bun").FileSink).write(`${cmd}\n`);
    expect(await c.until((l) => l.type === "ready", "ready")).toMatchObject({ watches: 2 });
    say("umount");
    await c.until((l) => l.type === "root" && l.state === "gone", "root gone");
    await Bun.sleep(1500); // the bare mount point is there all along: it must not count as the source
    expect(c.lines.filter((l) => l.type !== "ready")).toEqual([{ type: "root", state: "gone" }]);
    say("mount");
    await c.until((l) => l.type === "root" && l.state === "back", "root back");
    say("write");
    await c.until((l) => l.type === "path" && l.rel === "b/f", "a write in the new mount");
    expect(c.lines.some((l) => l.type === "gone")).toBe(false);
  });

  test.skipIf(!unshareOk)("ENOSPC (a user namespace with a 5-watch limit): an error with the fix, and the watches it has keep working", async () => {
    const root = tempDir();
    for (let i = 0; i < 11; i++) mkdirSync(join(root, `d${i}`));
    const c = child(["unshare", "-U", "-r", "sh", "-c", 'echo 5 > /proc/sys/user/max_inotify_watches && exec "$@"', "sh", process.execPath, CHILD, root]);
    const err = await c.until((l) => l.type === "error", "error event");
    expect(err.code).toBe("ENOSPC");
    expect(String(err.message)).toContain("5 of 12 directories");
    expect(String(err.message)).toContain("sysctl fs.inotify.max_user_watches=24");
    expect(String(err.message)).toContain("/etc/sysctl.d/");
    expect(await c.until((l) => l.type === "ready", "ready")).toMatchObject({ watches: 5 });
    writeFileSync(join(root, "in-root.rrd"), "x");
    await c.until((l) => l.type === "path" && l.rel === "in-root.rrd", "an event in a watched directory");
  });

  test.skipIf(!unshareOk)("EMFILE (a user namespace allowing no inotify instance): an error with the fix", async () => {
    const root = tempDir();
    const c = child(["unshare", "-U", "-r", "sh", "-c", 'echo 0 > /proc/sys/user/max_inotify_instances && exec "$@"', "sh", process.execPath, CHILD, root]);
    const err = await c.until((l) => l.type === "error", "error event");
    expect(err.code).toBe("EMFILE");
    expect(String(err.message)).toContain("fs.inotify.max_user_instances");
    expect(await c.until((l) => l.type === "ready", "ready")).toMatchObject({ watches: 0 });
    await Bun.sleep(1500);
    expect(c.lines.filter((l) => l.type === "error")).toHaveLength(1); // said once, not every second
  });
});
