// The value rules a config key can have: each checks one value and names what it accepts, so the same rule both
// validates (with the key path in its message) and describes the key in the generated reference (docs/config.md).
import { isAbsolute, join, normalize } from "node:path";
import { ConfigError } from "../errors.ts";
import { checkHost, checkUser, HOST_HINT, USER_HINT } from "./dest.ts";
import { type MaxDelete, parseMaxDelete } from "./max-delete.ts";
import type { LogLevel } from "./types.ts";

export interface Ctx {
  origin: string;
  home: string;
  warnings: string[];
}

/** One key's rule: checks `value` (never undefined) and returns the cleaned value; `accepts` says what it takes, for the docs. */
export interface Rule<T = unknown> {
  (value: unknown, where: string, ctx: Ctx): T;
  readonly accepts: string;
}

function rule<T>(accepts: string, check: (value: unknown, where: string, ctx: Ctx) => T): Rule<T> {
  return Object.assign(check, { accepts });
}

export const show = (v: unknown): string => (typeof v === "string" ? JSON.stringify(v) : v === null ? "null" : Array.isArray(v) ? "a list" : typeof v === "object" ? "an object" : String(v));
export const fail = (ctx: Ctx, where: string, problem: string, hint?: string): never => {
  throw new ConfigError(`${ctx.origin}: ${where}`, problem, hint);
};
/**
 * How the reference writes a number: 10000000 as 10,000,000 is easier to count (a port stays 65535). Not toLocaleString: the rules are
 * made when the config module loads, and Intl's first use loads ICU's data (+2 MiB and ~10% of `--version`'s CPU).
 */
const num = (n: number) => (n < 100_000 ? String(n) : String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ","));

export const bool: Rule<boolean> = rule("`true` or `false`", (v, where, ctx) =>
  typeof v === "boolean" ? v : fail(ctx, where, `expected true or false, got ${show(v)}`, "write true or false without quotes"));

export function int(min: number, max: number): Rule<number> {
  const range = max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `${min}–${max}`;
  return rule(`integer ${max === Number.MAX_SAFE_INTEGER ? `≥ ${num(min)}` : `${num(min)}–${num(max)}`}`, (v, where, ctx) => {
    if (typeof v === "number" && Number.isInteger(v) && v >= min && v <= max) return v;
    return fail(ctx, where, `expected an integer ${range}, got ${show(v)}`);
  });
}

export function seconds(min: number): Rule<number> {
  return rule(`seconds ≥ ${min}`, (v, where, ctx) =>
    typeof v === "number" && Number.isFinite(v) && v >= min ? v : fail(ctx, where, `expected a number of seconds ≥ ${min}, got ${show(v)}`));
}

export function days(min: number): Rule<number> {
  return rule(`days ≥ ${min}`, (v, where, ctx) =>
    typeof v === "number" && Number.isFinite(v) && v >= min ? v : fail(ctx, where, `expected a number of days ≥ ${min}, got ${show(v)}`, "0 keeps the history for ever (max_history_bytes still bounds it)"));
}

export const str: Rule<string> = rule("string", (v, where, ctx) => (typeof v === "string" ? v : fail(ctx, where, `expected a string, got ${show(v)}`)));

export function oneOf<const V extends string>(values: readonly V[], aliases: Record<string, V> = {}): Rule<V> {
  return rule(values.map((x) => `\`"${x}"\``).join(", "), (v, where, ctx) => {
    if (typeof v === "string") {
      for (const c of [v, v.toUpperCase(), v.toLowerCase()]) {
        if ((values as readonly string[]).includes(c)) return c as V;
        if (aliases[c]) return aliases[c];
      }
    }
    return fail(ctx, where, `expected one of ${values.join(", ")}, got ${show(v)}`);
  });
}

/** "" stays "" (meaning: not set); "~/x" expands; anything else must be absolute. */
export function path(opts: { allowEmpty: boolean }): Rule<string> {
  return rule(opts.allowEmpty ? 'absolute path, or `""`' : "absolute path", (v, where, ctx) => {
    const s = str(v, where, ctx);
    if (s === "") return opts.allowEmpty ? "" : fail(ctx, where, "must not be empty");
    if (s.includes("\0")) fail(ctx, where, "contains a NUL byte");
    const expanded = s === "~" ? ctx.home : s.startsWith("~/") ? join(ctx.home, s.slice(2)) : s;
    if (!isAbsolute(expanded)) fail(ctx, where, `expected an absolute path, got ${show(s)}`, `write it from the root, e.g. "/${s.replace(/^\.\//, "")}"`);
    const n = normalize(expanded);
    return n.length > 1 ? n.replace(/\/+$/, "") : n;
  });
}

