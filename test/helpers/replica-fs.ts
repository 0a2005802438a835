// Replicas that refuse writes, for e2e tests (root only): an immutable directory, a full file system.
import { closeSync, openSync, rmSync } from "node:fs";
import { join } from "node:path";

function run(argv: string[]): { ok: boolean; err: string } {
  const p = Bun.spawnSync(argv, { stdout: "ignore", stderr: "pipe" });
  return { ok: p.exitCode === 0, err: p.stderr.toString().trim() };
}

function canCreateIn(dir: string): boolean {
  const probe = join(dir, `.probe-${process.pid}`);
  try {
    closeSync(openSync(probe, "wx"));
    rmSync(probe);
    return true;
  } catch {
    return false;
  }
}

/**
 * Makes `dir` refuse every write, even root's: `chattr +i` where the file system supports it (ext4, xfs; not
 * tmpfs), else a read-only bind mount over it. Returns the undo. Throws if neither works, so no test passes on a
 * directory that still takes writes.
 */
export function refuseWrites(dir: string): () => void {
  if (run(["chattr", "+i", dir]).ok && !canCreateIn(dir)) return () => void run(["chattr", "-i", dir]);
  run(["chattr", "-i", dir]);
  const bind = run(["mount", "--bind", dir, dir]);
  if (bind.ok && run(["mount", "-o", "remount,bind,ro", dir]).ok && !canCreateIn(dir)) return () => void run(["umount", dir]);
  if (bind.ok) run(["umount", dir]);
  throw new Error(`cannot make ${dir} refuse writes (needs root, and chattr or mount --bind): ${bind.err}`);
}

/** A tmpfs of `size` (mount's syntax: "64k") mounted on `dir`; `grow` makes room, `undo` unmounts. */
export function smallFileSystem(dir: string, size: string): { grow(size: string): void; undo(): void } {
  const m = run(["mount", "-t", "tmpfs", "-o", `size=${size},mode=755`, "tmpfs", dir]);
  if (!m.ok) throw new Error(`cannot mount a ${size} tmpfs on ${dir} (needs root): ${m.err}`);
  return {
    grow(to) {
      const g = run(["mount", "-o", `remount,size=${to}`, dir]);
      if (!g.ok) throw new Error(`cannot resize the tmpfs on ${dir}: ${g.err}`);
    },
    undo: () => void run(["umount", "-l", dir]),
  };
}
