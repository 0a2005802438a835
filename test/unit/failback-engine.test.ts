// failback's orchestration over a transport that copies locally (the real transports run the same in the e2e
// suite): a failback whose send back failed after every file was merged here leaves the fence up, and the next run
// sends those files back (their standby versions are noted as accepted, so no listing shows them as changed).
import { afterEach, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/config/load.ts";
import { failbackTarget } from "../../src/engine/failback.ts";
import { TargetEngine } from "../../src/engine/target.ts";
import { readFence } from "../../src/store/fence.ts";
import { acquireLock } from "../../src/store/lock.ts";
import { StateStore } from "../../src/store/state.ts";
import { openChangeLog } from "../../src/track/changelog.ts";
import { formatMarker, PROMOTED_MARKER } from "../../src/transport/marker.ts";
import type { BatchFile, BatchResult } from "../../src/transport/types.ts";
import { CopyTransport } from "../helpers/copy-transport.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const T0 = 1_699_999_800;
const rrdtool = (...args: string[]) => {
  const r = Bun.spawnSync(["rrdtool", ...args]);
  if (r.exitCode !== 0) throw new Error(r.stderr.toString());
  return r.stdout.toString();
};
const update = (f: string, ...steps: number[]) => rrdtool("update", f, ...steps.map((s) => `${T0 + s * 300}:${s}`));
const rows = (f: string) =>
  rrdtool("fetch", f, "AVERAGE", "--start", String(T0), "--end", String(T0 + 3000)).split("\n").flatMap((l) => {
    const m = /^(\d+): (\S+)/.exec(l);
    return m && !Number.isNaN(Number(m[2])) ? [(Number(m[1]) - T0) / 300] : [];
  });

/** The send fails as a whole (the standby went away) while this is set; everything else works. */
class FailingSends extends CopyTransport {
  failSends = false;
  override async sendBatch(files: BatchFile[] | Promise<BatchFile[]>, signal?: AbortSignal, opts?: Parameters<CopyTransport["sendBatch"]>[2]): Promise<BatchResult> {
    if (!this.failSends) return super.sendBatch(files, signal, opts);
    const list = await files;
    return { outcomes: new Map(list.map((f) => [f.path, { ok: false, reason: "connection lost" }])), error: "connection lost", infoLines: [], bytesSent: 0 };
  }
}

test("a failback whose send back failed: the fence stays; the next run sends the merged files back and lifts it", async () => {
  const dir = mkdtempSync(join(tmpdir(), "rrdsync-failback-"));
  dirs.push(dir);
  const src = join(dir, "src");
  const dest = join(dir, "dest");
  mkdirSync(src);
  writeFileSync(join(dir, "config.json"), JSON.stringify({
    source_dir: src, state_file: join(dir, "state.db"), remote_sync: { remote_dest_dir: dest },
    change_tracking: { backup_dir: join(dir, "backup"), change_log_file: join(dir, "changes.txt") }, rrd_hold: { attempts: 0 },
  }));
  const { config } = loadConfig({ configPath: join(dir, "config.json"), env: {}, cwd: dir, home: dir });
  const log = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
  const transport = new FailingSends(src, dest);
  const lock = acquireLock(config.stateFile);
  const store = StateStore.open(config.stateFile).store;
  const changeLog = openChangeLog(config, log);
  const engine = () => new TargetEngine({ config, lock, store, transport, changeLog }, log, {}, { daemon: false });
  const a = join(src, "a.rrd");
  rrdtool("create", a, "--start", String(T0), "--step", "300", "DS:x:GAUGE:300:U:U", "RRA:AVERAGE:0.5:1:100");
  update(a, 1, 2);
  expect((await engine().runPass()).sent).toBe(1);
  update(a, 3); // never replicated
  writeFileSync(join(dest, PROMOTED_MARKER), formatMarker({ host: "standby", promotedAt: new Date().toISOString(), user: "root", by: "rrdsync test", replica: { files: 1, bytes: 0, newest: null } }));
  await Bun.sleep(20);
  update(join(dest, "a.rrd"), 4, 5, 6); // the promoted standby's rows

  transport.failSends = true;
  const first = await failbackTarget(engine());
  expect(first.error).toBe("connection lost");
  expect(first.files.map((f) => f.outcome)).toEqual(["merged"]);
  expect(rows(a)).toEqual([1, 2, 3, 5, 6]); // merged here
  expect(rows(join(dest, "a.rrd"))).toEqual([1, 2, 5, 6]); // not sent
  expect(readFence(store)?.kind).toBe("promoted"); // raised before the marker went: this host stays off the target

  transport.failSends = false;
  const second = await failbackTarget(engine());
  expect(second.error).toBeNull();
  expect(second.lifted).toBe(true);
  expect(second.files.map((f) => [f.path, f.detail])).toEqual([["a.rrd", "settled here by an earlier failback that was stopped: sent back now"]]);
  expect(readFileSync(join(dest, "a.rrd")).equals(readFileSync(a))).toBe(true);
  expect(readFence(store)).toBeNull();
  store.close();
  lock.release();
});
