// End to end (issue 23): a replica file changed behind rrdsync is never overwritten, deleted or renamed over; the
// first one fences the target (exit 4) until `rrdsync unfence`. Real sshd, real rsync or SFTP, real `rrdtool
// update`s on each side: the primary's tree and the standby's copy (the destination directory).
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { eventually } from "../../helpers/daemon.ts";
import { type SshdFixture, startSshd } from "../../helpers/sshd.ts";
import { e2eSuite } from "../../helpers/suite.ts";
import { fakeBinary, readTree, rrdsyncCommand, runRrdsync, TRANSPORT, type World, writeTree } from "../../helpers/world.ts";

setDefaultTimeout(120_000);
const suite = e2eSuite("fence");

const T0 = 1_699_999_800; // a multiple of the step: rrdtool fetch returns the values as written

function rrdtool(...args: string[]): string {
  const r = Bun.spawnSync(["rrdtool", ...args]);
  if (r.exitCode !== 0) throw new Error(`rrdtool ${args.join(" ")}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

function createRrd(path: string): void {
  rrdtool("create", path, "--start", String(T0), "--step", "300", "DS:x:GAUGE:600:U:U", "RRA:AVERAGE:0.5:1:100");
}

/** `rrdtool update` of (time offset in steps, value) pairs: the real writer, through mmap. */
function update(path: string, ...rows: Array<[number, number]>): void {
  rrdtool("update", path, ...rows.map(([step, v]) => `${T0 + step * 300}:${v}`));
}

/** The last update rrdtool reads from the file: the ground truth of what a copy holds. */
function lastUpdate(path: string): number {
  const lines = rrdtool("lastupdate", path).trim().split("\n");
  return Number((lines.at(-1) as string).split(":")[0]);
}

/** The values rrdtool fetches from the file, by step (NaN rows left out). */
function rows(path: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const line of rrdtool("fetch", path, "AVERAGE", "--start", String(T0), "--end", String(T0 + 3000)).split("\n")) {
    const m = /^(\d+): (\S+)/.exec(line);
    if (m && !Number.isNaN(Number(m[2]))) out.set((Number(m[1]) - T0) / 300, Number(m[2]));
  }
  return out;
}

/** SFTP carries whole seconds (and a first sync's `rsync --update` compares them): the standby's write must come in a later second than the version delivered. */
const nextSecond = () => Bun.sleep(1100);

async function once(cfg: string) {
  return await runRrdsync(["--once", "--config", cfg]);
}

function setupRrd(w: World, rel = "a.rrd") {
  createRrd(join(w.src, rel));
  update(join(w.src, rel), [1, 1], [2, 2]);
}

describe("a replica file changed behind rrdsync", () => {
  test("the issue's sequence: the standby's newer rows are kept, exit 4, the file named; the fence stays until unfence", async () => {
    const w = suite.world();
    setupRrd(w);
    writeFileSync(join(w.src, "other.txt"), "o1\n");
    const cfg = w.writeConfig();
    expect((await once(cfg)).code).toBe(0);
    expect(lastUpdate(join(w.dest, "a.rrd"))).toBe(T0 + 600);
    await nextSecond();
    update(join(w.dest, "a.rrd"), [3, 30], [4, 40]); // the promoted standby writes newer rows
    const standby = readFileSync(join(w.dest, "a.rrd"));
    update(join(w.src, "a.rrd"), [3, 3]); // the primary is back
    writeFileSync(join(w.src, "other.txt"), "o2\n");
    const r = await once(cfg);
    expect(r.code).toBe(4);
    expect(readFileSync(join(w.dest, "a.rrd")).equals(standby)).toBe(true);
    expect(lastUpdate(join(w.dest, "a.rrd"))).toBe(T0 + 1200);
    expect(rows(join(w.dest, "a.rrd")).get(4)).toBe(40);
    expect(r.stderr).toContain('conflict: "a.rrd" changed on the standby since rrdsync delivered it: not overwritten');
    expect(r.stderr).toMatch(/standby: [\d,]+ bytes, mtime \S+, last update 2023-11-14T22:30:00Z; here: [\d,]+ bytes, mtime \S+, last update 2023-11-14T22:25:00Z/);
    expect(r.stderr).toContain("FENCED: 1 file changed on the standby, first: \"a.rrd\"");
    // nothing of the batch was written: the standby may be live
    expect(readFileSync(join(w.dest, "other.txt"), "utf8")).toBe("o1\n");
    expect(w.changes()).toContain("File: a.rrd\nChanges:\nCONFLICT: changed on the standby since rrdsync delivered it; not overwritten, and the target is fenced.\nStandby: ");
    // the next run retries nothing there and says so again (a cron mail each time)
    const again = await once(cfg);
    expect(again.code).toBe(4);
    expect(again.stderr).toContain("FENCED");
    expect(readFileSync(join(w.dest, "a.rrd")).equals(standby)).toBe(true);
    const st = await runRrdsync(["status", "--config", cfg]);
    expect(st.code).toBe(4);
    expect(st.stdout).toMatch(/FENCED since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(1 file changed on the standby, first: "a\.rrd"\)/);
    const log = await runRrdsync(["log", "--kind", "conflict", "--json", "--config", cfg]);
    expect(JSON.parse(log.stdout.trim()).path).toBe("a.rrd");
    const check = await runRrdsync(["check", "--config", cfg]);
    expect(check.code).toBe(1);
    expect(check.stdout).toMatch(/✗ fence: FENCED since .* \(1 file changed on the standby, first: "a\.rrd"\)/);
    expect(check.stdout).toContain("fix: rrdsync unfence shows what the standby changed");
  });

  test("delete: true: a file deleted here whose standby copy changed is not deleted there (kept, exit 4)", async () => {
    const w = suite.world();
    setupRrd(w, "b.rrd");
    writeFileSync(join(w.src, "keep.txt"), "k\n");
    const cfg = w.writeConfig({ delete: true, max_delete: "100%" });
    expect((await once(cfg)).code).toBe(0);
    await nextSecond();
    update(join(w.dest, "b.rrd"), [3, 30]);
    const standby = readFileSync(join(w.dest, "b.rrd"));
    rmSync(join(w.src, "b.rrd"));
    const r = await once(cfg);
    expect(r.code).toBe(4);
    expect(readFileSync(join(w.dest, "b.rrd")).equals(standby)).toBe(true);
    expect(r.stderr).toContain('conflict: "b.rrd" changed on the standby since rrdsync delivered it: not deleted');
    expect(w.changes()).not.toContain("File deleted");
  });

  test("a rename onto a name the standby wrote: nothing moved or written over it (kept, exit 4)", async () => {
    const w = suite.world();
    setupRrd(w, "a.rrd");
    setupRrd(w, "b.rrd");
    const cfg = w.writeConfig({ max_delete: "100%" });
    expect((await once(cfg)).code).toBe(0);
    await nextSecond();
    update(join(w.dest, "b.rrd"), [3, 30]); // changed there
    createRrd(join(w.dest, "c.rrd")); // created there
    const before = readTree(w.dest);
    renameSync(join(w.src, "a.rrd"), join(w.src, "c.rrd")); // a move on the replica, onto the standby's file
    const r = await once(cfg);
    expect(r.code).toBe(4);
    const after = readTree(w.dest);
    expect(JSON.parse(after.get(".rrdsync-fenced") ?? "{}").files).toBe(1); // the fence, recorded on the standby too
    after.delete(".rrdsync-fenced");
    expect(after).toEqual(before);
    expect(r.stderr).toContain('conflict: "c.rrd" newer on the standby than ours, and never delivered by rrdsync: not renamed over');
    // the fence holds: the next rename (onto the changed name) moves nothing either
    before.set(".rrdsync-fenced", readTree(w.dest).get(".rrdsync-fenced") as string);
    renameSync(join(w.src, "c.rrd"), join(w.src, "b.rrd"));
    expect((await once(cfg)).code).toBe(4);
    expect(readTree(w.dest)).toEqual(before);
  });

  test("a file created on the standby, then by the primary under the same name: kept there, a conflict (exit 4)", async () => {
    const w = suite.world();
    setupRrd(w, "a.rrd");
    const cfg = w.writeConfig();
    expect((await once(cfg)).code).toBe(0);
    await nextSecond();
    createRrd(join(w.dest, "new.rrd")); // the standby's OpenNMS found a new node
    update(join(w.dest, "new.rrd"), [1, 7]);
    const standby = readFileSync(join(w.dest, "new.rrd"));
    await nextSecond();
    createRrd(join(w.src, "new.rrd"));
    update(join(w.src, "new.rrd"), [1, 1], [2, 2]);
    const r = await once(cfg);
    expect(r.code).toBe(4);
    expect(readFileSync(join(w.dest, "new.rrd")).equals(standby)).toBe(true);
    expect(r.stderr).toContain('conflict: "new.rrd" created on the standby, where rrdsync never delivered it: not overwritten');
  });

  test("a standby pre-seeded with an older copy of the tree (the migration from rrd_sync_new.py) is no conflict; a newer copy there is", async () => {
    const w = suite.world();
    setupRrd(w, "old.rrd");
    setupRrd(w, "newer.rrd");
    writeTree(w.dest, { "old.rrd": readFileSync(join(w.src, "old.rrd")), "newer.rrd": readFileSync(join(w.src, "newer.rrd")) });
    await nextSecond();
    update(join(w.src, "old.rrd"), [3, 3]); // the copy there is older than ours: replaced
    update(join(w.dest, "newer.rrd"), [3, 30]); // newer there than ours: never overwritten
    const standby = readFileSync(join(w.dest, "newer.rrd"));
    const r = await once(w.writeConfig());
    expect(r.code).toBe(4);
    expect(readFileSync(join(w.dest, "old.rrd")).equals(readFileSync(join(w.src, "old.rrd")))).toBe(true);
    expect(readFileSync(join(w.dest, "newer.rrd")).equals(standby)).toBe(true);
    expect(r.stderr).toContain('conflict: "newer.rrd" newer on the standby than ours, and never delivered by rrdsync: not overwritten');
  });
});

describe("a local destination (remote_host \"\")", () => {
  test.if(TRANSPORT === "rsync")("the same check by lstat: the standby's rows kept, exit 4; unfence --overwrite keeps its copy beside", async () => {
    const w = suite.world();
    setupRrd(w);
    const cfg = w.writeConfig({ remote_sync: { remote_dest_dir: w.dest } });
    expect((await once(cfg)).code).toBe(0);
    await nextSecond();
    update(join(w.dest, "a.rrd"), [3, 30]);
    const standby = readFileSync(join(w.dest, "a.rrd"));
    update(join(w.src, "a.rrd"), [3, 3]);
    const r = await once(cfg);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('conflict: "a.rrd" changed on the standby since rrdsync delivered it: not overwritten');
    expect(readFileSync(join(w.dest, "a.rrd")).equals(standby)).toBe(true);
    expect((await runRrdsync(["unfence", "--overwrite", "--config", cfg])).code).toBe(0);
    const [stamp] = readdirSync(join(w.dest, ".rrdsync-kept"));
    expect(readFileSync(join(w.dest, ".rrdsync-kept", stamp as string, "a.rrd")).equals(standby)).toBe(true);
    expect(readFileSync(join(w.dest, "a.rrd")).equals(readFileSync(join(w.src, "a.rrd")))).toBe(true);
  });
});

describe("unfence", () => {
  async function fenced(w: World): Promise<{ cfg: string; standby: Buffer }> {
    setupRrd(w);
    writeFileSync(join(w.src, "t.txt"), "1\n");
    const cfg = w.writeConfig();
    expect((await once(cfg)).code).toBe(0);
    await nextSecond();
    update(join(w.dest, "a.rrd"), [3, 30], [4, 40]);
    const standby = readFileSync(join(w.dest, "a.rrd"));
    await nextSecond();
    update(join(w.src, "a.rrd"), [3, 3]);
    writeFileSync(join(w.src, "t.txt"), "2\n");
    expect((await once(cfg)).code).toBe(4);
    return { cfg, standby };
  }

  test("without a choice it explains (exit 4); --overwrite keeps the standby's copy on the standby, sends ours, lifts the fence", async () => {
    const w = suite.world();
    const { cfg, standby } = await fenced(w);
    const explain = await runRrdsync(["unfence", "--config", cfg]);
    expect(explain.code).toBe(4);
    expect(explain.stdout).toContain('"a.rrd": changed on the standby since rrdsync delivered it');
    expect(explain.stdout).toContain("rrdsync unfence --overwrite");
    expect(explain.stdout).toContain("rrdsync failback");
    const r = await runRrdsync(["unfence", "--overwrite", "--config", cfg]);
    expect({ code: r.code, out: r.stdout }).toMatchObject({ code: 0 });
    expect(r.stdout).toContain("unfenced");
    const kept = readdirSync(join(w.dest, ".rrdsync-kept"));
    expect(kept).toHaveLength(1);
    expect(r.stdout).toContain(`${w.dest}/.rrdsync-kept/${kept[0]}/`);
    expect(readFileSync(join(w.dest, ".rrdsync-kept", kept[0] as string, "a.rrd")).equals(standby)).toBe(true);
    expect(lastUpdate(join(w.dest, ".rrdsync-kept", kept[0] as string, "a.rrd"))).toBe(T0 + 1200);
    expect(readFileSync(join(w.dest, "a.rrd")).equals(readFileSync(join(w.src, "a.rrd")))).toBe(true);
    expect(readFileSync(join(w.dest, "t.txt"), "utf8")).toBe("2\n");
    expect(w.changes()).toContain("Overwritten by unfence --overwrite: the standby's copy");
    // replication goes on; the kept copies are never replicated, verified as extras, or deleted
    update(join(w.src, "a.rrd"), [5, 5]);
    expect((await once(cfg)).code).toBe(0);
    expect((await runRrdsync(["status", "--config", cfg])).code).toBe(0);
    const v = await runRrdsync(["verify", "--config", cfg]);
    expect({ code: v.code, out: v.stdout }).toEqual({ code: 0, out: "" });
  });

  test("--overwrite where the standby's copy cannot be kept aside (a symlink planted at .rrdsync-kept): nothing written, the fence stays", async () => {
    const w = suite.world();
    const { cfg, standby } = await fenced(w);
    const elsewhere = join(w.dir, "elsewhere");
    mkdirSync(elsewhere);
    symlinkSync(elsewhere, join(w.dest, ".rrdsync-kept"));
    const r = await runRrdsync(["unfence", "--overwrite", "--config", cfg]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("still fenced: 1 of the files the standby changed could not be settled");
    expect(readFileSync(join(w.dest, "a.rrd")).equals(standby)).toBe(true);
    expect(readdirSync(elsewhere)).toEqual([]);
    expect((await runRrdsync(["status", "--config", cfg])).code).toBe(4);
    expect((await once(cfg)).code).toBe(4);
  });

  test("a daemon started on a fenced target: ready, says so once, sends nothing there, keeps running", async () => {
    const w = suite.world();
    const { cfg, standby } = await fenced(w);
    const before = readTree(w.dest);
    const logins = suite.sshd().logins();
    const d = suite.daemon(["--config", w.writeConfig({ debounce_time: 0.2, rescan_interval: 0 })]);
    await d.waitFor((e) => e.event === "pass", 30_000, "the initial pass");
    writeFileSync(join(w.src, "t.txt"), "3\n");
    update(join(w.src, "a.rrd"), [4, 4]);
    await Bun.sleep(2000);
    expect(readTree(w.dest)).toEqual(before);
    expect(readFileSync(join(w.dest, "a.rrd")).equals(standby)).toBe(true);
    expect(d.stderr().match(/FENCED/g)).toHaveLength(1);
    expect(d.proc.exitCode).toBeNull();
    expect(await d.stop()).toBe(0);
    await Bun.sleep(100);
    expect(suite.sshd().logins()).toBe(logins); // nothing retried there: not even a login
    void cfg;
  });

  test("--keep-replica: the standby's version stays and is no longer pending; the primary's next change is replicated", async () => {
    const w = suite.world();
    const { cfg, standby } = await fenced(w);
    const r = await runRrdsync(["unfence", "--keep-replica", "--config", cfg]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("1 file the standby changed: its versions are kept");
    expect(readFileSync(join(w.dest, "a.rrd")).equals(standby)).toBe(true);
    expect(readFileSync(join(w.dest, "t.txt"), "utf8")).toBe("2\n");
    const again = await once(cfg);
    expect(again.code).toBe(0);
    expect(again.stderr).toBe("");
    expect(readFileSync(join(w.dest, "a.rrd")).equals(standby)).toBe(true);
    expect((await runRrdsync(["status", "--config", cfg])).code).toBe(0);
    await nextSecond();
    update(join(w.src, "a.rrd"), [5, 5]);
    expect((await once(cfg)).code).toBe(0);
    expect(lastUpdate(join(w.dest, "a.rrd"))).toBe(T0 + 1500);
  });
});

describe("promote", () => {
  test("promote DIR, then the old primary refuses the target before comparing anything: no byte of the standby changes", async () => {
    const w = suite.world();
    setupRrd(w);
    writeFileSync(join(w.src, "t.txt"), "1\n");
    const cfg = w.writeConfig({ delete: true, max_delete: "100%" });
    expect((await once(cfg)).code).toBe(0);
    const p = await runRrdsync(["promote", w.dest]);
    expect(p.code).toBe(0);
    expect(p.stdout).toContain(`${w.dest} is promoted`);
    expect(p.stdout).toContain("start OpenNMS on this host");
    expect(p.stdout).toContain("stop rrdsync");
    const marker = JSON.parse(readFileSync(join(w.dest, ".rrdsync-promoted"), "utf8"));
    expect(marker.replica.files).toBe(2);
    await nextSecond();
    update(join(w.dest, "a.rrd"), [3, 30]); // OpenNMS writes on the promoted standby
    const before = readTree(w.dest);
    // the old primary comes back: changes, a delete, a new file
    update(join(w.src, "a.rrd"), [3, 3]);
    rmSync(join(w.src, "t.txt"));
    writeFileSync(join(w.src, "n.txt"), "new\n");
    const r = await once(cfg);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(new RegExp(`the standby \\S+ was promoted at ${marker.promotedAt.replace(/[.]/g, "\\.")}`));
    expect(r.stderr).toContain("rrdsync failback");
    expect(r.stderr).toContain("point this rrdsync at the new standby");
    expect(r.stderr).not.toContain("conflict:"); // refused before any file was compared
    expect(readTree(w.dest)).toEqual(before);
    const st = await runRrdsync(["status", "--config", cfg]);
    expect(st.code).toBe(4);
    expect(st.stdout).toContain("was promoted at");
    const check = await runRrdsync(["check", "--config", cfg]);
    expect(check.code).toBe(1);
    expect(check.stdout).toMatch(/✗ promoted: the standby \S+ was promoted at /);
    // a first sync (a new state) is refused the same way, before its whole-tree run
    const fresh = await runRrdsync(["--once", "--config", cfg, "--state", join(w.dir, "state", "fresh.db")]);
    expect(fresh.code).toBe(4);
    expect(readTree(w.dest)).toEqual(before);
    // unfence cannot undo a promotion
    const u = await runRrdsync(["unfence", "--overwrite", "--config", cfg]);
    expect(u.code).toBe(4);
    expect(u.stdout).toContain("still marked as promoted");
    expect(readTree(w.dest)).toEqual(before);
    // promote again: idempotent
    const again = await runRrdsync(["promote", w.dest]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain("already promoted");
  });
});

describe("--watch", () => {
  let second: SshdFixture;
  beforeAll(async () => {
    second = await startSshd();
  });
  afterAll(async () => {
    await second.cleanup();
  });

  test("a conflict mid-run fences that target (said once, changes kept pending, nothing retried); the other target goes on", async () => {
    const w = suite.world();
    setupRrd(w);
    const port = await freePort();
    const a = suite.sshd();
    const destB = join(w.dir, "dest-b");
    const cfg = w.writeConfig({
      remote_sync: { remote_user: a.user, remote_host: a.host, port: a.port, remote_dest_dir: w.dest, ssh_key_path: a.clientKey, known_hosts_file: a.knownHosts, transport: TRANSPORT },
      targets: [{ name: "b", remote_user: second.user, remote_host: second.host, port: second.port, remote_dest_dir: destB, ssh_key_path: second.clientKey, known_hosts_file: second.knownHosts, transport: TRANSPORT }],
      debounce_time: 0.3, rescan_interval: 0, retry: { initial: 0.5, max: 1 }, metrics_listen: `127.0.0.1:${port}`,
    });
    const d = suite.daemon(["--config", cfg]);
    // both first syncs over (a file the standby holds from before the first sync's end is not its own writing)
    await d.waitFor((e) => e.event === "pass" && String(e.target).includes("dest-b"), 30_000, "the second target's initial pass");
    await d.waitFor((e) => e.event === "pass" && !String(e.target).includes("dest-b"), 30_000, "the first target's initial pass");
    await eventually(() => existsSync(join(destB, "a.rrd")) && existsSync(join(w.dest, "a.rrd")), 10_000, "both replicas");
    await nextSecond();
    update(join(w.dest, "a.rrd"), [3, 30]); // the first standby is written to
    const standby = readFileSync(join(w.dest, "a.rrd"));
    await nextSecond();
    update(join(w.src, "a.rrd"), [3, 3]);
    await eventually(() => d.stderr().includes("FENCED"), 15_000, "the fence");
    await eventually(() => lastUpdate(join(destB, "a.rrd")) === T0 + 900, 10_000, "the other target current");
    writeFileSync(join(w.src, "later.txt"), "l\n");
    update(join(w.src, "a.rrd"), [4, 4]);
    await eventually(() => existsSync(join(destB, "later.txt")) && lastUpdate(join(destB, "a.rrd")) === T0 + 1200, 10_000, "the other target still replicated");
    await Bun.sleep(1500); // retries would have come by now
    expect(readFileSync(join(w.dest, "a.rrd")).equals(standby)).toBe(true);
    expect(existsSync(join(w.dest, "later.txt"))).toBe(false);
    expect(d.stderr().match(/FENCED/g)).toHaveLength(1);
    expect(d.proc.exitCode).toBeNull();
    const st = await runRrdsync(["status", "--json", "--config", cfg]);
    expect(st.code).toBe(4);
    const [sa, sb] = st.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(sa.fenced.files).toBe(1);
    expect(sb.fenced).toBeNull();
    const m = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(m).toMatch(/rrdsync_target_fenced\{target="[^"]*\/dest[ "][^"]*"\} 1\n/);
    expect(m).toMatch(/rrdsync_target_fenced\{target="[^"]*\/dest-b[ "][^"]*"\} 0\n/);
    expect(m).toMatch(/rrdsync_replica_conflicts\{target="[^"]*\/dest[ "][^"]*"\} 1\n/);
    expect(await d.stop()).toBe(0);
    // unfence one target by name: the other is left alone
    const bad = await runRrdsync(["unfence", "--target", "nope", "--config", cfg]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--target "nope": no such target');
    expect((await runRrdsync(["unfence", "--target", "b", "--config", cfg])).stdout).toContain("not fenced; nothing to do");
    const u = await runRrdsync(["unfence", "--keep-replica", "--target", w.dest, "--config", cfg]);
    expect(u.code).toBe(0);
    expect(readFileSync(join(w.dest, "a.rrd")).equals(standby)).toBe(true);
    expect(readFileSync(join(w.dest, "later.txt"), "utf8")).toBe("l\n");
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

describe("kill -9", () => {
  test("during the replica check, and at random moments while the source keeps changing: every rerun converges, never a false conflict", async () => {
    const w = suite.world();
    const files: Record<string, Uint8Array> = {};
    const size = TRANSPORT === "sftp" ? 200_000 : 20_000;
    for (let i = 0; i < 60; i++) files[`n${i % 4}/f${i}.bin`] = fakeBinary(size, i + 1);
    writeTree(w.src, files);
    const cfg = w.writeConfig();
    expect((await once(cfg)).code).toBe(0);
    const slowCfg = JSON.parse(readFileSync(cfg, "utf8"));
    const slow = join(w.dir, "slow.json");
    writeFileSync(slow, JSON.stringify({ ...slowCfg, rsync_options: { bwlimit: 2000 }, remote_sync: { ...slowCfg.remote_sync, sftp_parallel_files: 1 } }));
    let seed = 11;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const change = (round: number) => {
      for (let i = 0; i < 60; i += 2) writeTree(w.src, { [`n${i % 4}/f${i}.bin`]: fakeBinary(size, 100 * round + i + 7) });
    };
    for (let round = 0; round < 8; round++) {
      change(round);
      const p = Bun.spawn([...rrdsyncCommand(), "--once", "-q", "--config", slow], { stdout: "ignore", stderr: "ignore" });
      if (round === 0) {
        // the first one exactly while the check asks the standby (its remote stat, or the SFTP lstats)
        await eventually(() => checkRunning(p.pid), 20_000, "the replica check");
      } else if (round === 1) {
        // one after the transfer delivered some files and before the commit that records them: the replica holds
        // versions the state does not know, and the source moves on before the next run
        const written = Object.keys(files).filter((_, i) => i % 2 === 0);
        await eventually(() => written.some((rel) => existsSync(join(w.dest, rel)) && readFileSync(join(w.dest, rel)).equals(readFileSync(join(w.src, rel)))), 20_000, "a file delivered");
      } else {
        await Bun.sleep(Math.floor(rand() * 1200));
      }
      p.kill("SIGKILL");
      await p.exited;
      change(round + 100); // OpenNMS writes again before the next run: the replica may hold a version never recorded
      const r = await once(cfg);
      expect({ round, code: r.code, stderr: r.stderr }).toEqual({ round, code: 0, stderr: "" });
      const src = readTree(w.src);
      const dest = readTree(w.dest);
      for (const [k, v] of src) expect(dest.get(k) === v).toBe(true);
    }
  });
});

/**
 * Is rrdsync (pid) inside its replica check now? rsync: its ssh runs the remote check command; SFTP: the
 * lstats leave no process, so the first moment its SFTP session is open and no file has been written yet.
 */
function checkRunning(pid: number): boolean {
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, "latin1");
      const ppid = Number(/^\d+ \(.*\) \S (\d+)/s.exec(readFileSync(`/proc/${d}/stat`, "latin1"))?.[1]);
      if (TRANSPORT === "rsync" && cmd.includes("rrdsync-check") && (ppid === pid || cmd.includes("xargs"))) return true;
      if (TRANSPORT === "sftp" && cmd.startsWith("sshd") && cmd.includes("sftp")) return true;
    } catch {
      // gone meanwhile
    }
  }
  return false;
}
