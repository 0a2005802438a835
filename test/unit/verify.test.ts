// verify's pure parts and its orchestration without a server: rsync's argv (always a dry run) and verdicts, PATH
// and GLOB, --sample's parsing, drift told from what rrdsync knows of (over a scripted transport and a real state
// DB), --repair through the engine into the one audit commit, and the replica-lag figures.
import { afterEach, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseSample } from "../../src/cli/verify.ts";
import { loadConfig } from "../../src/config/load.ts";
import { lagFigures } from "../../src/engine/lag.ts";
import { TargetEngine } from "../../src/engine/target.ts";
import { repairable, verifyReplica } from "../../src/engine/verify.ts";
import { globRegExp, parsePattern } from "../../src/source/pattern.ts";
import { acquireLock } from "../../src/store/lock.ts";
import { StateStore } from "../../src/store/state.ts";
import { openChangeLog } from "../../src/track/changelog.ts";
import { buildListArgv, buildVerifyArgv } from "../../src/transport/rsync/args.ts";
import { verdictOf } from "../../src/transport/rsync/verify.ts";
import type { FileVerdict, VerifyRequest } from "../../src/transport/types.ts";
import { CopyTransport } from "../helpers/copy-transport.ts";

const target = { user: "u", host: "standby", port: 22, destDir: "/r", sshKeyPath: "", knownHostsFile: "/k", sshCiphers: "", transport: "rsync" as const, sftpParallelFiles: 8, sshPassphraseFile: "" };

describe("rsync's side", () => {
  test("every verify argv is a --checksum dry run; a subtree run adds --delete (names extras) and the filters", () => {
    const filter = { extensions: [".rrd"], exclude: ["state.db"] };
    const tree = buildVerifyArgv({ target, sourceDir: "/s" }, { root: "", filter });
    const sub = buildVerifyArgv({ target, sourceDir: "/s" }, { root: "snmp/1", filter });
    const list = buildVerifyArgv({ target, sourceDir: "/s" });
    for (const a of [tree, sub, list]) {
      expect(a.slice(0, 5)).toEqual(["rsync", "--dry-run", "--checksum", "--update", "--info=skip1"]);
      expect(a).not.toContain("-a");
      expect(a).not.toContain("--inplace");
    }
    expect(tree).toContain("--delete");
    expect(tree).toContain("-ii"); // every file named (--combined, a progress line)
    const counted = buildVerifyArgv({ target, sourceDir: "/s" }, { root: "", filter }, false);
    expect([counted.includes("-i"), counted.includes("--stats"), counted.includes("-ii")]).toEqual([true, true, false]);
    expect(buildVerifyArgv({ target, sourceDir: "/s" }, undefined, false)).toContain("-ii"); // a list run always names
    expect(tree).toContain("--exclude=/state.db");
    expect(tree).toContain("--exclude=.rrdsync-partial/");
    expect(tree).toContain("--exclude=.*.rrdsync-tmp");
    expect(tree.slice(-2)).toEqual(["/s/", "u@standby:/r/"]);
    expect(sub.slice(-2)).toEqual(["/s/snmp/1/", "u@standby:/r/snmp/1/"]);
    expect(list).toContain("--files-from=-");
    expect(list).not.toContain("--delete");
    expect(buildListArgv({ target }, "snmp", filter)).toContain("--list-only");
    expect(buildListArgv({ target: { ...target, host: "" } }, "", filter).at(-1)).toBe("/r/");
    // through the transfers' ssh master when there is one
    expect(buildVerifyArgv({ target, sourceDir: "/s", controlPath: "/run/m0" }).join(" ")).toContain("ControlPath=/run/m0");
    expect(buildListArgv({ target, controlPath: "/run/m0" }, "", filter).join(" ")).toContain("ControlPath=/run/m0");
  });

  test("verdicts from a --checksum dry run's itemize flags", () => {
    expect(verdictOf(".f         ")).toBe("same");
    expect(verdictOf(".f..t......")).toBe("same"); // only the time differs: the content is the same
    expect(verdictOf(">f+++++++++")).toBe("missing");
    expect(verdictOf("<f+++++++++")).toBe("missing");
    expect(verdictOf("<fc.T......")).toBe("differs");
    expect(verdictOf(">f.s.......")).toBe("differs");
  });
});

