// `bun run release`: the binaries an admin copies onto a server, one per target, and their SHA256SUMS.
// Bun cross-compiles from this one machine; the other targets' runtimes come through the npm registry
// (@oven/bun-linux-*), cached in ~/.bun/install/cache after the first build.
// Usage: bun scripts/release.ts [--out DIR]   (default dist/release; the directory is emptied first)
import { readdirSync, rmSync, writeFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { sha256File } from "../src/install/sha256.ts";
import { compile, REPO, RELEASE_TARGETS, VERSION } from "./compile.ts";

export function releaseName(target: string): string {
  return `rrdsync-${VERSION}-${target}`;
}

/** `sha256sum` format: "<hex>  <name>" (two spaces: text mode), so `sha256sum -c SHA256SUMS` accepts it. */
async function sha256Line(path: string): Promise<string> {
  return `${await sha256File(path)}  ${basename(path)}\n`;
}

if (import.meta.main) {
  const i = process.argv.indexOf("--out");
  const out = resolve(i >= 0 ? (process.argv[i + 1] ?? "") : join(REPO, "dist/release"));
  // Stale binaries of an older version must not end up beside the new ones (or in SHA256SUMS).
  rmSync(out, { recursive: true, force: true });
  let sums = "";
  let commit = "";
  for (const target of RELEASE_TARGETS) {
    const file = join(out, releaseName(target));
    try {
      const info = compile({ target, outfile: file });
      commit = info.commit;
      console.log(`${file}  (${info.commit}, ${info.date}, ${(Bun.file(file).size / 1048576).toFixed(1)} MiB)`);
    } catch (e) {
      console.error(`release: ${(e as Error).message}`);
      console.error("  hint: the other targets' Bun runtimes are fetched from the npm registry on the first build; check the network or npm's registry setting");
      process.exit(1);
    }
    sums += await sha256Line(file);
  }
  writeFileSync(join(out, "SHA256SUMS"), sums);
  if (commit === "unknown") console.warn("release: warning: built without git (no commit known); --version says so");
  if (commit.endsWith("-dirty")) console.warn(`release: warning: built from a tree with uncommitted changes; --version says ${commit}`);
  console.log(`${join(out, "SHA256SUMS")}: ${readdirSync(out).length - 1} binaries; verify with: cd ${out} && sha256sum -c SHA256SUMS`);
}
