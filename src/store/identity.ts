// What a state DB describes: the source it was read from and the destination (host, port, path) its files were
// delivered to. Its rows say "this file, as it is here, is on that replica": read against another source or
// another replica they are wrong (every file "synced" to a standby that never got it; renames run on a standby
// that holds other files). So the DB records its pair (meta "identity"), and a run whose config names another pair
// stops (exit 2) before anything is sent, moved or deleted, unless the admin asked for a rebuild.
import type { Config } from "../config/types.ts";
import { quoteName } from "../names.ts";

export const IDENTITY_KEY = "identity";

export interface StateIdentity {
  source: string;
  /** "" for a local destination; lower case (host names are) */
  host: string;
  /** null for a local destination */
  port: number | null;
  path: string;
}

/** The pair a target's config describes. The login name is not part of it: the same directory on the same standby. */
export function identityOf(config: Pick<Config, "sourceDir" | "target">): StateIdentity {
  const t = config.target;
  return { source: config.sourceDir, host: t.host.toLowerCase(), port: t.host === "" ? null : t.port, path: t.destDir };
}

export function sameIdentity(a: StateIdentity, b: StateIdentity): boolean {
  return a.source === b.source && a.host === b.host && a.port === b.port && a.path === b.path;
}

/** A recorded identity as read back (an older or hand-edited DB may hold anything). */
export function parseIdentity(v: unknown): StateIdentity | null {
  if (typeof v !== "object" || v === null) return null;
  const o = v as Record<string, unknown>;
  if (typeof o.source !== "string" || typeof o.host !== "string" || typeof o.path !== "string") return null;
  if (o.port !== null && typeof o.port !== "number") return null;
  return { source: o.source, host: o.host, port: o.port as number | null, path: o.path };
}

/** "/opt/opennms/share/rrd → standby:22:/srv/rrd" (escaped: these are printed). */
export function showIdentity(i: StateIdentity): string {
  const dest = i.host === "" ? `${quoted(i.path)} (local)` : `${i.host.includes(":") ? `[${i.host}]` : i.host}:${i.port}:${quoted(i.path)}`;
  return `${quoted(i.source)} → ${dest}`;
}

const quoted = (p: string) => (/^[\w./@:+-]+$/.test(p) ? p : quoteName(p));

/** How a DB's recorded identity compares with the config's. */
export type IdentityCheck = { kind: "match" } | { kind: "none" } | { kind: "differs"; had: StateIdentity };

export function compareIdentity(recorded: unknown, want: StateIdentity): IdentityCheck {
  if (recorded === null || recorded === undefined) return { kind: "none" };
  const had = parseIdentity(recorded);
  // A record we cannot read says the DB described something: not this pair, as far as we can tell.
  if (had === null) return { kind: "differs", had: { source: "?", host: "?", port: null, path: "?" } };
  return sameIdentity(had, want) ? { kind: "match" } : { kind: "differs", had };
}

/** The message and fix of a DB that describes another pair (exit 2: nothing was done). */
export function identityMismatch(stateFile: string, had: StateIdentity, want: StateIdentity): { message: string; hint: string } {
  const what = [had.source !== want.source ? "source" : "", had.host !== want.host || had.port !== want.port || had.path !== want.path ? "destination" : ""].filter(Boolean).join(" and ");
  return {
    message: `state_file ${quoted(stateFile)} describes ${showIdentity(had)}, but the config says ${showIdentity(want)} (another ${what}): ` +
      "its records are not true of this pair, so nothing was sent, moved or deleted",
    hint: "if the source or standby really changed, run once with --rebuild-state (the old state DB is kept aside as " +
      "<state_file>.replaced-<time>, and one full pass records the tree anew; files the standby already has cost only " +
      "rsync's quick check), or give this source and destination a state_file of their own",
  };
}