/**
 * A name suffix like ".rrd". An entry that cannot be part of a file name ("/", NUL, a control character such as
 * a newline), that is only the dot, or that is a glob ("*", "*.rrd": the list holds suffixes, not patterns)
 * would match nothing, or everything, without saying so.
 */
export const extensions: Rule<string[]> = rule("list of name suffixes", (v, where, ctx) => {
  if (!Array.isArray(v)) return fail(ctx, where, `expected a list like [".rrd", ".txt"], got ${show(v)}`);
  return v.map((e, i) => {
    const at = `${where}[${i}]`;
    if (typeof e !== "string" || e === "") return fail(ctx, at, `expected an extension like ".rrd", got ${show(e)}`);
    if (/[\x00-\x1f\x7f/]/.test(e)) return fail(ctx, at, `${show(e)} holds "/" or a control character, which no file name ends with`, 'write the suffix alone, like ".rrd"');
    if (/[*?]/.test(e)) return fail(ctx, at, `${show(e)} is a pattern; the list holds name suffixes`, `write ${JSON.stringify(`.${e.replace(/^[*?.]+/, "") || "rrd"}`)}, or use [] for every file`);
    const ext = e.startsWith(".") ? e : `.${e}`;
    if (ext === ".") return fail(ctx, at, '"." alone is not an extension', 'write the suffix, like ".rrd", or use [] for every file');
    return ext;
  });
});

/** remote_host: "" (a local destination), or a name ssh can only read as a host; "[::1]" is taken as "::1". */
export const hostName: Rule<string> = rule('host name or address, or `""`', (v, where, ctx) => {
  const s = str(v, where, ctx).replace(/^\[(.*)\]$/, "$1");
  if (s === "") return s;
  const problem = checkHost(s);
  return problem ? fail(ctx, where, `${show(s)} ${problem}`, HOST_HINT) : s;
});

export const userName: Rule<string> = rule('user name, or `""`', (v, where, ctx) => {
  const s = str(v, where, ctx);
  const problem = s === "" ? null : checkUser(s);
  return problem ? fail(ctx, where, `${show(s)} ${problem}`, USER_HINT) : s;
});

/** ssh -c: a comma list of cipher names ("+", "-" or "^" before the first change OpenSSH's default list). */
export const ciphers: Rule<string> = rule('cipher list, or `""`', (v, where, ctx) => {
  const s = str(v, where, ctx);
  if (s === "" || /^[+^-]?[A-Za-z0-9@._-]+(,[A-Za-z0-9@._-]+)*$/.test(s)) return s;
  return fail(ctx, where, `expected a comma-separated list of cipher names, got ${show(s)}`, 'like "aes128-gcm@openssh.com,aes256-ctr" (no spaces; ssh -Q cipher lists them), or "" for ssh\'s choice');
});

/** rsync keeps --bwlimit in KiB/s as a C int: a larger value wraps round to nonsense. */
export const MAX_BWLIMIT = 2_147_483_647;

/** "127.0.0.1:9717", "[::1]:9717", "0.0.0.0:9717" (a host is required: never every interface by accident); "" = off. */
export const listenAddress: Rule<{ host: string; port: number } | null> = rule('`"HOST:PORT"`, or `""`', (v, where, ctx) => {
  const s = str(v, where, ctx);
  if (s === "") return null;
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : 0;
  if (!m || port < 1 || port > 65535) return fail(ctx, where, `expected "HOST:PORT" like "127.0.0.1:9717", got ${show(v)}`, 'use "127.0.0.1:9717" for a local Prometheus or node_exporter, "0.0.0.0:9717" for every interface, "" for off');
  return { host: (m[1] ?? m[2]) as string, port };
});

export const maxDelete: Rule<MaxDelete> = rule('count, or percentage `"N%"`', (v, where, ctx) =>
  parseMaxDelete(v) ?? fail(ctx, where, `expected a number of files or a percentage like "10%", got ${show(v)}`));

/** "targets": a list of objects; validate.ts checks each element against the element's keys. */
export const objectList: Rule<unknown[]> = rule("list of objects", (v, where, ctx) =>
  Array.isArray(v) ? v : fail(ctx, where, `expected a list of targets like [{"remote_host": "standby2", "remote_dest_dir": "/path"}], got ${show(v)}`));

export const LOG_LEVELS: LogLevel[] = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];
