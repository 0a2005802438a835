// Parses --dest: "[user@]host:/abs/path" (also "[::1]:/path") over SSH, or "/abs/path" for a local directory; and
// the rules every host and user name follows, wherever it comes from.
import { isAbsolute } from "node:path";
import { ConfigError } from "../errors.ts";

export interface DestSpec {
  user: string;
  host: string;
  destDir: string;
}

export function parseDest(spec: string, where = "--dest"): DestSpec {
  const hint = "use [user@]host:/absolute/path for SSH, or /absolute/path for a local directory";
  if (spec === "") throw new ConfigError(where, "is empty", hint);
  if (isAbsolute(spec)) return { user: "", host: "", destDir: spec };
  let user = "";
  let rest = spec;
  const at = rest.lastIndexOf("@", rest.startsWith("[") ? 0 : rest.indexOf(":"));
  if (at > 0) {
    user = rest.slice(0, at);
    rest = rest.slice(at + 1);
  }
  let host: string;
  let path: string;
  if (rest.startsWith("[")) {
    const close = rest.indexOf("]:");
    if (close < 0) throw new ConfigError(where, `cannot read "${spec}"`, hint);
    host = rest.slice(1, close);
    path = rest.slice(close + 2);
  } else {
    const colon = rest.indexOf(":");
    if (colon <= 0) throw new ConfigError(where, `"${spec}" is neither host:/path nor an absolute local path`, hint);
    host = rest.slice(0, colon);
    path = rest.slice(colon + 1);
  }
  if (!isAbsolute(path)) throw new ConfigError(where, `the remote path "${path}" must be absolute`, hint);
  const hostProblem = checkHost(host);
  if (hostProblem) throw new ConfigError(where, `host ${JSON.stringify(host)} ${hostProblem}`, HOST_HINT);
  const userProblem = user === "" ? null : checkUser(user);
  if (userProblem) throw new ConfigError(where, `user ${JSON.stringify(user)} ${userProblem}`, USER_HINT);
  return { user, host, destDir: path };
}

export const HOST_HINT = "a host name (standby.example.org), an IPv4 address or an IPv6 address (::1), or a Host alias from ~/.ssh/config";
export const USER_HINT = "the login name on the standby, or leave it empty for ssh's default";

/** A character for a message: visible, even when it is a space or a control character. */
function showChar(c: string): string {
  return /[\x21-\x7e]/.test(c) ? `"${c}"` : c === " " ? "a space" : `U+${(c.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, "0")}`;
}

/**
 * What is wrong with a host name, or null. Letters, digits and ". - _ : %" (an IPv6 address, its zone) are what
 * host names, addresses and ssh_config aliases use; anything else ("/", "`", ";", a space) is a typo or an attack,
 * and a leading "-" would be read by ssh as an option.
 */
export function checkHost(host: string): string | null {
  if (host === "") return "is empty";
  if (host.startsWith("-")) return 'starts with "-" (ssh would read it as an option)';
  const bad = [...host].find((c) => !/[A-Za-z0-9._:%-]/.test(c));
  return bad === undefined ? null : `contains ${showChar(bad)}, which no host name has`;
}

/** What is wrong with a login name, or null: no option-like start, no ":" or "/" (they split host and path). */
export function checkUser(user: string): string | null {
  if (user.startsWith("-")) return 'starts with "-" (ssh would read it as an option)';
  const bad = [...user].find((c) => /[\s\x00-\x1f\x7f:/]/.test(c));
  return bad === undefined ? null : `contains ${showChar(bad)}, which a login name cannot hold here`;
}
