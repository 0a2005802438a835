// The engine's orchestration without a server: passes, the queue, health and the audit commit, over a transport
// that copies locally and answers as the test says.
import { afterEach, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, unlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/config/load.ts";
import type { Config } from "../../src/config/types.ts";
import { TargetEngine } from "../../src/engine/target.ts";
import type { BatchReport } from "../../src/engine/types.ts";
import { readFence } from "../../src/store/fence.ts";
import { acquireLock } from "../../src/store/lock.ts";
import { StateStore } from "../../src/store/state.ts";
import { openChangeLog } from "../../src/track/changelog.ts";
import { CopyTransport } from "../helpers/copy-transport.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) {
    chmodSync(d, 0o755);
    rmSync(d, { recursive: true, force: true });
  }
});

class Lines {
  lines: string[] = [];
  debug = (m: string) => this.lines.push(`DEBUG ${m}`);
  info = (m: string) => this.lines.push(`INFO ${m}`);
  warn = (m: string) => this.lines.push(`WARNING ${m}`);
  error = (m: string) => this.lines.push(`ERROR ${m}`);
  count = (re: RegExp) => this.lines.filter((l) => re.test(l)).length;
}

function setup(over: Record<string, unknown> = {}, daemon = false) {
  const dir = mkdtempSync(join(tmpdir(), "rrdsync-engine-"));
  dirs.push(dir);
  const src = join(dir, "src");
  const dest = join(dir, "dest");
  mkdirSync(src);
  writeFileSync(join(dir, "config.json"), JSON.stringify({
    source_dir: src, state_file: join(dir, "state.db"), remote_sync: { remote_dest_dir: dest },
    change_tracking: { backup_dir: join(dir, "backup"), change_log_file: join(dir, "changes.txt") },
    debounce_time: 0.05, rrd_hold: { attempts: 0 }, ...over,
  }));
  const { config } = loadConfig({ configPath: join(dir, "config.json"), env: {}, cwd: dir, home: dir });
  const log = new Lines();
  const transport = new CopyTransport(src, dest);
  const lock = acquireLock(config.stateFile);
  const store = StateStore.open(config.stateFile).store;
  const changeLog = openChangeLog(config, log);
  const batches: BatchReport[] = [];
  const engine = new TargetEngine({ config, lock, store, transport, changeLog }, log, { onBatch: (b) => batches.push(b) }, { daemon });
  const write = (rel: string, text: string) => {
    mkdirSync(join(src, rel, ".."), { recursive: true });
    writeFileSync(join(src, rel), text);
  };
  const replica = (rel: string) => readFileSync(join(dest, rel), "utf8");
  return { dir, src, dest, config: config as Config, log, transport, store, engine, batches, write, replica, changes: () => readFileSync(join(dir, "changes.txt"), "utf8") };
}

