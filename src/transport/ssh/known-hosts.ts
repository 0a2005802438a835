// Pure: reads OpenSSH known_hosts text and judges a server's host key the way `StrictHostKeyChecking=yes` does.
import { createHash, createHmac, timingSafeEqual } from "node:crypto";

export interface KnownHostLine {
  marker: "" | "@revoked" | "@cert-authority";
  /** the hosts field as written: patterns, or one |1|salt|hash */
  hosts: string;
  keyType: string;
  key: Buffer;
  /** 1-based, for messages */
  line: number;
}

export type HostKeyVerdict =
  | { kind: "ok"; line: number }
  /** the host is known, with a different key of this type: possibly an attack */
  | { kind: "changed"; line: number }
  | { kind: "revoked"; line: number }
  /** no line for this host and key type; `otherTypes`: key types known for the host */
  | { kind: "unknown"; otherTypes: string[] };

/** The name a host is looked up by: "host" on port 22, "[host]:port" otherwise (as ssh and ssh-keyscan write it). */
export function lookupName(host: string, port: number): string {
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
}

export function parseKnownHosts(text: string): KnownHostLine[] {
  const out: KnownHostLine[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const raw = (lines[i] as string).trim();
    if (raw === "" || raw.startsWith("#")) continue;
    const fields = raw.split(/\s+/);
    let marker: KnownHostLine["marker"] = "";
    if (fields[0]?.startsWith("@")) {
      const m = fields.shift();
      if (m !== "@revoked" && m !== "@cert-authority") continue; // unknown markers: OpenSSH skips the line too
      marker = m;
    }
    const [hosts, keyType, b64] = fields;
    if (!hosts || !keyType || !b64) continue;
    const key = Buffer.from(b64, "base64");
    // A line whose blob does not name its own type is damaged; OpenSSH ignores it.
    if (key.length < 4 || blobType(key) !== keyType) continue;
    out.push({ marker, hosts, keyType, key, line: i + 1 });
  }
  return out;
}

/** The key type named inside an SSH public key blob ("ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"). */
export function blobType(blob: Buffer): string {
  if (blob.length < 4) return "";
  const n = blob.readUInt32BE(0);
  return n > 64 || 4 + n > blob.length ? "" : blob.subarray(4, 4 + n).toString("latin1");
}

/** "SHA256:…", as ssh and ssh-keygen -l print it. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/** OpenSSH's wildcard match: * and ? only, case-insensitive. */
function globMatch(pattern: string, name: string): boolean {
  const re = new RegExp(`^${pattern.toLowerCase().replace(/[.+^${}()|[\]\\]/g, "\\$&").replaceAll("*", ".*").replaceAll("?", ".")}$`, "s");
  return re.test(name);
}

/** Does a hosts field name this lookup name? Hashed (|1|salt|hash) or a comma list of patterns with !negations. */
export function hostsFieldMatches(field: string, name: string): boolean {
  if (field.startsWith("|1|")) {
    const [, , salt, hash] = field.split("|");
    if (!salt || !hash) return false;
    const want = Buffer.from(hash, "base64");
    const got = createHmac("sha1", Buffer.from(salt, "base64")).update(name).digest();
    return want.length === got.length && timingSafeEqual(want, got);
  }
  let matched = false;
  for (const p of field.split(",")) {
    if (p.startsWith("!")) {
      if (globMatch(p.slice(1), name)) return false; // a negated match wins over any positive one
    } else if (globMatch(p, name)) {
      matched = true;
    }
  }
  return matched;
}

/**
 * StrictHostKeyChecking=yes: a revoked key is refused even if also listed as good; a listed key of the same type
 * that differs means the key changed; no line for the host and this key type means unknown. @cert-authority
 * lines are not used (host certificates are not supported): such a host counts as unknown.
 */
export function judgeHostKey(lines: KnownHostLine[], name: string, key: Buffer): HostKeyVerdict {
  const type = blobType(key);
  const forHost = lines.filter((l) => l.marker !== "@cert-authority" && hostsFieldMatches(l.hosts, name));
  const revoked = forHost.find((l) => l.marker === "@revoked" && l.key.equals(key));
  if (revoked) return { kind: "revoked", line: revoked.line };
  const plain = forHost.filter((l) => l.marker === "");
  const same = plain.find((l) => l.key.equals(key));
  if (same) return { kind: "ok", line: same.line };
  const changed = plain.find((l) => l.keyType === type);
  if (changed) return { kind: "changed", line: changed.line };
  return { kind: "unknown", otherTypes: [...new Set(plain.map((l) => l.keyType))] };
}

/** ssh2's host key algorithm names for a key type (an RSA key signs with rsa-sha2-512/256, or ssh-rsa). */
export function algorithmsForKeyType(type: string): string[] {
  return type === "ssh-rsa" ? ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] : [type];
}

/**
 * The host key algorithms to offer, types already known for this host first, as OpenSSH orders them: otherwise a
 * server with both an ECDSA and an Ed25519 key could show the one not in known_hosts and be refused as unknown.
 */
export function preferKnownTypes(lines: KnownHostLine[], name: string, supported: string[]): string[] {
  const known = lines.filter((l) => l.marker === "" && hostsFieldMatches(l.hosts, name)).flatMap((l) => algorithmsForKeyType(l.keyType));
  const first = supported.filter((a) => known.includes(a));
  return [...first, ...supported.filter((a) => !first.includes(a))];
}

/**
 * The refusal both transports print, so an admin reads the same words whichever one met the key. `fp`: the
 * offered key's fingerprint, when the transport knows it (OpenSSH in batch mode does not print it for an unknown key).
 */
export function hostKeyRefusal(kind: "unknown" | "changed" | "revoked", t: { host: string; port: number; knownHostsFile: string }, fp?: string): string {
  const name = lookupName(t.host, t.port);
  const add = `ssh-keyscan -p ${t.port} ${t.host} >> ${t.knownHostsFile}`;
  const offered = fp ? ` (the standby offered ${fp})` : "";
  if (kind === "changed") {
    return `host key of ${name} has CHANGED: it does not match ${t.knownHostsFile}${offered}; nothing was sent. ` +
      `This can be an attack. Only if the standby's key was really replaced: ssh-keygen -R '${name}' -f ${t.knownHostsFile}, check the new fingerprint on the standby, then add it: ${add}`;
  }
  if (kind === "revoked") {
    return `host key of ${name} is REVOKED in ${t.knownHostsFile}${offered}; nothing was sent. Give the standby a new host key, check its fingerprint, then add it: ${add}`;
  }
  return `host key of ${name} is not in ${t.knownHostsFile}${offered}; nothing was sent (host keys are never accepted blindly). ` +
    `Check the fingerprint on the standby (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then add it: ${add}`;
}
