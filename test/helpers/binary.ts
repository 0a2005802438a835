// The compiled binary for tests that need a file to run (an install, another user): the one under test
// (RRDSYNC_BIN), else dist/rrdsync, built first if missing (the source run of the suite has none yet).
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";

const REPO = resolve(import.meta.dir, "../..");

export function compiledBinary(): string {
  if (process.env.RRDSYNC_BIN) return resolve(process.env.RRDSYNC_BIN);
  const out = join(REPO, "dist/rrdsync");
  if (!existsSync(out)) {
    const b = Bun.spawnSync(["bash", join(REPO, "scripts/build.sh")], { stdout: "ignore", stderr: "pipe" });
    if (b.exitCode !== 0) throw new Error(`build failed: ${b.stderr.toString()}`);
  }
  return out;
}