describe("full passes", () => {
  test("new files are sent, confirmed, recorded; an unchanged tree makes no transport call", async () => {
    const w = setup();
    w.write("a.txt", "a\n");
    w.write("d/b.txt", "b\n");
    const s1 = await w.engine.runPass();
    expect([s1.sent, s1.changes, s1.pending]).toEqual([2, 2, 0]);
    expect(w.replica("d/b.txt")).toBe("b\n");
    expect(w.store.countFiles()).toBe(2);
    const calls = w.transport.batches.length;
    const s2 = await w.engine.runPass();
    expect([s2.sent, s2.scanned]).toEqual([0, 2]);
    expect(w.transport.batches.length).toBe(calls);
  });

  test("a first sync through a transport that walks the tree: one run, each file written ahead and committed when it exits 0", async () => {
    const w = setup({ slice_max_files: 2 });
    w.transport.walks = true;
    for (let i = 0; i < 5; i++) w.write(`d${i % 2}/f${i}.txt`, `${i}\n`);
    await Bun.sleep(2100); // older than the run's 2 s margin: it vouches for them
    w.write("fresh.txt", "new\n"); // changed around the run's start: sent again in a list batch
    const s = await w.engine.runPass();
    expect([s.sent, s.pending, w.transport.wholeTreeRuns]).toEqual([6, 0, 1]);
    expect(w.transport.batches).toEqual([["fresh.txt"]]);
    expect(w.store.countFiles()).toBe(6);
    expect(w.changes()).toContain("File: d1/f3.txt\nChanges:\nNew file created with 1 lines.");
    expect((await w.engine.runPass()).sent).toBe(0);
  });

  test("a whole-tree run that exits 23: the files its errors name go again; errors that name none leave nothing recorded", async () => {
    const w = setup();
    w.transport.walks = true;
    for (let i = 0; i < 4; i++) w.write(`f${i}.txt`, `${i}\n`);
    await Bun.sleep(2100);
    w.transport.treeEnd = { code: 23, failed: ["f1.txt"], vanished: [], unattributed: [] };
    w.transport.refuse.add("f1.txt"); // and its list batch fails too: it stays pending
    const s = await w.engine.runPass();
    expect([s.sent, s.pending]).toEqual([3, 1]);
    expect(w.store.get("f1.txt")).toBeNull();
    expect(w.store.countFiles()).toBe(3);

    const v = setup();
    v.transport.walks = true;
    for (let i = 0; i < 4; i++) v.write(`f${i}.txt`, `${i}\n`);
    await Bun.sleep(2100);
    v.transport.treeEnd = { code: 23, failed: [], vanished: [], unattributed: ["rsync: something nobody can place"] };
    const t = await v.engine.runPass();
    expect([t.sent, t.pending, t.problems, t.firstSyncUnfinished]).toEqual([0, 4, 1, true]);
    expect(v.store.countFiles()).toBe(0); // all or nothing
    expect(v.log.count(/could not be vouched for/)).toBe(1);
  });

  test("a down standby: nothing advances, the files wait in the queue with the error, status says DOWN; recovery clears it", async () => {
    const w = setup();
    w.write("a.txt", "a\n");
    w.write("b.txt", "b\n");
    w.transport.failWith = "cannot connect to standby:22: Connection refused";
    const s = await w.engine.runPass();
    expect([s.sent, s.pending, s.targetError]).toEqual([0, 2, "cannot connect to standby:22: Connection refused"]);
    expect(w.store.countFiles()).toBe(0);
    expect(w.engine.queue.failed().map((r) => [r.path, r.attempts, r.lastError])).toEqual([
      ["a.txt", 1, "cannot connect to standby:22: Connection refused"], ["b.txt", 1, "cannot connect to standby:22: Connection refused"],
    ]);
    expect(w.store.status()).toMatchObject({ pending: 2, downSince: expect.any(Number), lastError: { message: "cannot connect to standby:22: Connection refused" } });
    expect(w.log.count(/ERROR .*Connection refused; 2 files stay pending/)).toBe(1);
    w.transport.failWith = null;
    const s2 = await w.engine.runPass();
    expect(s2.sent).toBe(2);
    expect(w.engine.queue.size).toBe(0);
    const st = w.store.status();
    expect(st.downSince).toBeUndefined();
    expect(st.pending).toBe(0);
  });

  test("a first sync in slices cut short by the standby: committed slices stay, only the failed slice waits; the daemon's retry resumes the rest", async () => {
    const w = setup({ slice_max_files: 3 }, true);
    for (let d = 0; d < 4; d++) for (let i = 0; i < 3; i++) w.write(`d${d}/f${i}.txt`, `${d}${i}\n`);
    let calls = 0;
    const send = w.transport.sendBatch.bind(w.transport);
    w.transport.sendBatch = async (files, signal, opts) => {
      if (++calls === 3) w.transport.failWith = "cannot connect to standby:22: Connection refused";
      return await send(files, signal, opts);
    };
    const s = await w.engine.runPass();
    expect([s.sent, s.pending]).toEqual([6, 3]); // two slices committed, the third failed, the fourth never started
    expect(w.store.countFiles()).toBe(6);
    expect(w.store.meta<{ after: string }>("first_sync")?.after).toBe("d1");
    expect(w.engine.queue.failed().map((r) => r.path)).toEqual(["d2/f0.txt", "d2/f1.txt", "d2/f2.txt"]);
    w.transport.failWith = null;
    const s2 = await w.engine.sendDue(Date.now() + 10 * 60_000, 0);
    expect(s2?.sent).toBe(6); // the failed slice and the one never started
    expect(w.store.countFiles()).toBe(12);
    expect(w.store.meta("first_sync")).toBeNull();
    expect(w.engine.queue.size).toBe(0);
    expect(w.replica("d3/f2.txt")).toBe("32\n");
  });

  test("a refused file stays pending and named; the others are recorded", async () => {
    const w = setup();
    w.write("ok.txt", "ok\n");
    w.write("no.txt", "no\n");
    w.transport.refuse.add("no.txt");
    const s = await w.engine.runPass();
    expect([s.sent, s.pending]).toEqual([1, 1]);
    expect(w.store.get("no.txt")).toBeNull();
    expect(w.log.count(/WARNING no.txt: not synced, stays pending: refused by the test/)).toBe(1);
  });

  test("a file changed while it was sent is not recorded: the replica's copy is not the version we planned", async () => {
    const w = setup({}, true);
    w.write("a.txt", "v1\n");
    w.transport.during = () => {
      w.transport.during = null;
      w.write("a.txt", "v2 longer\n");
    };
    const s = await w.engine.runPass();
    expect([s.sent, s.changedDuringSend]).toEqual([0, 1]);
    expect(w.store.get("a.txt")).toBeNull();
    // the daemon's queue sends it again after the debounce, and this time it holds
    expect(w.engine.queue.get("a.txt")?.why).toBe("changed");
    await Bun.sleep(60);
    const s2 = await w.engine.sendDue(Date.now(), 0);
    expect(s2?.sent).toBe(1);
    expect(w.replica("a.txt")).toBe("v2 longer\n");
  });

  test("a batch cut short after the replica got a newer version than planned (changed before rsync read it): no false conflict next time", async () => {
    const w = setup();
    w.write("a.txt", "v1\n");
    expect((await w.engine.runPass()).sent).toBe(1);
    await Bun.sleep(5);
    w.write("a.txt", "v2\n"); // planned by the next pass
    w.transport.before = () => {
      w.transport.before = null;
      Bun.sleepSync(5);
      w.write("a.txt", "v3\n"); // what the transport reads and lands on the replica
    };
    w.transport.cutShort = "connection dropped";
    const s = await w.engine.runPass();
    expect([s.sent, s.pending, s.fenced]).toEqual([0, 1, false]);
    expect(w.replica("a.txt")).toBe("v3\n");
    await Bun.sleep(5);
    w.write("a.txt", "v4\n");
    const s2 = await w.engine.runPass();
    expect([s2.sent, s2.fenced]).toEqual([1, false]);
    expect(w.replica("a.txt")).toBe("v4\n");
    // a version written on the standby after the batch failed is still a conflict
    await Bun.sleep(5);
    writeFileSync(join(w.dest, "a.txt"), "the standby's\n");
    w.write("a.txt", "v5\n");
    const s3 = await w.engine.runPass();
    expect(s3.fenced).toBe(true);
    expect(w.replica("a.txt")).toBe("the standby's\n");
  });

  test("a renamed directory becomes moves on the replica, recorded as renames; nothing is re-sent", async () => {
    const w = setup();
    w.write("old/a.txt", "a\n");
    w.write("old/b.txt", "b\n");
    await w.engine.runPass();
    const sent = w.transport.batches.length;
    renameSync(join(w.src, "old"), join(w.src, "new"));
    const s = await w.engine.runPass();
    expect(s.renamed).toBe(2);
    expect(w.transport.batches.length).toBe(sent);
    expect(w.replica("new/a.txt")).toBe("a\n");
    expect(w.store.get("old/a.txt")).toBeNull();
    expect(w.changes()).toContain('Renamed: "old/a.txt" → "new/a.txt"');
  });
});

