// Bench helpers: command-line options, and the login user. As root the benches log in as a plain-shell user, like
// a real standby's rsync user: root's profile here sources pyenv (~0.6 s per ssh login), which would make every
// ssh handshake cost 3× what it does in the field.
import { chownSync, existsSync, writeFileSync } from "node:fs";
import type { SshdFixture } from "../../test/helpers/sshd.ts";
import { join, resolve } from "node:path";

export interface BenchUser {
  name: string;
  uid: number;
  gid: number;
}

export function benchUser(): BenchUser | null {
  if (process.getuid?.() !== 0) return null;
  const name = "rrdsync-bench";
  if (Bun.spawnSync(["id", "-u", name]).exitCode !== 0) {
    const r = Bun.spawnSync(["useradd", "--system", "--create-home", "--home-dir", `/var/lib/${name}`, "--shell", "/bin/sh", name]);
    if (r.exitCode !== 0) return null;
  }
  // A --system account has a locked password ("!"), and sshd without PAM refuses locked accounts even for keys.
  Bun.spawnSync(["usermod", "-p", "*", name]);
  const id = (flag: string) => Number(new TextDecoder().decode(Bun.spawnSync(["id", flag, name]).stdout).trim());
  return { name, uid: id("-u"), gid: id("-g") };
}

/** Lets the bench user write into `dir` (a destination root). */
export function giveTo(user: BenchUser | null, dir: string): void {
  if (user) chownSync(dir, user.uid, user.gid);
}

/** `--flag value` from the command line, or the default. */
export function opt(flag: string, dflt: string): string {
  const args = process.argv.slice(2);
  const i = args.indexOf(flag);
  return i >= 0 ? (args[i + 1] ?? dflt) : dflt;
}

/** The rrdsync to time: --bin, else the compiled dist/rrdsync, else the source run by Bun. */
export function rrdsyncBin(): string[] {
  const path = resolve(opt("--bin", join(import.meta.dir, "../../dist/rrdsync")));
  return existsSync(path) ? [path] : [process.execPath, resolve(import.meta.dir, "../../src/main.ts")];
}

/**
 * Where destinations go: --dest-root, else tmpfs when there is one (a disk's write-back of 600 MB makes seconds
 * of noise, and both sides write to the same place anyway), else beside the bench's work dir.
 */
export function destRootFor(name: string, work: string): string {
  return resolve(opt("--dest-root", existsSync("/dev/shm") ? `/dev/shm/${name}` : join(work, "dest")));
}

/** A bench run's config: `src` to `dest` over the loopback sshd, state and logs under `dir`; `extra` on top. */
export function writeBenchConfig(dir: string, o: { src: string; dest: string; sshd: SshdFixture; transport?: string; extra?: Record<string, unknown> }): string {
  const cfg = join(dir, "config.json");
  const { sshd } = o;
  writeFileSync(cfg, JSON.stringify({
    source_dir: o.src,
    state_file: join(dir, "state.db"),
    remote_sync: { remote_user: sshd.user, remote_host: "127.0.0.1", port: sshd.port, remote_dest_dir: o.dest, ssh_key_path: sshd.clientKey, known_hosts_file: sshd.knownHosts, transport: o.transport ?? "rsync" },
    logging: { log_file: join(dir, "rrdsync.log"), log_level: process.env.BENCH_LOG_LEVEL ?? "INFO" },
    change_tracking: { backup_dir: join(dir, "backup"), change_log_file: join(dir, "change_log.txt") },
    ...o.extra,
  }));
  return cfg;
}

/** The plain ssh command line the benches give rsync -a (the same options rrdsync's transfers use). */
export function benchSshCommand(fx: SshdFixture): string {
  return `ssh -p ${fx.port} -i ${fx.clientKey} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${fx.knownHosts}`;
}

/** Runs argv to completion: seconds taken and the ssh logins it made (a failure throws with its stderr's tail). */
export async function timedRun(argv: string[], sshd: SshdFixture): Promise<{ s: number; logins: number }> {
  const before = sshd.logins();
  const t = performance.now();
  const p = Bun.spawn(argv, { stdout: "ignore", stderr: "pipe" });
  const err = await new Response(p.stderr).text();
  const code = await p.exited;
  const s = (performance.now() - t) / 1000;
  if (code !== 0) throw new Error(`${argv.join(" ")} exited ${code}: ${err.slice(-2000)}`);
  await Bun.sleep(50); // let sshd's log line for the last login arrive
  return { s, logins: sshd.logins() - before };
}
