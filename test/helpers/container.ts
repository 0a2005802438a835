// A throwaway machine that runs systemd as its init, for testing the unit the real way: this host's own root as the
// read-only lower layer of an overlay (so every installed tool is there), a temp dir as the writable layer, booted
// with systemd-nspawn to basic.target (no getty, no sshd, no database starting up), sharing the host's network so
// the daemon inside reaches the test's sshd on 127.0.0.1. The host writes into it through `root`.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface ExecResult {
  code: number;
  out: string;
  err: string;
}

/** null when a container can be booted here; else why not (the tests that need one are skipped with it). */
export function containerUnsupported(): string | null {
  if (process.getuid?.() !== 0) return "needs root";
  for (const tool of ["systemd-nspawn", "nsenter", "mount", "umount"]) if (Bun.which(tool) === null) return `no ${tool} (apt-get install systemd-container util-linux)`;
  if (!existsSync("/lib/systemd/systemd") && !existsSync("/usr/lib/systemd/systemd")) return "no systemd to boot (apt-get install systemd)";
  if (!existsSync("/sys/fs/cgroup")) return "no cgroup file system";
  if (!readFileSync("/proc/filesystems", "utf8").includes("overlay")) return "no overlayfs in this kernel";
  return null;
}

async function run(argv: string[], timeoutMs = 60_000): Promise<ExecResult> {
  const p = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const t = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(t);
  return { code, out, err };
}

export class Container {
  private nspawn: ReturnType<typeof Bun.spawn> | null = null;
  private initPid = 0;
  private log = "";

  private constructor(
    private readonly dir: string,
    /** the container's / as the host sees it: write files here before or after boot */
    readonly root: string,
  ) {}

  /** Mounts the overlay; call boot() after writing what systemd should find at start. */
  static async create(): Promise<Container> {
    const dir = mkdtempSync(join(tmpdir(), "rrdsync-container-"));
    const c = new Container(dir, join(dir, "root"));
    for (const d of ["upper", "work", "root"]) mkdirSync(join(dir, d));
    const m = await run(["mount", "-t", "overlay", "overlay", "-o", `lowerdir=/,upperdir=${dir}/upper,workdir=${dir}/work`, c.root]);
    if (m.code !== 0) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`cannot mount the overlay: ${m.err}`);
    }
    return c;
  }

  async boot(timeoutMs = 60_000): Promise<void> {
    const p = Bun.spawn(["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--console=passive", "-D", this.root, "-b", "systemd.unit=basic.target"], {
      stdout: "pipe", stderr: "pipe", stdin: "ignore",
    });
    this.nspawn = p;
    void (async () => {
      for await (const chunk of p.stderr as ReadableStream<Uint8Array>) this.log += new TextDecoder().decode(chunk);
    })();
    const t0 = Date.now();
    for (;;) {
      if (p.exitCode !== null) throw new Error(`systemd-nspawn exited ${p.exitCode}: ${this.log}`);
      if (Date.now() - t0 > timeoutMs) throw new Error(`the container did not finish booting within ${timeoutMs} ms: ${this.log}`);
      // nspawn's first child may be a short-lived helper: the init is the child whose name is systemd
      const kids = (await run(["pgrep", "-P", String(p.pid)])).out.trim().split("\n").filter(Boolean);
      this.initPid = Number(kids.find((k) => {
        try {
          return readFileSync(`/proc/${k}/comm`, "utf8").trim() === "systemd";
        } catch {
          return false;
        }
      }) ?? 0);
      if (this.initPid !== 0) {
        const s = (await this.exec(["systemctl", "is-system-running"])).out.trim();
        if (s === "running" || s === "degraded") return;
      }
      await Bun.sleep(200);
    }
  }

  /** Runs a command inside (all of the container's namespaces). */
  exec(argv: string[], timeoutMs = 60_000): Promise<ExecResult> {
    return run(["nsenter", "-t", String(this.initPid), "-a", "--", ...argv], timeoutMs);
  }

  /** `systemctl show UNIT -p …` as a record. */
  async show(unit: string, props: string[]): Promise<Record<string, string>> {
    const r = await this.exec(["systemctl", "show", unit, ...props.flatMap((p) => ["-p", p])]);
    return Object.fromEntries(r.out.trim().split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
  }

  async destroy(): Promise<void> {
    if (this.nspawn !== null && this.nspawn.exitCode === null) {
      await this.exec(["systemctl", "poweroff"], 10_000).catch(() => undefined);
      const nspawn = this.nspawn;
      const t = setTimeout(() => {
        // still up: end the container's PID namespace at its root, and nspawn with it
        if (this.initPid !== 0) Bun.spawnSync(["kill", "-KILL", String(this.initPid)]);
        nspawn.kill("SIGKILL");
      }, 20_000);
      await this.nspawn.exited;
      clearTimeout(t);
    }
    const u = await run(["umount", this.root]);
    if (u.code !== 0) await run(["umount", "-l", this.root]);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
