// The release as an admin gets it: `bun run release` makes three binaries and a SHA256SUMS that `sha256sum -c`
// accepts, also from a clean clone; each says what it is (--version); the baseline binary runs on a CPU without
// AVX2 (qemu-x86_64 -cpu Nehalem, checked to refuse AVX2) and the arm64 one under qemu-aarch64, each through
// --help, the demo and a daemon start (sd_notify through bun:ffi); and none needs a newer glibc than docs/install.md states.
// Where qemu is missing (scripts/setup.sh --test installs it) those tests are skipped and their names say why.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { writeAvx2Probe } from "../helpers/avx2-probe.ts";
import { NotifySocket } from "../helpers/notify-socket.ts";
import { readTree } from "../helpers/world.ts";

setDefaultTimeout(180_000); // emulated CPUs: a demo takes ~10 s under qemu, a clean-clone release ~15 s

const REPO = resolve(import.meta.dir, "../..");
const VERSION = (JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { version: string }).version;
/** The newest glibc symbol version any release binary may import: docs/install.md's "Releases" section states it. */
const GLIBC_MAX = [2, 17];
/** Debian/Ubuntu's aarch64 glibc for qemu-user (package libc6-arm64-cross). */
const ARM64_SYSROOT = "/usr/aarch64-linux-gnu";

const qemuX86 = Bun.which("qemu-x86_64-static") ?? Bun.which("qemu-x86_64");
const qemuArm = Bun.which("qemu-aarch64-static") ?? Bun.which("qemu-aarch64");
const armSysroot = existsSync(join(ARM64_SYSROOT, "lib/ld-linux-aarch64.so.1"));
const objdump = Bun.which("objdump");
const git = Bun.which("git") !== null && existsSync(join(REPO, ".git"));
const why = (missing: boolean, what: string) => (missing ? ` (SKIPPED: ${what})` : "");
const noArm = qemuArm === null || !armSysroot;
const noArmWhy = why(noArm, `no ${qemuArm === null ? "qemu-aarch64" : `aarch64 glibc in ${ARM64_SYSROOT}`}: apt-get install qemu-user-static libc6-arm64-cross`);
const noX86Why = why(qemuX86 === null, "no qemu-x86_64 to emulate a CPU without AVX2: apt-get install qemu-user-static");

let work = "";
let out = "";
const binary = (target: string) => join(out, `rrdsync-${VERSION}-${target}`);

async function run(argv: string[], o: { cwd?: string; env?: Record<string, string> } = {}): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn(argv, { cwd: o.cwd, stdout: "pipe", stderr: "pipe", stdin: "ignore", env: { ...process.env, NO_COLOR: "1", ...o.env } });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out: stdout, err: stderr };
}

/** What --version must say for a build of this checkout today: the short hash, "-dirty" with tracked changes. */
async function expectedCommit(dir: string): Promise<string> {
  const hash = (await run(["git", "-C", dir, "rev-parse", "--short=7", "HEAD"])).out.trim();
  const dirty = (await run(["git", "-C", dir, "status", "--porcelain", "--untracked-files=no"])).out.trim() !== "";
  return dirty ? `${hash}-dirty` : hash;
}
const today = () => new Date().toISOString().slice(0, 10);

/** A one-file wrapper that runs the binary through qemu, for RRDSYNC_BIN (the demo spawns one path). */
function wrapper(name: string, argv: string[]): string {
  const path = join(work, name);
  writeFileSync(path, `#!/bin/sh\nexec ${argv.map((a) => `'${a}'`).join(" ")} "$@"\n`, { mode: 0o755 });
  return path;
}
const underNehalem = () => wrapper("baseline-nehalem", [qemuX86 as string, "-cpu", "Nehalem", binary("linux-x64-baseline")]);
const underArm = () => wrapper("arm64", [qemuArm as string, "-L", ARM64_SYSROOT, binary("linux-arm64")]);

