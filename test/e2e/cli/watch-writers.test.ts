// End to end (issue #13): the daemon and each way real RRD writers write, to a real sshd (both transports): rrdtool
// tune and create, a writer through mmap that closes and one that keeps the file open (found by the stat sweep),
// write() in place, temp + rename, renames and directory moves (moves on the replica, no data sent), and the
// source directory replaced. Each ends with the replica's bytes equal to the source's.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, cpSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Daemon, eventually } from "../../helpers/daemon.ts";
import { e2eSuite } from "../../helpers/suite.ts";
import { rrdsyncCommand, type World } from "../../helpers/world.ts";

setDefaultTimeout(90_000);

const suite = e2eSuite("watch-writers");
const T0 = 1_700_000_000;

function rrdtool(args: string[]): void {
  const p = Bun.spawnSync(["rrdtool", ...args], { stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`rrdtool ${args[0]} exited ${p.exitCode}: ${p.stderr.toString()}`);
}
const create = (path: string) => rrdtool(["create", path, "--start", String(T0), "--step", "300", "DS:v:GAUGE:600:U:U", "RRA:AVERAGE:0.5:1:100"]);

const same = (w: World, rel: string) => () => {
  try {
    return readFileSync(join(w.dest, rel)).equals(readFileSync(join(w.src, rel)));
  } catch {
    return false;
  }
};

/** A world with a few real RRDs and a daemon that has done its initial pass. */
async function watched(over: Record<string, unknown> = {}): Promise<{ w: World; d: Daemon; rrds: string[] }> {
  const w = suite.world();
  const rrds = ["snmp/1/a.rrd", "snmp/1/b.rrd", "snmp/2/c.rrd"];
  for (const r of rrds) {
    mkdirSync(join(w.src, r, ".."), { recursive: true });
    create(join(w.src, r));
  }
  const d = suite.daemon(["--config", w.writeConfig({ debounce_time: 1, rescan_interval: 0, poll_interval: 0, monitored_extensions: [".rrd", ".jrb", ".txt", ".properties", ".meta"], ...over })]);
  await d.waitFor((e) => e.event === "pass", 30_000, "the initial pass");
  for (const r of rrds) expect(same(w, r)()).toBe(true);
  return { w, d, rrds };
}

/** The bytes a real `rrdtool update` makes of `path` (on a scratch copy): what an mmap writer will put in place. */
function updatedBytes(w: World, path: string, at: number): Buffer {
  const scratch = join(w.dir, `scratch-${at}.rrd`);
  copyFileSync(path, scratch);
  rrdtool(["update", scratch, `${at}:42`]);
  return readFileSync(scratch);
}

function python(script: string, args: string[]): ReturnType<typeof Bun.spawn> {
  return Bun.spawn(["python3", "-c", script, ...args], { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
}
/** Runs a python writer to its end; its stderr is the message when it fails. */
async function pythonDone(script: string, args: string[]): Promise<void> {
  const p = python(script, args);
  const [err, code] = await Promise.all([new Response(p.stderr as ReadableStream<Uint8Array>).text(), p.exited]);
  if (code !== 0) throw new Error(`python writer exited ${code}: ${err}`);
}
// Writes new bytes into the file through a shared mapping (as librrd, jrrd2 and JRobin's NIO backend do), then
// either closes it or keeps it mapped and open until killed.
const MMAP_WRITER = `
import mmap, os, sys, time
path, src, keep = sys.argv[1], sys.argv[2], sys.argv[3] == "keep"
data = open(src, "rb").read()
f = open(path, "r+b")
m = mmap.mmap(f.fileno(), 0)
m[0:len(data)] = data
m.flush()
if keep:
    os.write(1, b"written\\n")  # one write: print() unbuffered is two, and the reader stops after the first
    time.sleep(600)
m.close()
f.close()
`;

describe("rrdsync --watch and the real writers", () => {
  test("rrdtool tune (structure change) and rrdtool create of a new file in a new directory", async () => {
    const { w } = await watched();
    rrdtool(["tune", join(w.src, "snmp/1/a.rrd"), "DS:w:GAUGE:600:U:U"]);
    mkdirSync(join(w.src, "snmp/3/new/deeper"), { recursive: true });
    create(join(w.src, "snmp/3/new/deeper/d.rrd"));
    await eventually(same(w, "snmp/1/a.rrd"), 10_000, "the tuned RRD");
    await eventually(same(w, "snmp/3/new/deeper/d.rrd"), 10_000, "the new RRD in a new directory");
    await eventually(() => w.changes().includes("STRUCTURE CHANGED"), 5_000, "the structure change in the change log");
  });

  test("a writer through mmap that closes, write() in place (JRobin's file backend), and temp + rename", async () => {
    const { w } = await watched();
    const a = join(w.src, "snmp/1/a.rrd");
    const viaMmap = join(w.dir, "mmap-bytes.rrd");
    writeFileSync(viaMmap, updatedBytes(w, a, T0 + 300));
    await pythonDone(MMAP_WRITER, [a, viaMmap, "close"]);
    await eventually(same(w, "snmp/1/a.rrd"), 10_000, "the mmap write");

    const b = join(w.src, "snmp/1/b.rrd");
    const bytes = updatedBytes(w, b, T0 + 300);
    await pythonDone("import sys\nf = open(sys.argv[1], 'r+b')\nf.write(open(sys.argv[2], 'rb').read())\nf.close()", [b, join(w.dir, `scratch-${T0 + 300}.rrd`)]);
    expect(readFileSync(b).equals(bytes)).toBe(true);
    await eventually(same(w, "snmp/1/b.rrd"), 10_000, "the write() in place");

    const c = join(w.src, "snmp/2/c.rrd");
    writeFileSync(join(w.src, "snmp/2/.c.rrd.tmp"), updatedBytes(w, c, T0 + 600));
    renameSync(join(w.src, "snmp/2/.c.rrd.tmp"), c);
    await eventually(same(w, "snmp/2/c.rrd"), 10_000, "temp + rename");
  });

  test("a writer that keeps the file mapped and open raises no event: the stat sweep ships it within poll_interval", async () => {
    const { w, d } = await watched({ poll_interval: 2 });
    const a = join(w.src, "snmp/1/a.rrd");
    const bytes = join(w.dir, "keep-bytes.rrd");
    writeFileSync(bytes, updatedBytes(w, a, T0 + 300));
    const p = python(MMAP_WRITER, [a, bytes, "keep"]);
    try {
      // the writer has written and still holds the file open
      for await (const chunk of p.stdout as ReadableStream<Uint8Array>) if (new TextDecoder().decode(chunk).includes("written")) break;
      const t0 = Date.now();
      await eventually(same(w, "snmp/1/a.rrd"), 10_000, "the sweep finding the open file's change");
      expect(Date.now() - t0).toBeLessThan(2_000 + 1_000 + 3_000); // poll_interval + debounce + the transfer
      // still open: no close event helped (a writer that died says why)
      if (p.exitCode !== null) throw new Error(`the writer exited ${p.exitCode}: ${await new Response(p.stderr as ReadableStream<Uint8Array>).text()}`);
    } finally {
      p.kill("SIGKILL");
    }
    expect(d.stderr()).not.toMatch(/sweep failed/);
  });

  test("a rename and a directory move are moves on the replica: the replica's files keep their inodes, no batch is sent", async () => {
    const { w, d } = await watched();
    const inode = (rel: string) => statSync(join(w.dest, rel)).ino;
    const before = { a: inode("snmp/1/a.rrd"), c: inode("snmp/2/c.rrd") };
    const batches = () => d.events.filter((e) => e.event === "batch").length;
    const sent = batches();
    renameSync(join(w.src, "snmp/1/a.rrd"), join(w.src, "snmp/1/a2.rrd"));
    renameSync(join(w.src, "snmp/2"), join(w.src, "snmp/moved"));
    await eventually(same(w, "snmp/1/a2.rrd"), 10_000, "the renamed file");
    await eventually(same(w, "snmp/moved/c.rrd"), 10_000, "the moved directory");
    expect(inode("snmp/1/a2.rrd")).toBe(before.a);
    expect(inode("snmp/moved/c.rrd")).toBe(before.c);
    expect(batches()).toBe(sent);
    await eventually(() => w.changes().includes('Renamed: "snmp/2/c.rrd" → "snmp/moved/c.rrd"'), 5_000, "the directory move recorded");
    expect(w.changes()).toContain('Renamed: "snmp/1/a.rrd" → "snmp/1/a2.rrd"');
  });

  test("the source directory replaced: status says it is missing, nothing is deleted on the replica, the new one is synced", async () => {
    const { w, rrds } = await watched({ delete: true, max_delete: "100%" });
    renameSync(w.src, `${w.src}.old`);
    const cfg = join(w.dir, "config.json");
    const status = () => new TextDecoder().decode(Bun.spawnSync([...rrdsyncCommand(), "status", "--config", cfg], { env: { ...process.env, NO_COLOR: "1" } }).stdout);
    await eventually(() => status().includes("MISSING since"), 10_000, "status: source missing");
    await Bun.sleep(1500);
    for (const r of rrds) expect(readFileSync(join(w.dest, r)).length).toBeGreaterThan(0); // nothing deleted
    mkdirSync(w.src);
    cpSync(`${w.src}.old`, w.src, { recursive: true });
    mkdirSync(join(w.src, "snmp/9"), { recursive: true });
    create(join(w.src, "snmp/9/new.rrd"));
    await eventually(same(w, "snmp/9/new.rrd"), 15_000, "a file of the new source directory");
    for (const r of rrds) expect(same(w, r)()).toBe(true);
    expect(status()).not.toContain("MISSING");
  });
});
