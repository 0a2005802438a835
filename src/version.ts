// What this build is: the version line of --version, and whether we run as the compiled binary or from source.
import pkg from "../package.json" with { type: "json" };

/** Set by scripts/compile.ts (`bun build --define`); absent when Bun runs src/main.ts from a checkout. */
declare const RRDSYNC_BUILD: { commit: string; date: string; target: string } | undefined;

export const VERSION: string = pkg.version;

/** `rrdsync 0.2.0 (abc1234, 2026-12-01, linux-arm64)`; from source: `rrdsync 0.2.0 (source, bun 1.4.5, linux-x64)`. */
export function versionLine(): string {
  const b = typeof RRDSYNC_BUILD === "undefined" ? null : RRDSYNC_BUILD;
  if (b === null) return `rrdsync ${VERSION} (${isCompiled() ? "built without scripts/compile.ts" : "source"}, bun ${Bun.version}, ${process.platform}-${process.arch})`;
  return `rrdsync ${VERSION} (${b.commit === "unknown" ? "commit unknown" : b.commit}, ${b.date}, ${b.target})`;
}

/** A `bun build --compile` binary: its entry point lives in Bun's embedded file system. */
export function isCompiled(): boolean {
  return Bun.main.startsWith("/$bunfs/");
}