describe("the daemon's queue", () => {
  test("events become due after the debounce; a burst is one batch", async () => {
    const w = setup({}, true);
    await w.engine.runPass();
    for (let i = 0; i < 20; i++) w.write(`b/${i}.txt`, `${i}\n`);
    const now = Date.now();
    for (let i = 0; i < 20; i++) w.engine.queue.note(`b/${i}.txt`, "changed", now);
    expect(await w.engine.sendDue(now, 0)).toBeNull(); // not quiet long enough
    const s = await w.engine.sendDue(now + 60, 0);
    expect(s?.sent).toBe(20);
    expect(w.transport.batches.at(-1)?.length).toBe(20);
    expect(w.engine.queue.size).toBe(0);
  });

  test("a rename seen by the watcher is one move on the replica (no content sent)", async () => {
    const w = setup({}, true);
    w.write("x.txt", "x\n");
    await w.engine.runPass();
    const sent = w.transport.batches.length;
    renameSync(join(w.src, "x.txt"), join(w.src, "y.txt"));
    w.engine.queue.note("y.txt", "moved", Date.now() - 100, { from: "x.txt" });
    const s = await w.engine.sendDue(Date.now(), 0);
    expect(s?.renamed).toBe(1);
    expect(w.transport.batches.length).toBe(sent);
    expect(w.transport.moves.at(-1)).toEqual([{ from: "x.txt", to: "y.txt" }]);
    expect(w.replica("y.txt")).toBe("x\n");
  });

  test("a rename whose file also changed is sent under the new name, and the old name is deleted", async () => {
    const w = setup({ max_delete: 10 }, true);
    w.write("x.txt", "x\n");
    await w.engine.runPass();
    renameSync(join(w.src, "x.txt"), join(w.src, "y.txt"));
    w.write("y.txt", "x and more\n");
    w.engine.queue.note("y.txt", "moved", Date.now() - 100, { from: "x.txt" });
    await w.engine.sendDue(Date.now(), 0);
    expect(w.replica("y.txt")).toBe("x and more\n");
    expect(w.transport.deletes.at(-1)).toEqual(["x.txt"]);
    expect(w.store.get("x.txt")).toBeNull();
  });

  test("a delete the standby cannot do waits for a retry instead of being forgotten", async () => {
    const w = setup({ delete: true, max_delete: 10 }, true);
    w.write("a.txt", "a\n");
    await w.engine.runPass();
    unlinkSync(join(w.src, "a.txt"));
    w.transport.failWith = "cannot connect";
    w.engine.queue.note("a.txt", "gone", Date.now() - 100);
    await w.engine.sendDue(Date.now(), 0);
    expect(w.store.get("a.txt")).not.toBeNull();
    expect(w.engine.queue.get("a.txt")).toMatchObject({ attempts: 1, lastError: "cannot connect" });
    w.transport.failWith = null;
    await w.engine.sendDue(w.engine.queue.get("a.txt")?.due ?? 0, 0);
    expect(w.store.get("a.txt")).toBeNull();
  });
});

