// Parses --dest: "[user@]host:/abs/path" (also "[::1]:/path") over SSH, or "/abs/path" for a local directory.
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
  const at = rest.indexOf("@");
  const colonBeforeAt = rest.indexOf(":");
  if (at > 0 && (colonBeforeAt === -1 || at < colonBeforeAt)) {
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
  checkHostish(where, "host", host);
  if (user) checkHostish(where, "user", user);
  return { user, host, destDir: path };
}

/** A host or user that starts with "-" or holds whitespace would be read by ssh as an option. */
export function checkHostish(where: string, what: string, value: string): void {
  if (value.startsWith("-") || /[\s\0]/.test(value) || value === "") {
    throw new ConfigError(where, `${what} ${JSON.stringify(value)} is not a valid ${what} name`, `a ${what} may not be empty, start with "-" or contain spaces`);
  }
}
