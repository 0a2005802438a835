// known_hosts parsing and judging, against keys and hashed lines made by the real ssh-keygen.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { blobType, fingerprint, hostKeyRefusal, hostsFieldMatches, judgeHostKey, lookupName, parseKnownHosts, preferKnownTypes } from "../../src/transport/ssh/known-hosts.ts";

let dir = "";
const keys: Record<string, { line: string; blob: Buffer; fp: string }> = {};

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "rrdsync-kh-"));
  for (const t of ["ed25519", "ecdsa", "rsa", "other"]) {
    const f = join(dir, `k_${t}`);
    const g = Bun.spawnSync(["ssh-keygen", "-q", "-t", t === "other" ? "ed25519" : t, "-N", "", "-C", "", "-f", f]);
    if (g.exitCode !== 0) throw new Error(g.stderr.toString());
    const line = readFileSync(`${f}.pub`, "utf8").trim().split(/\s+/).slice(0, 2).join(" ");
    const fp = Bun.spawnSync(["ssh-keygen", "-l", "-f", `${f}.pub`]).stdout.toString().split(/\s+/)[1] as string;
    keys[t] = { line, blob: Buffer.from(line.split(" ")[1] as string, "base64"), fp };
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const k = (t: string) => keys[t] as { line: string; blob: Buffer; fp: string };

test("lookup names: bare host on port 22, [host]:port otherwise, lower case", () => {
  expect(lookupName("Standby.example.org", 22)).toBe("standby.example.org");
  expect(lookupName("127.0.0.1", 2222)).toBe("[127.0.0.1]:2222");
});

test("blob types and SHA256 fingerprints match ssh-keygen -l", () => {
  expect(blobType(k("ed25519").blob)).toBe("ssh-ed25519");
  expect(blobType(k("ecdsa").blob)).toBe("ecdsa-sha2-nistp256");
  expect(blobType(k("rsa").blob)).toBe("ssh-rsa");
  for (const t of ["ed25519", "ecdsa", "rsa"]) expect(fingerprint(k(t).blob)).toBe(k(t).fp);
});

describe("host patterns", () => {
  test("plain, comma lists, wildcards, negation", () => {
    expect(hostsFieldMatches("standby,10.0.0.2", "10.0.0.2")).toBe(true);
    expect(hostsFieldMatches("standby", "standby2")).toBe(false);
    expect(hostsFieldMatches("*.example.org", "db.example.org")).toBe(true);
    expect(hostsFieldMatches("db?.example.org", "db1.example.org")).toBe(true);
    expect(hostsFieldMatches("*.example.org,!evil.example.org", "evil.example.org")).toBe(false);
    expect(hostsFieldMatches("[127.0.0.1]:2222", "[127.0.0.1]:2222")).toBe(true);
    expect(hostsFieldMatches("[127.0.0.1]:2222", "127.0.0.1")).toBe(false);
    expect(hostsFieldMatches("STANDBY", "standby")).toBe(true);
    // regex characters in a pattern are literal
    expect(hostsFieldMatches("a.b", "axb")).toBe(false);
  });

  test("hashed names written by ssh-keygen -H", () => {
    const f = join(dir, "hashed");
    writeFileSync(f, `[127.0.0.1]:2222 ${k("ed25519").line}\nstandby ${k("rsa").line}\n`);
    expect(Bun.spawnSync(["ssh-keygen", "-q", "-H", "-f", f]).exitCode).toBe(0);
    const lines = parseKnownHosts(readFileSync(f, "utf8"));
    expect(lines.every((l) => l.hosts.startsWith("|1|"))).toBe(true);
    expect(judgeHostKey(lines, "[127.0.0.1]:2222", k("ed25519").blob)).toEqual({ kind: "ok", line: 1 });
    expect(judgeHostKey(lines, "standby", k("rsa").blob).kind).toBe("ok");
    expect(judgeHostKey(lines, "[127.0.0.1]:2223", k("ed25519").blob).kind).toBe("unknown");
  });
});

describe("verdicts, as StrictHostKeyChecking=yes", () => {
  const name = "[127.0.0.1]:2222";
  test("the listed key is accepted, for each key type", () => {
    const lines = parseKnownHosts(["ed25519", "ecdsa", "rsa"].map((t) => `${name} ${k(t).line}`).join("\n"));
    for (const t of ["ed25519", "ecdsa", "rsa"]) expect(judgeHostKey(lines, name, k(t).blob).kind).toBe("ok");
  });

  test("another key of the same type: changed; a host known only by other types: unknown (naming them)", () => {
    const lines = parseKnownHosts(`${name} ${k("other").line}\n${name} ${k("rsa").line}\n`);
    expect(judgeHostKey(lines, name, k("ed25519").blob)).toEqual({ kind: "changed", line: 1 });
    expect(judgeHostKey(parseKnownHosts(`${name} ${k("rsa").line}`), name, k("ed25519").blob)).toEqual({ kind: "unknown", otherTypes: ["ssh-rsa"] });
  });

  test("@revoked wins, even over a good line for the same key; a wildcard host revokes everywhere", () => {
    const lines = parseKnownHosts(`${name} ${k("ed25519").line}\n@revoked ${name} ${k("ed25519").line}\n`);
    expect(judgeHostKey(lines, name, k("ed25519").blob)).toEqual({ kind: "revoked", line: 2 });
    expect(judgeHostKey(parseKnownHosts(`@revoked * ${k("rsa").line}`), "standby", k("rsa").blob).kind).toBe("revoked");
  });

  test("comments, blank lines, @cert-authority and damaged lines are not keys", () => {
    const text = `# comment\n\n@cert-authority ${name} ${k("ed25519").line}\n${name} ssh-ed25519 AAAA-not-base64\n${name} ssh-rsa ${k("ed25519").line.split(" ")[1]}\n`;
    expect(parseKnownHosts(text)).toEqual([expect.objectContaining({ marker: "@cert-authority" })]);
    expect(judgeHostKey(parseKnownHosts(text), name, k("ed25519").blob).kind).toBe("unknown");
  });

  test("host key algorithms: the types known for the host first", () => {
    const lines = parseKnownHosts(`${name} ${k("rsa").line}\nother ${k("ecdsa").line}`);
    const all = ["ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"];
    expect(preferKnownTypes(lines, name, all)).toEqual(["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa", "ssh-ed25519", "ecdsa-sha2-nistp256"]);
    expect(preferKnownTypes([], name, all)).toEqual(all);
  });

  test("the refusal says what, where and the command that adds the key", () => {
    const t = { host: "127.0.0.1", port: 2222, knownHostsFile: "/k" };
    expect(hostKeyRefusal("unknown", t, k("ed25519").fp)).toContain(`is not in /k (the standby offered ${k("ed25519").fp})`);
    expect(hostKeyRefusal("unknown", t)).toContain("ssh-keyscan -p 2222 127.0.0.1 >> /k");
    expect(hostKeyRefusal("changed", t)).toContain("has CHANGED");
    expect(hostKeyRefusal("revoked", t)).toContain("is REVOKED in /k");
  });
});