describe("the one audit commit", () => {
  test("an unwritable change log during deletes is an audit gap: the deletes are done and recorded in the state, the pass goes on", async () => {
    const w = setup({ delete: true, max_delete: 10 });
    w.write("a.txt", "a\n");
    w.write("b.txt", "b\n");
    await w.engine.runPass();
    unlinkSync(join(w.src, "a.txt"));
    // the change log's directory becomes a file's place: every write to it fails from now on
    rmSync(join(w.dir, "changes.txt"));
    mkdirSync(join(w.dir, "changes.txt"));
    w.write("b.txt", "b2\n");
    const s = await w.engine.runPass();
    expect(s.deleted).toBe(1);
    expect(s.sent).toBe(1);
    expect(s.problems).toBeGreaterThan(0);
    expect(w.store.get("a.txt")).toBeNull();
    expect(w.log.count(/ERROR the change log cannot be written .*audit gap for 1 deletes: "a.txt"/)).toBe(1);
  });
});

describe("health", () => {
  test("an outage is reported once per process and error, with its cause; a stop is not an outage", async () => {
    const w = setup({}, true);
    w.write("a.txt", "a\n");
    w.transport.failWith = "cannot connect";
    await w.engine.runPass();
    await w.engine.runPass();
    expect(w.log.count(/ERROR .*cannot connect; 1 file stay pending/)).toBe(1);
    expect(w.log.count(/WARNING .* is unreachable: cannot connect; retrying with backoff/)).toBe(1);
    w.transport.failWith = "Permission denied (publickey)";
    await w.engine.runPass();
    expect(w.log.count(/ERROR .*Permission denied/)).toBe(1); // a new error is news again
    w.transport.failWith = null;
    await w.engine.runPass();
    expect(w.log.count(/INFO .* is reachable again/)).toBe(1);

    const stop = new AbortController();
    stop.abort();
    w.write("b.txt", "b\n");
    w.transport.failWith = "interrupted";
    await w.engine.runPass(stop.signal);
    expect(w.store.status().downSince).toBeUndefined();
  });
});