/** --help, a page of the embedded docs, the demo (its replica checked file by file) and a daemon that reports READY=1, WATCHDOG=1 and STOPPING=1. */
async function smoke(bin: string, target: string): Promise<void> {
  const v = await run([bin, "--version"]);
  expect(v.out).toStartWith(`rrdsync ${VERSION} (`);
  expect(v.out).toEndWith(`, ${target})\n`);
  const h = await run([bin, "--help"]);
  expect(h.code).toBe(0);
  for (const s of ["Exit codes", "install", "uninstall", "--watch"]) expect(h.out).toContain(s);
  // the docs and the man page are embedded in every target's binary
  const docs = await run([bin, "help", "troubleshooting"]);
  expect({ code: docs.code, head: docs.out.split("\n")[0] }).toEqual({ code: 0, head: "WHEN THINGS GO WRONG" });

  const demoDir = join(work, `demo-${target}`);
  const demo = await run([process.execPath, join(REPO, "scripts/demo.ts")], { env: { RRDSYNC_BIN: bin, RRDSYNC_DEMO_DIR: demoDir } });
  expect({ code: demo.code, err: demo.err }).toEqual({ code: 0, err: expect.any(String) });
  expect(demo.out).toContain("demo: replica in");
  expect(readTree(join(demoDir, "replica"))).toEqual(readTree(join(demoDir, "source")));

  const sock = new NotifySocket(`@rrdsync-release-${process.pid}-${target}`);
  const p = Bun.spawn([bin, "--watch", "--source", join(demoDir, "source"), "--dest", join(demoDir, "replica"), "--state", join(demoDir, "state", "rrdsync.db")], {
    stdout: "ignore", stderr: "pipe", env: { ...process.env, NOTIFY_SOCKET: sock.name, WATCHDOG_USEC: "4000000" },
  });
  try {
    await sock.waitFor("READY=1", 60_000);
    await sock.waitFor("WATCHDOG=1", 10_000);
    p.kill("SIGTERM");
    expect(await p.exited).toBe(0);
    await sock.waitFor("STOPPING=1", 5_000);
  } finally {
    p.kill("SIGKILL");
    sock.close();
  }
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "rrdsync-release-"));
  out = join(work, "release");
  const r = await run([process.execPath, join(REPO, "scripts/release.ts"), "--out", out]);
  if (r.code !== 0) throw new Error(`release failed: ${r.err}${r.out}`);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("bun run release", () => {
  test("three binaries and a SHA256SUMS that sha256sum -c accepts", async () => {
    const sums = readFileSync(join(out, "SHA256SUMS"), "utf8");
    expect(sums.trim().split("\n").map((l) => l.split("  ")[1])).toEqual(["linux-x64", "linux-x64-baseline", "linux-arm64"].map((t) => `rrdsync-${VERSION}-${t}`));
    const c = await run(["sha256sum", "-c", "SHA256SUMS"], { cwd: out });
    expect({ code: c.code, out: c.out }).toEqual({ code: 0, out: ["linux-x64", "linux-x64-baseline", "linux-arm64"].map((t) => `rrdsync-${VERSION}-${t}: OK\n`).join("") });
  });

  test("--version: version, commit, build date, target", async () => {
    const commit = git ? await expectedCommit(REPO) : "commit unknown";
    const x64 = await run([binary("linux-x64"), "--version"]);
    expect(x64.out).toBe(`rrdsync ${VERSION} (${commit}, ${today()}, linux-x64)\n`);
    expect((await run([binary("linux-x64-baseline"), "-V"])).out).toBe(`rrdsync ${VERSION} (${commit}, ${today()}, linux-x64-baseline)\n`);
  });

  test.skipIf(!git)(`from a clean clone; and from a tree without git, the version says so${why(!git, "not a git checkout")}`, async () => {
    const clone = join(work, "clone");
    expect((await run(["git", "clone", "--quiet", REPO, clone])).code).toBe(0);
    expect((await run([process.execPath, "install", "--frozen-lockfile"], { cwd: clone })).code).toBe(0);
    const r = await run([process.execPath, "run", "release"], { cwd: clone });
    expect(r.code).toBe(0);
    expect(r.err).not.toContain("warning");
    const c = await run(["sha256sum", "-c", "SHA256SUMS"], { cwd: join(clone, "dist/release") });
    expect(c.code).toBe(0);
    expect(c.out.match(/: OK$/gm)?.length).toBe(3);
    const head = (await run(["git", "-C", clone, "rev-parse", "--short=7", "HEAD"])).out.trim();
    expect((await run([join(clone, `dist/release/rrdsync-${VERSION}-linux-x64`), "--version"])).out).toBe(`rrdsync ${VERSION} (${head}, ${today()}, linux-x64)\n`);

    // a source tarball (no .git): it builds, and says it does not know its commit
    const bare = join(work, "no-git");
    const skip = [join(clone, ".git"), join(clone, "dist")];
    cpSync(clone, bare, { recursive: true, filter: (p) => !skip.some((s) => p === s || p.startsWith(`${s}/`)) });
    // GIT_DIR: git must not find a repository above the copy either
    const b = await run(["bash", "scripts/build.sh"], { cwd: bare, env: { GIT_DIR: "/nonexistent" } });
    expect(b.code).toBe(0);
    expect((await run([join(bare, "dist/rrdsync"), "--version"])).out).toBe(`rrdsync ${VERSION} (commit unknown, ${today()}, linux-x64)\n`);
  });

  test.skipIf(objdump === null)(`no binary imports a glibc symbol newer than ${GLIBC_MAX.join(".")}${why(objdump === null, "no objdump: apt-get install binutils")}`, async () => {
    for (const t of ["linux-x64", "linux-x64-baseline", "linux-arm64"]) {
      const d = await run([objdump as string, "-T", binary(t)]);
      expect(d.code).toBe(0);
      const versions = [...d.out.matchAll(/GLIBC_(\d+)\.(\d+)/g)].map((m) => [Number(m[1]), Number(m[2])] as const);
      expect(versions.length).toBeGreaterThan(10);
      const max = versions.reduce((a, b) => (b[0] > a[0] || (b[0] === a[0] && b[1] > a[1]) ? b : a));
      expect({ target: t, glibc: max.join(".") }).toEqual({ target: t, glibc: GLIBC_MAX.join(".") });
    }
  });

  test("the binary ignores .env and bunfig.toml in its working directory (root may run it anywhere)", async () => {
    const cwd = join(work, "hostile-cwd");
    mkdirSync(cwd);
    const marker = join(cwd, "preload-ran");
    writeFileSync(join(cwd, ".env"), `RRDSYNC_CONFIG=${join(cwd, "evil.json")}\n`);
    writeFileSync(join(cwd, "bunfig.toml"), 'preload = ["./evil.ts"]\n');
    writeFileSync(join(cwd, "evil.ts"), `require("node:fs").writeFileSync(${JSON.stringify(marker)}, "ran");\n`);
    // the planted files would work on Bun itself: proof that they are live bait, not a typo
    await run([process.execPath, "-e", "1"], { cwd });
    expect(existsSync(marker)).toBe(true);
    rmSync(marker);
    expect(process.env.RRDSYNC_CONFIG).toBeUndefined(); // .env never overrides a variable that is set
    const v = await run([binary("linux-x64"), "--version"], { cwd });
    expect(v.code).toBe(0);
    const st = await run([binary("linux-x64"), "status"], { cwd });
    expect(st.err).not.toContain("evil.json");
    expect(existsSync(marker)).toBe(false);
  });

  test(`the linux-x64 binary: --help, the demo, a daemon`, async () => {
    await smoke(binary("linux-x64"), "linux-x64");
  });

  test(`the baseline binary, here: --help, the demo, a daemon`, async () => {
    await smoke(binary("linux-x64-baseline"), "linux-x64-baseline");
  });

  test.skipIf(qemuX86 === null)(`the baseline binary on a CPU without AVX2 (qemu -cpu Nehalem): --help, the demo, a daemon${noX86Why}`, async () => {
    // First: this emulated CPU really refuses AVX2 (a probe that executes one AVX2 instruction dies of SIGILL).
    const probe = join(work, "avx2-probe");
    writeAvx2Probe(probe);
    expect((await run([qemuX86 as string, "-cpu", "Haswell", probe])).code).toBe(0);
    expect((await run([qemuX86 as string, "-cpu", "Nehalem", probe])).code).not.toBe(0);
    await smoke(underNehalem(), "linux-x64-baseline");
  });

  test.skipIf(noArm)(`the arm64 binary under qemu-aarch64: --help, the demo, a daemon${noArmWhy}`, async () => {
    const file = await run(["file", "-b", binary("linux-arm64")]);
    if (file.code === 0) expect(file.out).toContain("ARM aarch64");
    await smoke(underArm(), "linux-arm64");
  });
});

// Printed once so a CI log says why the emulated smoke tests did not run.
if (noArm || qemuX86 === null) {
  console.warn(`release smoke tests: ${[noArm ? `arm64 skipped${noArmWhy}` : "", qemuX86 === null ? `no-AVX2 skipped${noX86Why}` : ""].filter(Boolean).join("; ")}`);
}
