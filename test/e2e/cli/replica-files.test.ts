// End to end: what the replica's files look like besides their bytes: sparse files stay sparse, and the SFTP
// transport's temporary files a kill -9 left behind do not stay there although their file is gone from the source.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import { e2eSuite } from "../../helpers/suite.ts";
import { fakeBinary, rrdsyncCommand, runRrdsync, TRANSPORT, type World, writeTree } from "../../helpers/world.ts";

setDefaultTimeout(120_000);
const suite = e2eSuite("files");

const paths = TRANSPORT === "rsync" ? (["local", "ssh"] as const) : (["ssh"] as const);
function config(w: World, where: "local" | "ssh"): string {
  return where === "local" ? w.writeConfig({ remote_sync: { remote_dest_dir: w.dest } }) : w.writeConfig();
}

/** A 64 MiB file with 4 KiB of data at each end and a hole between (an RRD created sparse looks like this). */
function writeSparse(path: string, seed: number): void {
  const fd = openSync(path, "w");
  writeSync(fd, fakeBinary(4096, seed), 0, 4096, 0);
  writeSync(fd, fakeBinary(4096, seed + 1), 0, 4096, 64 * 1024 * 1024 - 4096);
  closeSync(fd);
}

const onDisk = (path: string) => statSync(path).blocks * 512;

for (const where of paths) {
  describe(`replica files (${where === "local" ? "local destination" : `${TRANSPORT} over ssh`})`, () => {
    test("a sparse file stays sparse on the replica, when created and when changed", async () => {
      const w = suite.world();
      writeTree(w.src, { "a.txt": "a\n" });
      const src = join(w.src, "sparse.bin");
      writeSparse(src, 1);
      expect(onDisk(src)).toBeLessThan(1024 * 1024); // the source file system keeps holes (ext4 does)
      const cfg = config(w, where);
      for (const seed of [1, 5]) {
        writeSparse(src, seed);
        const r = await runRrdsync(["--once", "--config", cfg]);
        expect({ code: r.code, err: r.stderr }).toEqual({ code: 0, err: "" });
        const dest = join(w.dest, "sparse.bin");
        expect(Buffer.compare(readFileSync(dest), readFileSync(src))).toBe(0);
        // rsync --sparse: a few KiB; SFTP skips whole chunks of zeros: the two 255 KiB chunks that hold data
        expect(onDisk(dest)).toBeLessThan(1024 * 1024);
      }
    });
  });
}

describe("SFTP temporary files", () => {
  test.if(TRANSPORT === "sftp")("a kill -9 mid-write leaves one, its file is deleted: the next batch removes it, wherever it writes (only names of exactly our pattern)", async () => {
    const w = suite.world();
    writeTree(w.src, { "d/b.txt": "b\n", "e/x.txt": "x\n" });
    const cfg = w.writeConfig();
    expect((await runRrdsync(["--once", "--config", cfg])).code).toBe(0);
    // not ours: similar names stay
    const others = { "d/.big.bin.rrdsync-tmpx": "1", "d/big.bin.rrdsync-tmp": "2", "d/.rrdsync-tmp": "3", "d/.big.bin.rrdsync-tmp.keep": "4" };
    writeTree(w.dest, others);
    const tmp = join(w.dest, "d/.big.bin.rrdsync-tmp");
    let caught = false;
    for (let attempt = 0; attempt < 5 && !caught; attempt++) {
      writeTree(w.src, { "d/big.bin": fakeBinary(64 * 1024 * 1024, attempt + 1) });
      const p = Bun.spawn([...rrdsyncCommand(), "--once", "-q", "--config", cfg], { stdout: "ignore", stderr: "ignore" });
      while (p.exitCode === null && !existsSync(tmp)) await Bun.sleep(1);
      p.kill("SIGKILL");
      await p.exited;
      caught = existsSync(tmp);
    }
    expect(caught).toBe(true);
    // the killed batch noted where it was writing, beside the state DB
    expect(existsSync(`${w.stateFile}.sftp-inflight`)).toBe(true);
    rmSync(join(w.src, "d/big.bin"));
    writeTree(w.src, { "e/x.txt": "x2\n" }); // nothing more is written into d/
    const r = await runRrdsync(["--once", "--config", cfg]);
    expect({ code: r.code, err: r.stderr }).toEqual({ code: 0, err: "" });
    expect(existsSync(tmp)).toBe(false);
    expect(readdirSync(join(w.dest, "d")).sort()).toEqual([...Object.keys(others).map((k) => k.slice(2)), "b.txt"].sort());
    expect(readFileSync(join(w.dest, "e/x.txt"), "utf8")).toBe("x2\n");
    expect(existsSync(`${w.stateFile}.sftp-inflight`)).toBe(false); // a batch that ended whole leaves no note
  });
});