describe("arguments", () => {
  test("PATH and GLOB as `log` takes them; nothing outside the tree", () => {
    const p = parsePattern("snmp/*/if*.rrd", "/src");
    expect([p?.glob, p?.base, p?.match("snmp/1/ifIn.rrd"), p?.match("snmp/1/a/ifIn.rrd"), p?.match("snmp/1/x.rrd")]).toEqual([true, "snmp", true, true, false]);
    const d = parsePattern("/src/snmp/1/", "/src");
    expect([d?.text, d?.glob, d?.match("snmp/1/a"), d?.match("snmp/10")]).toEqual(["snmp/1", false, true, false]);
    expect(parsePattern("./a//b/", "/src")?.text).toBe("a/b");
    expect(parsePattern("../x", "/src")).toBeNull();
    expect(parsePattern("a/../../x", "/src")).toBeNull();
    expect(parsePattern("/etc/passwd", "/src")).toBeNull();
    expect(parsePattern("/srcother/x", "/src")).toBeNull();
    expect(globRegExp("a[bc]?.txt").test("ab1.txt")).toBe(true);
    expect(globRegExp("a[^b].txt").test("ab.txt")).toBe(false);
    expect(globRegExp("a.(x)+$").test("a.(x)+$")).toBe(true); // regex characters are literal
    expect(globRegExp("[]]x").test("]x")).toBe(true);
  });

  test("--sample takes a share above 0 and at most 100", () => {
    expect(parseSample("10%")).toBe(10);
    expect(parseSample("0.5")).toBe(0.5);
    expect(parseSample(100)).toBe(100);
    for (const bad of ["0", "0%", "101%", "ten", "-5%", "", "10%%"]) expect(() => parseSample(bad)).toThrow(/--sample/);
  });
});

test("replica lag figures: max and median over every tracked RRD, the current ones counting as 0", () => {
  expect(lagFigures([], 0)).toEqual({ maxSeconds: 0, medianSeconds: 0 });
  expect(lagFigures([], 5)).toEqual({ maxSeconds: 0, medianSeconds: 0 });
  expect(lagFigures([600, 600], 3)).toEqual({ maxSeconds: 600, medianSeconds: 600 });
  expect(lagFigures([1200, 600], 3)).toEqual({ maxSeconds: 1200, medianSeconds: 600 });
  expect(lagFigures([900], 3)).toEqual({ maxSeconds: 900, medianSeconds: 0 });
  expect(lagFigures([300, 900], 4)).toEqual({ maxSeconds: 900, medianSeconds: 150 });
});

