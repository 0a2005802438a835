// Turns parsed JSON (snake_case, the seed's schema plus our keys) into a checked, camelCase Config.
import { parseMaxDelete } from "./max-delete.ts";
import { isAbsolute, join, normalize } from "node:path";
import { ConfigError } from "../errors.ts";
import { checkHost, checkUser, HOST_HINT, USER_HINT } from "./dest.ts";
import type { LogLevel } from "./types.ts";

type Obj = Record<string, unknown>;

/** One key's rule: checks `value` (never undefined) and returns the cleaned value. */
type Rule = (value: unknown, where: string, ctx: Ctx) => unknown;
interface Schema {
  [key: string]: Rule | Schema;
}
export interface Ctx {
  origin: string;
  home: string;
  warnings: string[];
}

const show = (v: unknown): string => (typeof v === "string" ? JSON.stringify(v) : v === null ? "null" : Array.isArray(v) ? "a list" : typeof v === "object" ? "an object" : String(v));
const fail = (ctx: Ctx, where: string, problem: string, hint?: string): never => {
  throw new ConfigError(`${ctx.origin}: ${where}`, problem, hint);
};

export const bool: Rule = (v, where, ctx) =>
  typeof v === "boolean" ? v : fail(ctx, where, `expected true or false, got ${show(v)}`, "write true or false without quotes");

export function int(min: number, max: number): Rule {
  return (v, where, ctx) => {
    if (typeof v === "number" && Number.isInteger(v) && v >= min && v <= max) return v;
    const range = max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `${min}–${max}`;
    return fail(ctx, where, `expected an integer ${range}, got ${show(v)}`);
  };
}

export function seconds(min: number): Rule {
  return (v, where, ctx) =>
    typeof v === "number" && Number.isFinite(v) && v >= min ? v : fail(ctx, where, `expected a number of seconds ≥ ${min}, got ${show(v)}`);
}

export function days(min: number): Rule {
  return (v, where, ctx) =>
    typeof v === "number" && Number.isFinite(v) && v >= min ? v : fail(ctx, where, `expected a number of days ≥ ${min}, got ${show(v)}`, "0 keeps the history for ever (max_history_bytes still bounds it)");
}

export const str: Rule = (v, where, ctx) => (typeof v === "string" ? v : fail(ctx, where, `expected a string, got ${show(v)}`));

export function oneOf(values: string[], aliases: Record<string, string> = {}): Rule {
  return (v, where, ctx) => {
    if (typeof v === "string") {
      for (const c of [v, v.toUpperCase(), v.toLowerCase()]) {
        if (values.includes(c)) return c;
        if (aliases[c]) return aliases[c];
      }
    }
    return fail(ctx, where, `expected one of ${values.join(", ")}, got ${show(v)}`);
  };
}

/** "" stays "" (meaning: not set); "~/x" expands; anything else must be absolute. */
export function path(opts: { allowEmpty: boolean }): Rule {
  return (v, where, ctx) => {
    const s = str(v, where, ctx) as string;
    if (s === "") return opts.allowEmpty ? "" : fail(ctx, where, "must not be empty");
    if (s.includes("\0")) fail(ctx, where, "contains a NUL byte");
    const expanded = s === "~" ? ctx.home : s.startsWith("~/") ? join(ctx.home, s.slice(2)) : s;
    if (!isAbsolute(expanded)) fail(ctx, where, `expected an absolute path, got ${show(s)}`, `write it from the root, e.g. "/${s.replace(/^\.\//, "")}"`);
    const n = normalize(expanded);
    return n.length > 1 ? n.replace(/\/+$/, "") : n;
  };
}

/**
 * A name suffix like ".rrd". An entry that cannot be part of a file name ("/", NUL, a control character such as
 * a newline), that is only the dot, or that is a glob ("*", "*.rrd": the list holds suffixes, not patterns)
 * would match nothing, or everything, without saying so.
 */
export const extensions: Rule = (v, where, ctx) => {
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
};

/** remote_host: "" (a local destination), or a name ssh can only read as a host; "[::1]" is taken as "::1". */
const hostName: Rule = (v, where, ctx) => {
  const s = (str(v, where, ctx) as string).replace(/^\[(.*)\]$/, "$1");
  if (s === "") return s;
  const problem = checkHost(s);
  return problem ? fail(ctx, where, `${show(s)} ${problem}`, HOST_HINT) : s;
};

const userName: Rule = (v, where, ctx) => {
  const s = str(v, where, ctx) as string;
  const problem = s === "" ? null : checkUser(s);
  return problem ? fail(ctx, where, `${show(s)} ${problem}`, USER_HINT) : s;
};

