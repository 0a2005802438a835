// The layering the docs promise (docs/internals.md, "Layers"), checked on every import of src/: a module never
// imports at run time from a layer above its own, and engine/policy/ stays pure (no I/O modules, no clock, no
// globals of the runtime), so a decision can be tested as a table without a file system or a standby.
import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";

const SRC = join(import.meta.dir, "../../src");

/** Lower rank = higher layer. Files at src/'s root (errors, names, text, escape, safe-files, log, libc…) are the floor. */
const RANK: Record<string, number> = {
  "main.ts": 0, cli: 1, install: 2, watch: 2, metrics: 3, engine: 4, source: 5, track: 5, store: 5, transport: 5, config: 6,
};
const ROOT_FILES = 7;

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []));
}

function layerOf(path: string): { name: string; rank: number } {
  const rel = relative(SRC, path);
  const first = rel.split("/")[0] as string;
  if (rel === "main.ts") return { name: "main.ts", rank: 0 };
  if (!rel.includes("/")) return { name: `src/${rel}`, rank: ROOT_FILES };
  return { name: first, rank: RANK[first] ?? -1 };
}

/** Relative imports with whether each is type-only (erased at build: no run-time dependency). */
function imports(text: string): Array<{ spec: string; typeOnly: boolean }> {
  const out: Array<{ spec: string; typeOnly: boolean }> = [];
  for (const m of text.matchAll(/^\s*(import|export)(\s+type)?\s[^;]*?\sfrom\s+"([^"]+)"/gms)) out.push({ spec: m[3] as string, typeOnly: m[2] !== undefined });
  for (const m of text.matchAll(/import\("([^"]+)"\)/g)) out.push({ spec: m[1] as string, typeOnly: false });
  return out;
}

test("every layer of src/ is known to the rule (a new folder needs its place in it)", () => {
  const unknown = files(SRC).map(layerOf).filter((l) => l.rank < 0).map((l) => l.name);
  expect([...new Set(unknown)]).toEqual([]);
});

test("no run-time import goes up a layer (cli → watch → metrics → engine → source/track/store/transport → config)", () => {
  const upward: string[] = [];
  for (const f of files(SRC)) {
    const from = layerOf(f);
    for (const i of imports(readFileSync(f, "utf8"))) {
      if (!i.spec.startsWith(".") || i.typeOnly) continue;
      const target = normalize(join(dirname(f), i.spec));
      if (!target.startsWith(SRC)) continue; // package.json (the version)
      const to = layerOf(target);
      if (to.rank < from.rank) upward.push(`${relative(SRC, f)} → ${relative(SRC, target)}`);
    }
  }
  expect(upward).toEqual([]);
});

test("engine/policy/ is pure: no I/O module, no clock, no runtime globals; it imports only types and other policy", () => {
  const impure: string[] = [];
  const dir = join(SRC, "engine/policy");
  for (const f of files(dir)) {
    const text = readFileSync(f, "utf8");
    const code = text.replace(/\/\/.*$/gm, "").replace(/\/\*[\s\S]*?\*\//g, "");
    for (const i of imports(text)) {
      const target = i.spec.startsWith(".") ? normalize(join(dirname(f), i.spec)) : i.spec;
      if (!i.typeOnly && !(target.startsWith(dir) || target === join(SRC, "text.ts") || target === join(SRC, "names.ts"))) impure.push(`${relative(SRC, f)} imports ${i.spec}`);
    }
    for (const g of ["Date.now", "performance.now", "new Date(", "Bun.", "process.", "setTimeout", "require("]) {
      if (code.includes(g)) impure.push(`${relative(SRC, f)} uses ${g}`);
    }
  }
  expect(impure).toEqual([]);
});