describe("the fence on the standby", () => {
  test("a marker that could not be written is a warning; the fence holds here, and the next run writes it (once)", async () => {
    const w = setup();
    w.write("a.txt", "1\n");
    expect((await w.engine.runPass()).sent).toBe(1);
    writeFileSync(join(w.dest, "a.txt"), "written on the standby\n");
    utimesSync(join(w.dest, "a.txt"), new Date(), new Date(Date.now() + 5000));
    w.write("a.txt", "2\n");
    w.transport.markerFails = "the standby refused it";
    expect((await w.engine.runPass()).fenced).toBe(true);
    expect(w.log.count(/WARNING .*the fence could not be recorded on the standby \(the standby refused it\)/)).toBe(1);
    expect(existsSync(join(w.dest, ".rrdsync-fenced"))).toBe(false);
    expect(readFence(w.store)).toMatchObject({ kind: "conflict", files: 1, onStandby: false });
    // the next run (another process) writes it, without sending anything
    w.transport.markerFails = null;
    const next = new TargetEngine({ config: w.config, lock: acquireLockAgain(), store: w.store, transport: w.transport, changeLog: openChangeLog(w.config, w.log) }, w.log, {}, { daemon: false });
    const batches = w.transport.batches.length;
    expect((await next.runPass()).fenced).toBe(true);
    expect(JSON.parse(readFileSync(join(w.dest, ".rrdsync-fenced"), "utf8"))).toMatchObject({ files: 1, conflicts: [{ path: "a.txt" }] });
    expect(readFence(w.store)).toMatchObject({ onStandby: true });
    expect(w.replica("a.txt")).toBe("written on the standby\n");
    expect(w.transport.batches.length).toBe(batches);
    const writes = w.transport.markerWrites;
    const third = new TargetEngine({ config: w.config, lock: acquireLockAgain(), store: w.store, transport: w.transport, changeLog: openChangeLog(w.config, w.log) }, w.log, {}, { daemon: false });
    expect((await third.runPass()).fenced).toBe(true);
    expect(w.transport.markerWrites).toBe(writes); // recorded there: no connection for it again
  });
});

/** The engine under test already holds the state's lock; a second engine in the same process shares it. */
function acquireLockAgain(): ReturnType<typeof acquireLock> {
  return { release: () => undefined } as unknown as ReturnType<typeof acquireLock>;
}