/** ssh -c: a comma list of cipher names ("+", "-" or "^" before the first change OpenSSH's default list). */
const ciphers: Rule = (v, where, ctx) => {
  const s = str(v, where, ctx) as string;
  if (s === "" || /^[+^-]?[A-Za-z0-9@._-]+(,[A-Za-z0-9@._-]+)*$/.test(s)) return s;
  return fail(ctx, where, `expected a comma-separated list of cipher names, got ${show(s)}`, 'like "aes128-gcm@openssh.com,aes256-ctr" (no spaces; ssh -Q cipher lists them), or "" for ssh\'s choice');
};

/** rsync keeps --bwlimit in KiB/s as a C int: a larger value wraps round to nonsense. */
export const MAX_BWLIMIT = 2_147_483_647;

/** "127.0.0.1:9717", "[::1]:9717", "0.0.0.0:9717" (a host is required: never every interface by accident); "" = off. */
const listenAddress: Rule = (v, where, ctx) => {
  const s = str(v, where, ctx) as string;
  if (s === "") return null;
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : 0;
  if (!m || port < 1 || port > 65535) return fail(ctx, where, `expected "HOST:PORT" like "127.0.0.1:9717", got ${show(v)}`, 'use "127.0.0.1:9717" for a local Prometheus or node_exporter, "0.0.0.0:9717" for every interface, "" for off');
  return { host: (m[1] ?? m[2]) as string, port };
};

const maxDelete: Rule = (v, where, ctx) =>
  parseMaxDelete(v) ?? fail(ctx, where, `expected a number of files or a percentage like "10%", got ${show(v)}`);

export const LOG_LEVELS: LogLevel[] = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];

/** A target: remote_sync's keys (also each element of "targets"). */
const REMOTE_SYNC: Schema = {
  remote_user: userName,
  remote_host: hostName,
  remote_dest_dir: path({ allowEmpty: false }),
  ssh_key_path: path({ allowEmpty: true }),
  port: int(1, 65535),
  known_hosts_file: path({ allowEmpty: false }),
  ssh_ciphers: ciphers,
  transport: oneOf(["rsync", "sftp", "auto"]),
  sftp_parallel_files: int(1, 64),
  ssh_passphrase_file: path({ allowEmpty: true }),
};

/** The whole accepted schema: anything else is warned about as an unknown key. */
export const SCHEMA: Schema = {
  source_dir: path({ allowEmpty: false }),
  state_file: path({ allowEmpty: true }),
  remote_sync: REMOTE_SYNC,
  targets: (v, where, ctx) => {
    if (!Array.isArray(v)) return fail(ctx, where, `expected a list of targets like [{"remote_host": "standby2", "remote_dest_dir": "/path"}], got ${show(v)}`);
    return v.map((t, i) => checkAgainstSchema(t, ctx, { ...REMOTE_SYNC, name: str, state_file: path({ allowEmpty: false }) }, `${where}[${i}]`));
  },
  logging: {
    log_file: path({ allowEmpty: true }),
    log_level: oneOf(LOG_LEVELS, { WARN: "WARNING", FATAL: "CRITICAL" }),
  },
  delete: bool,
  max_delete: maxDelete,
  retry: {
    initial: seconds(0.1),
    max: seconds(1),
  },
  debounce_time: seconds(0),
  batch_collect_time: seconds(0),
  max_delay: seconds(0),
  rescan_interval: seconds(0),
  poll_interval: seconds(0),
  monitored_extensions: extensions,
  rsync_options: {
    archive: bool,
    compress: bool,
    verbose: bool,
    update: bool,
    checksum: bool,
    partial: bool,
    bwlimit: int(0, MAX_BWLIMIT),
    itemize_changes: bool,
    stats: bool,
  },
  change_tracking: {
    enabled: bool,
    backup_dir: path({ allowEmpty: true }),
    change_log_file: path({ allowEmpty: true }),
    diff_tool: oneOf(["difflib", "diff", "builtin"]),
    keep_versions: int(1, 100_000),
    max_backup_bytes: int(0, Number.MAX_SAFE_INTEGER),
    max_log_bytes: int(0, Number.MAX_SAFE_INTEGER),
    keep_logs: int(1, 1000),
    first_sync_entries: oneOf(["auto", "every", "summary"]),
    rrd_updates: oneOf(["rollup", "every"]),
    rrd_summary_interval: seconds(1),
    rrd_stale_steps: int(0, 1_000_000),
    keep_history: days(0),
    max_history_bytes: int(0, Number.MAX_SAFE_INTEGER),
  },
  rrd_hold: {
    attempts: int(0, 1000),
    delay: seconds(0),
  },
  metrics_listen: listenAddress,
  metrics_file: path({ allowEmpty: true }),
  batch_max_files: int(1, 10_000_000),
  slice_max_files: int(1, 10_000_000),
  batch_max_bytes: int(1, Number.MAX_SAFE_INTEGER),
};

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
