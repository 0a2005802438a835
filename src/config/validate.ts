// Turns parsed JSON (snake_case, the seed's schema plus our keys) into a checked, camelCase-ready object: each key
// checked by the rule its declaration in keys.ts gives it, unknown keys warned about with a suggestion.
import { KEYS, type KeyDecl } from "./keys.ts";
import { type Ctx, fail, type Rule, show } from "./rules.ts";

export type { Ctx } from "./rules.ts";
export { oneOf, path } from "./rules.ts";

type Obj = Record<string, unknown>;

interface Schema {
  [key: string]: Rule | Schema;
}

/** The keys under `prefix` ("" for the top level, "remote_sync", "targets[]") as a nested schema, in declaration order. */
function schemaOf(prefix: string): Schema {
  const out: Schema = {};
  for (const [path, decl] of Object.entries(KEYS) as Array<[string, KeyDecl]>) {
    if (prefix !== "" && !path.startsWith(`${prefix}.`)) continue;
    const parts = (prefix === "" ? path : path.slice(prefix.length + 1)).split(".");
    if (parts.some((p) => p.endsWith("[]"))) continue; // a list element's key: part of its list's rule
    let level = out;
    for (const p of parts.slice(0, -1)) level = (level[p] ??= {}) as Schema;
    level[parts[parts.length - 1] as string] = decl.items ? listRule(decl.rule, decl.items) : decl.rule;
  }
  return out;
}

/** A list of objects ("targets"): the list itself by its rule, then each element against the keys `items` name. */
function listRule(list: Rule, items: string[]): Rule {
  let element: Schema | undefined;
  return Object.assign((v: unknown, where: string, ctx: Ctx) => {
    element ??= Object.assign({}, ...items.map(schemaOf)) as Schema;
    return (list(v, where, ctx) as unknown[]).map((t, i) => checkAgainstSchema(t, ctx, element, `${where}[${i}]`));
  }, { accepts: list.accepts });
}

/** The whole accepted schema: anything else is warned about as an unknown key. */
export const SCHEMA: Schema = schemaOf("");

/** Checks `raw` against the schema; returns the same shape with cleaned values, unknown keys dropped (and warned). */
export function checkAgainstSchema(raw: unknown, ctx: Ctx, schema: Schema = SCHEMA, prefix = ""): Obj {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    return fail(ctx, prefix || "(top level)", `expected an object { … }, got ${show(raw)}`);
  }
  const out: Obj = {};
  for (const [key, value] of Object.entries(raw as Obj)) {
    const where = prefix ? `${prefix}.${key}` : key;
    const rule = schema[key];
    if (rule === undefined) {
      const guess = closest(key, Object.keys(schema));
      ctx.warnings.push(`${ctx.origin}: ${where}: unknown key, ignored${guess ? ` (did you mean "${guess}"?)` : ""}`);
      continue;
    }
    if (value === null) continue; // null reads as "not set": the default applies
    out[key] = typeof rule === "function" ? rule(value, where, ctx) : checkAgainstSchema(value, ctx, rule, where);
  }
  return out;
}

/** The known key within edit distance 2 (typos), if any. */
export function closest(key: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const k of known) {
    const d = editDistance(key.toLowerCase(), k);
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min((prev[j] as number) + 1, (cur[j - 1] as number) + 1, (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length] as number;
}
