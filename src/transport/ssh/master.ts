// One OpenSSH connection per target for the transport's life: a master (ControlMaster) that rsync's ssh, the move
// session and the auto probe run through, so a batch pays no ssh handshake and login (~0.6 s over a WAN).
import { existsSync, lstatSync, mkdtempSync, readdirSync, rmSync, unlinkSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import type { Target } from "../../config/types.ts";
import { sshCommand } from "../rsync/args.ts";
import { tiedToUs } from "../tied.ts";

/** What ssh said when the master could not be started (for explainFailure). */
export interface MasterFailure {
  code: number;
  stderr: string[];
}

const DIR_PREFIX = "rrdsync-mux-";
/** "<base>/rrdsync-mux-<pid>-XXXXXX/m<n>" plus the ".XXXXXXXXXXXXXXXX" ssh adds to it while binding */
const SOCKET_TAIL_BYTES = DIR_PREFIX.length + 10 + 1 + 6 + 2 + 6 + 17;
/** sun_path: 108 bytes on Linux, 104 on the BSDs and macOS; the smaller one, with its NUL */
const SUN_PATH_MAX = 103;
/** ConnectTimeout=15 covers the TCP connect; the key exchange and login get as long again */
const START_TIMEOUT_MS = 45_000;
const CHECK_TIMEOUT_MS = 5_000;
const KEEP_STDERR_LINES = 50;

/** Where socket directories go: $XDG_RUNTIME_DIR (private to the user), else $TMPDIR, else /tmp; one that fits sun_path. */
export function socketBase(env: Record<string, string | undefined>): string {
  for (const b of [env.XDG_RUNTIME_DIR, env.TMPDIR]) {
    if (b && isAbsolute(b) && Buffer.byteLength(b.replace(/\/+$/, "")) + SOCKET_TAIL_BYTES <= SUN_PATH_MAX) return b.replace(/\/+$/, "");
  }
  return "/tmp";
}

/**
 * Removes the socket directories that runs killed with -9 left behind: ours (same uid), named for a process that
 * no longer exists. Their masters died with them (parent-death signal), so only the directory and socket remain.
 */
export function cleanStaleSocketDirs(base: string): void {
  let names: string[];
  try {
    names = readdirSync(base);
  } catch {
    return;
  }
  const uid = process.getuid?.();
  for (const name of names) {
    const m = /^rrdsync-mux-(\d+)-[A-Za-z0-9]{6}$/.exec(name);
    if (!m || Number(m[1]) === process.pid) continue;
    try {
      const st = lstatSync(join(base, name));
      if (!st.isDirectory() || st.uid !== uid) continue;
      if (isAlive(Number(m[1]))) continue;
      rmSync(join(base, name), { recursive: true, force: true });
    } catch {
      // gone meanwhile, or not ours to remove
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * The master runs in the foreground as our child (`-M -N`, ControlPersist=no), tied to us by the parent-death
 * signal: it lives exactly as long as this object wants it and never outlives rrdsync, not even a kill -9. It
 * carries every guarantee of the direct connection (StrictHostKeyChecking=yes, BatchMode, the known_hosts file,
 * the key, the ciphers): the host key is checked when it connects, and the commands sent through it never open a
 * connection of their own unless the master is gone, and then with the same options. The socket sits in a 0700
 * directory of ours (mkdtemp), which is removed on close and at exit; OpenSSH also refuses a mux client of
 * another uid.
 */
export class SshMaster {
  private dir: string | null = null;
  private proc: ReturnType<typeof Bun.spawn> | null = null;
  private stderr: string[] = [];
  private starting: Promise<MasterFailure | null> | null = null;
  /** logins made (masters started), for tests and benches */
  started = 0;
  private readonly onExit = () => this.closeSync();

  constructor(
    private readonly t: Target,
    private readonly env: Record<string, string | undefined> = process.env,
  ) {}

  private get dest(): string {
    return `${this.t.user ? `${this.t.user}@` : ""}${this.t.host}`;
  }

  /** The socket's path (a ControlPath: ssh expands % in it, so a literal one is doubled), once started. */
  get controlPath(): string | null {
    return this.dir === null ? null : this.socket.replaceAll("%", "%%");
  }

  /** the master process is running (not proof that its connection is healthy: ensure() asks it) */
  get running(): boolean {
    return this.proc !== null && this.proc.exitCode === null;
  }

  /**
   * Each master gets a socket of its own: a replaced master that exits late removes its socket, which must not be
   * the new one's.
   */
  private get socket(): string {
    return join(this.dir as string, `m${this.started}`);
  }

  /**
   * The master, running: checked with `ssh -O check` when there is one, started when there is none or it died.
   * Resolves null when it runs, or with what ssh said when it could not be started (host key, login, network).
   */
  ensure(signal?: AbortSignal): Promise<MasterFailure | null> {
    this.starting ??= (async () => {
      if (this.proc && this.proc.exitCode === null && existsSync(this.socket) && (await this.check())) return null;
      return await this.start(signal);
    })().finally(() => {
      this.starting = null;
    });
    return this.starting;
  }

  /** The connection looks broken (a command through it failed at the ssh level): the next ensure() makes a new one. */
  discard(): void {
    this.proc?.kill("SIGTERM");
    this.proc = null;
  }

  private async check(): Promise<boolean> {
    const p = Bun.spawn(["ssh", "-o", `ControlPath=${this.controlPath}`, "-O", "check", "--", this.dest], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
    const timer = setTimeout(() => p.kill("SIGKILL"), CHECK_TIMEOUT_MS);
    const code = await p.exited;
    clearTimeout(timer);
    return code === 0;
  }

  private async start(signal?: AbortSignal): Promise<MasterFailure | null> {
    this.discard();
    if (Bun.which("ssh") === null) return { code: 127, stderr: ["ssh: not found (install openssh-client)"] };
    if (this.dir === null) {
      const base = socketBase(this.env);
      cleanStaleSocketDirs(base);
      try {
        this.dir = mkdtempSync(join(base, `${DIR_PREFIX}${process.pid}-`)); // mode 0700
      } catch (e) {
        return { code: -1, stderr: [`cannot create the ssh control socket directory in ${base}: ${(e as Error).message}`] };
      }
      process.on("exit", this.onExit);
    }
    try {
      unlinkSync(this.socket); // the replaced master's, unless it removed it itself
    } catch {
      // none
    }
    this.started++;
    const argv = [
      ...sshCommand(this.t),
      "-o", "ControlMaster=yes", "-o", `ControlPath=${this.controlPath}`, "-o", "ControlPersist=no",
      "-N", "-n", "--", this.dest,
    ];
    const proc = Bun.spawn(tiedToUs(argv), { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
    this.proc = proc;
    const lines: string[] = [];
    this.stderr = lines;
    const reading = (async () => {
      let buf = "";
      for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) {
        buf += Buffer.from(chunk).toString("latin1");
        const parts = buf.split(/\r?\n/);
        buf = parts.pop() ?? "";
        for (const l of parts) if (l.trim() !== "") lines.push(l);
        if (lines.length > KEEP_STDERR_LINES) lines.splice(0, lines.length - KEEP_STDERR_LINES);
      }
      if (buf.trim() !== "") lines.push(buf);
    })();
    // The socket appears once the host key was accepted and the login succeeded.
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!existsSync(this.socket)) {
      if (proc.exitCode !== null || signal?.aborted || Date.now() > deadline) {
        if (proc.exitCode === null) proc.kill("SIGKILL");
        const code = await proc.exited;
        await reading;
        if (this.proc === proc) this.proc = null;
        if (signal?.aborted) return { code: -1, stderr: ["interrupted"] };
        return { code, stderr: lines.length > 0 ? lines : [`ssh exited with code ${code}`] };
      }
      await Bun.sleep(5);
    }
    return null;
  }

  /** Stops the master and removes the socket directory. */
  async close(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (p && p.exitCode === null) {
      p.kill("SIGTERM");
      const timer = setTimeout(() => p.kill("SIGKILL"), 2000);
      await p.exited;
      clearTimeout(timer);
    }
    this.closeSync();
  }

  /** At exit (also process.exit after a second signal): no waiting, only what cannot be left behind. */
  private closeSync(): void {
    this.proc?.kill("SIGKILL");
    this.proc = null;
    if (this.dir !== null) rmSync(this.dir, { recursive: true, force: true });
    this.dir = null;
    process.off("exit", this.onExit);
  }
}
