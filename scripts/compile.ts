// The one place that knows how rrdsync is compiled: the `bun build --compile` flags and the build facts embedded
// in the binary (version, commit, date, target), used by build.sh (the host's dist/rrdsync) and release.ts.
// Usage: bun scripts/compile.ts [--target bun-linux-arm64] [--outfile dist/rrdsync]
import { mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import pkg from "../package.json" with { type: "json" };

export const REPO = resolve(import.meta.dir, "..");

/** What `rrdsync --version` prints besides the version (src/version.ts reads it as RRDSYNC_BUILD). */
export interface BuildInfo {
  /** short hash, "-dirty" when tracked files differ from it; "unknown" without git */
  commit: string;
  /** UTC day of the build (SOURCE_DATE_EPOCH when set, so a rebuild can say the same) */
  date: string;
  /** linux-x64, linux-x64-baseline, linux-arm64 */
  target: string;
}

/**
 * --minify: smaller embedded source, and so less to parse at start. --bytecode: precompiled JS starts faster, which
 * every cron run pays (docs/benchmarks.md: "Binary size and start time" has the figures). ssh2's native addons cannot load under
 * Bun; left in, they would be embedded and unpacked to /tmp at every start. --no-compile-autoload-*: a compiled Bun
 * program otherwise reads .env and bunfig.toml from its working directory at start, so `rrdsync` run by root in a
 * directory someone else can write would take their environment, or run their code (bunfig's preload).
 */
export const FLAGS = [
  "--compile", "--minify", "--bytecode", "--sourcemap=none", "--external", "cpu-features", "--external", "*.node",
  "--no-compile-autoload-dotenv", "--no-compile-autoload-bunfig",
];

/** Bun's target names for the release; `null` target = the host (what build.sh makes). */
export const RELEASE_TARGETS = ["linux-x64", "linux-x64-baseline", "linux-arm64"] as const;

/** The binary's entry points: the program, and the full pass's walk worker (new Worker() finds it in the binary). */
export const ENTRY_POINTS = ["src/main.ts", "src/engine/scan-worker.ts"];

export function compileArgv(o: { target: string | null; outfile: string; info: BuildInfo; flags?: string[] }): string[] {
  return [
    process.execPath, "build", ...ENTRY_POINTS.map((e) => join(REPO, e)), ...(o.flags ?? FLAGS),
    ...(o.target === null ? [] : [`--target=bun-${o.target}`]),
    "--define", `RRDSYNC_BUILD=${JSON.stringify(o.info)}`,
    "--outfile", o.outfile,
  ];
}

function git(args: string[]): string | null {
  try {
    const r = Bun.spawnSync(["git", "-C", REPO, ...args], { stdout: "pipe", stderr: "ignore" });
    return r.exitCode === 0 ? r.stdout.toString().trim() : null;
  } catch {
    return null; // no git on this machine (a source tarball being built)
  }
}

export function buildInfo(target: string): BuildInfo {
  const hash = git(["rev-parse", "--short=7", "HEAD"]);
  // Tracked changes only, as `git describe --dirty` counts them: an untracked scratch file does not make a build dirty.
  const dirty = hash !== null && (git(["status", "--porcelain", "--untracked-files=no"]) ?? "") !== "";
  const epoch = Number(process.env.SOURCE_DATE_EPOCH);
  const date = new Date(Number.isFinite(epoch) && epoch > 0 ? epoch * 1000 : Date.now()).toISOString().slice(0, 10);
  return { commit: hash === null ? "unknown" : dirty ? `${hash}-dirty` : hash, date, target };
}

/** The host's target name, as --version prints it (a build without --target runs on this machine's CPU). */
export function hostTarget(): string {
  return `${process.platform}-${process.arch}`;
}

/** Compiles one binary; throws with bun's own message when it fails. */
export function compile(o: { target: string | null; outfile: string; flags?: string[] }): BuildInfo {
  const info = buildInfo(o.target ?? hostTarget());
  mkdirSync(dirname(o.outfile), { recursive: true });
  const r = Bun.spawnSync(compileArgv({ ...o, info }), { cwd: REPO, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`bun build for ${info.target} failed:\n${r.stderr.toString()}${r.stdout.toString()}`);
  return info;
}

export const VERSION = pkg.version;

if (import.meta.main) {
  const args = process.argv.slice(2);
  const arg = (flag: string) => {
    const i = args.indexOf(flag);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const target = arg("--target")?.replace(/^bun-/, "") ?? null;
  const outfile = resolve(arg("--outfile") ?? join(REPO, "dist/rrdsync"));
  try {
    const info = compile({ target, outfile });
    console.log(`${outfile}: rrdsync ${VERSION} (${info.commit}, ${info.date}, ${info.target}), ${(Bun.file(outfile).size / 1048576).toFixed(1)} MiB`);
  } catch (e) {
    console.error((e as Error).message);
    process.exit(1);
  }
}