describe("drift and what rrdsync knows of, over a scripted transport", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  function setup(over: Record<string, unknown> = {}) {
    const dir = mkdtempSync(join(tmpdir(), "rrdsync-verify-"));
    dirs.push(dir);
    const src = join(dir, "src");
    mkdirSync(src);
    writeFileSync(join(dir, "config.json"), JSON.stringify({
      source_dir: src, state_file: join(dir, "state.db"), remote_sync: { remote_dest_dir: join(dir, "dest") },
      change_tracking: { backup_dir: join(dir, "backup"), change_log_file: join(dir, "changes.txt") }, rrd_hold: { attempts: 0 }, ...over,
    }));
    const { config } = loadConfig({ configPath: join(dir, "config.json"), env: {}, cwd: dir, home: dir });
    return { dir, src, config };
  }

  /** A transport that answers with the verdicts given, as a real one streams them. */
  function scripted(verdicts: Record<string, FileVerdict>, extras: string[]) {
    const asked: VerifyRequest[] = [];
    const t = new CopyTransport("/nonexistent", "/nonexistent") as CopyTransport & { verifyFiles(req: VerifyRequest): Promise<{ bytesRead: number }> };
    t.verifyFiles = async (req) => {
      asked.push(req);
      if (!req.tree) req.files(); // a list run reads the list (the sample is drawn then)
      for (const [p, v] of Object.entries(verdicts)) req.onFile(p, v);
      for (const p of extras) req.onExtra(p);
      return { bytesRead: 0 };
    };
    return { t, asked };
  }

  test("each difference is drift, or known with its reason; --repair takes only the drift the send stage can fix", async () => {
    const { dir, src, config } = setup();
    for (const f of ["tracked.txt", "changed.txt", "newer.txt", "missing.txt", "same.txt", "odd.txt"]) writeFileSync(join(src, f), `${f}\n`);
    // The state says the replica holds these versions (an engine pass over a copying transport records them).
    const lock = acquireLock(config.stateFile);
    const store = StateStore.open(config.stateFile).store;
    const log = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
    const copy = new CopyTransport(src, join(dir, "dest"));
    const engine = new TargetEngine({ config, lock, store, transport: copy, changeLog: openChangeLog(config, log) }, log, {}, { daemon: false });
    await engine.runPass();
    store.commit([{ path: "gone.txt", state: { size: 5, mtimeNs: "1", ino: "1", sha256: null, rrd: null } }], []);
    // untracked.txt was never confirmed; changed.txt changed since
    writeFileSync(join(src, "untracked.txt"), "new\n");
    writeFileSync(join(src, "changed.txt"), "changed, longer\n");
    await Bun.sleep(150);
    const { t, asked } = scripted(
      { "tracked.txt": "differs", "changed.txt": "differs", "untracked.txt": "missing", "newer.txt": "newer", "missing.txt": "missing", "same.txt": "same", "odd.txt": { error: "Permission denied" } },
      ["gone.txt", "stray.txt"],
    );
    const seen: string[] = [];
    const s = await verifyReplica({ config, store, transport: t }, { pattern: null, samplePercent: null, onEntry: (e) => seen.push(`${e.kind} ${e.path} ${e.known ?? "drift"}`) });
    expect(asked[0]?.tree?.root).toBe("");
    expect(seen.sort()).toEqual([
      "differs changed.txt changed since the last sync",
      "differs tracked.txt drift",
      "error odd.txt drift",
      "extra gone.txt deleted from the source; kept on the replica (delete is off)",
      "extra stray.txt drift",
      "missing missing.txt drift",
      "missing untracked.txt not synced yet",
      "newer newer.txt drift",
      "same same.txt drift",
    ]);
    expect([s.checked, s.same, s.differs, s.missing, s.newer, s.extra, s.errors, s.known]).toEqual([7, 1, 1, 1, 1, 1, 1, 3]);
    // newer there: a conflict, repaired only with --overwrite
    expect(repairable(s, { overwrite: true }).map((r) => r.path).sort()).toEqual(["missing.txt", "newer.txt", "tracked.txt"]);
    expect(repairable(s, { overwrite: false }).map((r) => r.path).sort()).toEqual(["missing.txt", "tracked.txt"]);

    // --repair: through the send stage and the one audit commit, recorded as repaired; its engine's queue knows
    // only the repaired files, so the pending count the last run recorded for `status` stays
    store.setStatus({ pending: 5 });
    const repairer = new TargetEngine({ config, lock, store, transport: copy, changeLog: openChangeLog(config, log) }, log, {}, { daemon: false, repairOnly: true });
    const ps = await repairer.repair(repairable(s, { overwrite: true }));
    expect(store.status().pending).toBe(5);
    expect([ps.sent, ps.repaired]).toEqual([3, 3]);
    const rows = [...store.changes({ kinds: ["repaired"] })];
    expect(rows.map((r) => `${r.kind} ${r.path}: ${r.summary}`).sort()).toEqual([
      "file repaired missing.txt: repaired: it was missing on the replica",
      "file repaired newer.txt: repaired: the replica's copy was newer (changed on the standby; --overwrite)",
      "file repaired tracked.txt: repaired: the replica's copy had other content",
    ]);
    expect(store.status().totals?.filesRepaired).toBe(3);
    store.close();
    lock.release();
  });

  test("--sample checks a random share of the walk and says how many of how many; no extras are looked for", async () => {
    const { src, config } = setup();
    for (let i = 0; i < 100; i++) writeFileSync(join(src, `f${i}.txt`), "x\n");
    let n = 0;
    const random = () => (n++ % 4) / 4; // 0, .25, .5, .75: a quarter below 25
    const { t, asked } = scripted({}, []);
    const s = await verifyReplica({ config, store: null, transport: t }, { pattern: null, samplePercent: 25, random });
    expect(s.sample).toEqual({ percent: 25, files: 25, of: 100 });
    expect(asked[0]?.tree).toBeUndefined();
    expect(asked[0]?.extras).toBeUndefined();
    expect(s.extrasChecked).toBe(false);
  });
});
