// --since/--until for `rrdsync log` and --at for `restore`: what an admin types, to epoch milliseconds.
import { ExitCode, UserError } from "../errors.ts";

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/**
 * Accepts an ISO date or date-time in local time ("2024-12-12", "2024-12-12 15:05", "2024-12-12T15:05:40"), a UTC
 * one ("…Z"), an age ("30m", "2h", "3d", "1w" ago; "-3d" means the same), "now", "today" and "yesterday" (local
 * midnight). A date that does not exist (month 13, February 30, 24:00) is refused, never rolled over.
 */
export function parseWhen(text: string, option: string, now = Date.now()): number {
  const t = text.trim();
  const age = /^-?(\d+(?:\.\d+)?)\s*([smhdw])$/.exec(t);
  if (age) return now - Number(age[1]) * (UNITS[age[2] as string] as number);
  if (t === "now") return now;
  if (t === "today" || t === "yesterday") {
    const d = new Date(now);
    d.setHours(0, 0, 0, 0);
    return d.getTime() - (t === "yesterday" ? UNITS.d as number : 0);
  }
  const m = /^(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d{1,3}))?)?)?(Z)?$/.exec(t);
  if (m) {
    const n = (i: number) => (m[i] === undefined ? 0 : Number(m[i]));
    const ms = m[7] === undefined ? 0 : Number(m[7].padEnd(3, "0")); // ".5" is 500 ms
    const parts = [n(1), n(2) - 1, n(3), n(4), n(5), n(6), ms] as const;
    // Date rolls "2024-13-45" over into 2025; read the fields back from a UTC date to see that they exist.
    const check = new Date(Date.UTC(...parts));
    const exists = check.getUTCFullYear() === parts[0] && check.getUTCMonth() === parts[1] && check.getUTCDate() === parts[2] && n(4) < 24 && n(5) < 60 && n(6) < 60;
    if (!exists) {
      throw new UserError(`${option} ${JSON.stringify(text)}: no such date or time`, ExitCode.Usage, "months are 01–12, days exist in their month, hours 00–23, minutes and seconds 00–59");
    }
    return m[8] ? Date.UTC(...parts) : new Date(...parts).getTime();
  }
  throw new UserError(`${option} ${JSON.stringify(text)}: not a time`, ExitCode.Usage,
    'use a date ("2024-12-12", "2024-12-12 15:05"), an age ("30m", "2h", "3d", "1w"), "today" or "yesterday"');
}
