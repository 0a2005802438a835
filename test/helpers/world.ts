// Test worlds: a temp source tree, a destination, a config file, and a way to run rrdsync (source or compiled).
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, lstatSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { SshdFixture } from "./sshd.ts";

const REPO = resolve(import.meta.dir, "../..");

/**
 * The transport every SSH world uses: the e2e suite runs once per transport (scripts/test.sh sets
 * RRDSYNC_TEST_TRANSPORT=sftp for the second run), so both pass the same scenarios.
 */
export const TRANSPORT = (process.env.RRDSYNC_TEST_TRANSPORT ?? "rsync") as "rsync" | "sftp";

/** RRDSYNC_BIN=dist/rrdsync runs the same scenarios against the compiled binary. */
export function rrdsyncCommand(): string[] {
  const bin = process.env.RRDSYNC_BIN;
  return bin ? [resolve(bin)] : [process.execPath, join(REPO, "src/main.ts")];
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runRrdsync(args: string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<RunResult> {
  const p = Bun.spawn([...rrdsyncCommand(), ...args], {
    stdout: "pipe",
    stderr: "pipe",
    stdin: "ignore",
    env: { ...process.env, NO_COLOR: "1", ...opts.env },
  });
  const timer = setTimeout(() => p.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

export interface World {
  dir: string;
  src: string;
  dest: string;
  stateFile: string;
  backupDir: string;
  changeLog: string;
  logFile: string;
  configPath: string;
  /** writes config.json for this world, merged with overrides (snake_case, as users write it) */
  writeConfig(over?: Record<string, unknown>): string;
  /** the change log's text ("" if none yet) */
  changes(): string;
  cleanup(): void;
}

export function makeWorld(sshd: SshdFixture | null, name = "w"): World {
  const dir = mkdtempSync(join(tmpdir(), `rrdsync-${name}-`));
  const w: World = {
    dir,
    src: join(dir, "src"),
    dest: join(dir, "dest"),
    stateFile: join(dir, "state", "state.db"),
    backupDir: join(dir, "state", "backup"),
    changeLog: join(dir, "state", "change_log.txt"),
    logFile: join(dir, "state", "rrdsync.log"),
    configPath: join(dir, "config.json"),
    writeConfig(over = {}) {
      const base: Record<string, unknown> = {
        source_dir: w.src,
        state_file: w.stateFile,
        remote_sync: sshd
          ? {
              remote_user: sshd.user, remote_host: sshd.host, port: sshd.port, remote_dest_dir: w.dest,
              ssh_key_path: sshd.clientKey, known_hosts_file: sshd.knownHosts, transport: TRANSPORT,
            }
          : { remote_dest_dir: w.dest },
        logging: { log_file: w.logFile, log_level: "DEBUG" },
        monitored_extensions: [],
        change_tracking: { backup_dir: w.backupDir, change_log_file: w.changeLog },
      };
      const merged = { ...base, ...over };
      writeFileSync(w.configPath, JSON.stringify(merged, null, 2));
      return w.configPath;
    },
    changes() {
      try {
        return readFileSync(w.changeLog, "utf8");
      } catch {
        return "";
      }
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
  mkdirSync(w.src, { recursive: true });
  mkdirSync(w.dest, { recursive: true });
  return w;
}

/** Writes files (relative path → content) under root, creating directories. */
export function writeTree(root: string, files: Record<string, string | Uint8Array>): void {
  for (const [rel, content] of Object.entries(files)) {
    const p = join(root, rel);
    mkdirSync(join(p, ".."), { recursive: true });
    writeFileSync(p, content);
  }
}

/** Every regular file under root, relative path → bytes (symlinks reported as "->target"). */
export function readTree(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel))) {
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(root, r));
      if (st.isDirectory()) walk(r);
      else if (st.isSymbolicLink()) out.set(r, "->symlink");
      else out.set(r, readFileSync(join(root, r)).toString("latin1"));
    }
  };
  walk("");
  return out;
}

/** Binary bytes (NULs throughout), not an RRD: name such files .bin, an .rrd that is not an RRD is held back as damaged. */
export function fakeBinary(size: number, seed: number): Uint8Array {
  const b = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    b[i] = i % 7 === 0 ? 0 : x & 0xff;
  }
  return b;
}
