// End to end: the fence is recorded on the standby too (.rrdsync-fenced at the replica's root), so a new or rebuilt
// state DB (deleted, --rebuild-state, the destination re-pointed by another name) finds it and refuses the target
// before its first sync's whole-tree run could write over the standby's newer rows. Real sshd, real rsync or SFTP,
// real `rrdtool update`s on each side.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { e2eSuite } from "../../helpers/suite.ts";
import { runRrdsync, TRANSPORT, type World } from "../../helpers/world.ts";
import { loadConfig } from "../../../src/config/load.ts";
import { createTransport } from "../../../src/transport/create.ts";

setDefaultTimeout(120_000);
const suite = e2eSuite("fmark");

const T0 = 1_699_999_800;
const MARKER = ".rrdsync-fenced";

function rrdtool(...args: string[]): string {
  const r = Bun.spawnSync(["rrdtool", ...args]);
  if (r.exitCode !== 0) throw new Error(`rrdtool ${args.join(" ")}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

function update(path: string, ...rows: Array<[number, number]>): void {
  rrdtool("update", path, ...rows.map(([step, v]) => `${T0 + step * 300}:${v}`));
}

function lastUpdate(path: string): number {
  return Number((rrdtool("lastupdate", path).trim().split("\n").at(-1) as string).split(":")[0]);
}

function fetched(path: string, step: number): number {
  for (const line of rrdtool("fetch", path, "AVERAGE", "--start", String(T0), "--end", String(T0 + 3000)).split("\n")) {
    const m = /^(\d+): (\S+)/.exec(line);
    if (m && Number(m[1]) === T0 + step * 300) return Number(m[2]);
  }
  return Number.NaN;
}

const once = (cfg: string, ...more: string[]) => runRrdsync(["--once", "--config", cfg, ...more]);

/**
 * The sequence up to the fence: replicated, the standby writes rows 30 and 40, the primary writes row 3
 * and is fenced (exit 4). `local`: a local destination. `plant`: something put at the marker's name first.
 */
async function fence(w: World, over: Record<string, unknown> = {}, plant?: () => void): Promise<{ cfg: string; standby: Buffer }> {
  rrdtool("create", join(w.src, "a.rrd"), "--start", String(T0), "--step", "300", "DS:x:GAUGE:600:U:U", "RRA:AVERAGE:0.5:1:100");
  update(join(w.src, "a.rrd"), [1, 1], [2, 2]);
  const cfg = w.writeConfig(over);
  expect((await once(cfg)).code).toBe(0);
  plant?.();
  await Bun.sleep(1100); // a first sync's rsync --update (and SFTP) compare whole seconds
  update(join(w.dest, "a.rrd"), [3, 30], [4, 40]);
  const standby = readFileSync(join(w.dest, "a.rrd"));
  await Bun.sleep(1100);
  update(join(w.src, "a.rrd"), [3, 3]);
  expect((await once(cfg)).code).toBe(4);
  return { cfg, standby };
}

function expectStandbyKept(w: World, standby: Buffer): void {
  expect(readFileSync(join(w.dest, "a.rrd")).equals(standby)).toBe(true);
  expect(lastUpdate(join(w.dest, "a.rrd"))).toBe(T0 + 1200);
  expect([fetched(join(w.dest, "a.rrd"), 3), fetched(join(w.dest, "a.rrd"), 4)]).toEqual([30, 40]);
}

describe("the fence recorded on the standby", () => {
  test("a new state DB (lost; the destination re-pointed by another name) finds it: exit 4, the standby's rows kept; unfence settles with the DB that fenced it and removes it", async () => {
    const w = suite.world();
    const { cfg, standby } = await fence(w);
    const m = JSON.parse(readFileSync(join(w.dest, MARKER), "utf8"));
    expect(m).toMatchObject({ format: "rrdsync-fenced/1", files: 1, conflicts: [{ path: "a.rrd", why: "changed" }] });
    expect(typeof m.host).toBe("string");
    expect(Date.parse(m.fencedAt)).toBeGreaterThan(Date.now() - 60_000);
    // the state DB is lost (kept aside here): the next run is a first sync, whose rsync --update would replace the
    // standby's copy (ours is newer by mtime)
    renameSync(join(w.dir, "state"), join(w.dir, "state.lost"));
    const r = await once(cfg);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(`FENCED: 1 file changed on the standby, first: "a.rrd" (recorded on the standby in ${MARKER} by ${m.host}`);
    expectStandbyKept(w, standby);
    // the new DB holds the fence as usual
    const st = await runRrdsync(["status", "--config", cfg]);
    expect(st.code).toBe(4);
    expect(st.stdout).toContain(`FENCED since ${new Date(m.fencedAt).toISOString().slice(0, 10)}`);
    expect(st.stdout).toContain('(1 file changed on the standby, first: "a.rrd")');
    // the same directory by another name (a symlink to it), with its own new state DB
    const link = join(w.dir, "dest-link");
    symlinkSync(w.dest, link);
    const base = JSON.parse(readFileSync(cfg, "utf8"));
    const repointed = join(w.dir, "repointed.json");
    writeFileSync(repointed, JSON.stringify({ ...base, state_file: join(w.dir, "other-state", "s.db"), remote_sync: { ...base.remote_sync, remote_dest_dir: link } }));
    const other = await once(repointed);
    expect(other.code).toBe(4);
    expect(other.stderr).toContain("recorded on the standby");
    expectStandbyKept(w, standby);
    // a DB that knows nothing delivered cannot tell the standby's changes: unfence refuses and says what to do
    const explain = await runRrdsync(["unfence", "--config", cfg]);
    expect(explain.code).toBe(4);
    expect(explain.stdout).toContain(`found on the standby in ${w.dest}/${MARKER}`);
    const blind = await runRrdsync(["unfence", "--overwrite", "--config", cfg]);
    expect(blind.code).toBe(4);
    expect(blind.stdout).toContain("Put back the state DB that fenced it");
    expectStandbyKept(w, standby);
    expect(existsSync(join(w.dest, MARKER))).toBe(true);
    // with the DB that fenced it: settled (the standby's copy kept aside), the marker removed, replication goes on
    rmSync(join(w.dir, "state"), { recursive: true, force: true });
    renameSync(join(w.dir, "state.lost"), join(w.dir, "state"));
    const u = await runRrdsync(["unfence", "--overwrite", "--config", cfg]);
    expect(u.code).toBe(0);
    expect(existsSync(join(w.dest, MARKER))).toBe(false);
    const [stamp] = readdirSync(join(w.dest, ".rrdsync-kept"));
    expect(readFileSync(join(w.dest, ".rrdsync-kept", stamp as string, "a.rrd")).equals(standby)).toBe(true);
    expect(readFileSync(join(w.dest, "a.rrd")).equals(readFileSync(join(w.src, "a.rrd")))).toBe(true);
    const v = await runRrdsync(["verify", "--config", cfg]);
    expect({ code: v.code, out: v.stdout }).toEqual({ code: 0, out: "" });
  });

  test("a symlink planted at the marker's name fences the target (read as unreadable, never as not fenced), and nothing is written through it", async () => {
    const w = suite.world();
    const victim = join(w.dir, "victim.txt");
    writeFileSync(victim, "not rrdsync's\n");
    const { cfg, standby } = await fence(w, {}, () => symlinkSync(victim, join(w.dest, MARKER)));
    expect(readFileSync(victim, "utf8")).toBe("not rrdsync's\n");
    expect(lstatSync(join(w.dest, MARKER)).isSymbolicLink()).toBe(true);
    rmSync(join(w.dir, "state"), { recursive: true, force: true });
    const r = await once(cfg);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain("the standby holds a fence marker that cannot be read (not a regular file)");
    expectStandbyKept(w, standby);
    expect(readFileSync(victim, "utf8")).toBe("not rrdsync's\n");
  });

  test("the transport's marker write: never through a symlink or into a directory at the name; atomic; removal takes a planted symlink, not what it points at", async () => {
    const w = suite.world();
    const transport = createTransport(loadConfig({ configPath: w.writeConfig(), env: {}, cwd: w.dir, home: w.dir }).config);
    const at = join(w.dest, MARKER);
    const victim = join(w.dir, "victim.txt");
    writeFileSync(victim, "not rrdsync's\n");
    try {
      symlinkSync(victim, at);
      expect(await transport.writeRootMarker(MARKER, "{}\n")).toContain("symlink");
      expect(readFileSync(victim, "utf8")).toBe("not rrdsync's\n");
      expect(lstatSync(at).isSymbolicLink()).toBe(true);
      expect((await transport.replicaState([])).fence).toEqual({ unreadable: "not a regular file" });
      expect(await transport.removeRootMarker(MARKER)).toBeNull();
      expect(existsSync(at)).toBe(false);
      expect(readFileSync(victim, "utf8")).toBe("not rrdsync's\n");
      mkdirSync(at);
      expect(await transport.writeRootMarker(MARKER, "{}\n")).toContain(MARKER);
      expect(lstatSync(at).isDirectory()).toBe(true);
      expect(await transport.removeRootMarker(MARKER)).toContain("directory");
      rmSync(at, { recursive: true });
      expect(await transport.writeRootMarker(MARKER, "one\n")).toBeNull();
      expect(await transport.writeRootMarker(MARKER, "two\n")).toBeNull(); // replaces it
      expect(readFileSync(at, "utf8")).toBe("two\n");
      expect((await transport.replicaState([])).fence).toEqual({ text: "two\n" });
      expect(readdirSync(w.dest)).toEqual([MARKER]); // no temporary file left
      expect(await transport.removeRootMarker(MARKER)).toBeNull();
      expect(await transport.removeRootMarker(MARKER)).toBeNull(); // absent is fine
      expect((await transport.replicaState([])).fence).toBeNull();
    } finally {
      await transport.close();
    }
  });
});

describe("a local destination (remote_host \"\")", () => {
  test.if(TRANSPORT === "rsync")("the marker is written there, found by a new state DB (exit 4, rows kept), removed by unfence", async () => {
    const w = suite.world();
    const { cfg, standby } = await fence(w, { remote_sync: { remote_dest_dir: w.dest } });
    expect(JSON.parse(readFileSync(join(w.dest, MARKER), "utf8")).files).toBe(1);
    rmSync(join(w.dir, "state"), { recursive: true, force: true });
    const check = await runRrdsync(["check", "--config", cfg]);
    expect(check.code).toBe(1);
    expect(check.stdout).toMatch(/✗ fenced on the standby: .*\.rrdsync-fenced: fenced by \S+ at \S+ \(1 file changed on the standby, first: "a\.rrd"\)/);
    const r = await once(cfg);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain("recorded on the standby");
    expectStandbyKept(w, standby);
    // the admin lets this host's files win without the old DB: removes the marker by hand, as unfence says
    expect((await runRrdsync(["unfence", "--keep-replica", "--config", cfg])).stdout).toContain(`remove ${w.dest}/${MARKER}`);
    expectStandbyKept(w, standby);
    rmSync(join(w.dest, MARKER));
    expect((await runRrdsync(["unfence", "--overwrite", "--config", cfg])).code).toBe(0);
    expect(readFileSync(join(w.dest, "a.rrd")).equals(readFileSync(join(w.src, "a.rrd")))).toBe(true);
    expect((await once(cfg)).code).toBe(0);
  });
});
