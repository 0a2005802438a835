// Bench helpers: command-line options, and the login user. As root the benches log in as a plain-shell user, like
// a real standby's rsync user: root's profile here sources pyenv (~0.6 s per ssh login), which would make every
// ssh handshake cost 3× what it does in the field.
import { chownSync } from "node:fs";

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
