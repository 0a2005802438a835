// What ssh's and rsync's stderr mean, for people: the root cause, the host key refusals, what to do.
import { statfsSync } from "node:fs";
import type { Target } from "../../config/types.ts";
import { showLatin1 } from "../../names.ts";
import { hostKeyRefusal } from "../ssh/known-hosts.ts";
import { sshCommand } from "./args.ts";
import { runChild } from "./proc.ts";

const UNKNOWN_HOST = /Host key verification failed|No [A-Z0-9-]+ host key is known/i;
/** Causes that name what is wrong on the replica's file system: worth more than anything printed after them. */
const FILE_SYSTEM_CAUSE = /No space left on device|Disk quota exceeded|Read-only file system|File too large|Operation not permitted|Permission denied/;
/** Echoes of an earlier failure: the receiver died, so the sender's pipe broke (never the cause itself). */
const ECHO = /Broken pipe|connection unexpectedly closed|error in rsync protocol data stream|^rsync error: /;

const latin1ToText = showLatin1;

/**
 * The line that says why rsync failed. rsync prints the receiver's error first, then the sender's "write error:
 * Broken pipe" and a summary ("rsync error: error in file IO (code 11) at receiver.c…"): the first real error
 * wins, a file-system cause (a full disk) over everything else.
 */
export function rootCause(stderr: string[]): string {
  const lines = stderr.map((l) => l.trim()).filter((l) => l !== "");
  const line = lines.find((l) => FILE_SYSTEM_CAUSE.test(l) && !ECHO.test(l)) ?? lines.find((l) => /^rsync:/.test(l) && !ECHO.test(l)) ?? lines.at(-1) ?? "";
  return latin1ToText(line);
}

/** Turns ssh's and rsync's stderr into one message that says what failed and what to do. */
export function explainFailure(code: number, stderr: string[], t: Target, offeredKey?: string): string {
  const text = stderr.join("\n");
  const hostPort = `${t.host.includes(":") ? `[${t.host}]` : t.host}:${t.port}`;
  if (/REVOKED HOST KEY/i.test(text)) return hostKeyRefusal("revoked", t, offeredKey);
  if (/REMOTE HOST IDENTIFICATION HAS CHANGED/i.test(text)) return hostKeyRefusal("changed", t, /(SHA256:[A-Za-z0-9+/]+)/.exec(text)?.[1]);
  if (UNKNOWN_HOST.test(text)) return hostKeyRefusal("unknown", t, offeredKey);
  const conn = /(Connection refused|Connection timed out|No route to host|Could not resolve hostname[^\n]*|Network is unreachable|Connection closed by [^\n]*|Connection reset by peer)/i.exec(text);
  if (conn) return `cannot connect to ${hostPort}: ${conn[1]}`;
  if (/Permission denied \(publickey/i.test(text)) {
    return `ssh authentication to ${t.user ? `${t.user}@` : ""}${hostPort} failed with ${t.sshKeyPath || "the default keys"}: add the public key to the remote authorized_keys`;
  }
  // setpriv (tiedToUs) exits 127 when it cannot set up: it is there, so this is not a missing rsync (a seccomp filter).
  const setpriv = /^setpriv: [^\n]*/m.exec(text);
  if (setpriv) return `setpriv, which runs rsync tied to rrdsync, failed: ${setpriv[0].slice(9)} (a sandbox that forbids a system call it needs?)`;
  if (code === 127 || /rsync: (command )?not found|rsync: No such file or directory/i.test(text)) {
    return `rsync is not installed on ${t.host || "this machine"} (or not on its PATH)`;
  }
  const cause = rootCause(stderr);
  return `rsync exited with code ${code}${cause ? `: ${cause}` : ""}`;
}

/**
 * explainFailure, and what only another look can tell:
 * - the offered host key's SHA256 fingerprint when ssh refused an unknown host (OpenSSH in batch mode does not
 *   print it): ssh is asked once more, with -v, through the same options and route (ssh_config, ProxyJump), and
 *   stops at the same refusal; only "Server host key: TYPE SHA256:…" is read from it;
 * - a full replica when rsync died of an I/O error without saying why: over ssh the receiver's "No space left on
 *   device" is lost now and then (rsync exits 11 with an empty stderr: its generator ends before passing the
 *   receiver's message on); the free space where `largest` (the batch's largest file) was going is asked for.
 */
export async function explainFailureOnline(code: number, stderr: string[], t: Target, largest?: { path: string; size: number }, controlPath?: string | null): Promise<string> {
  const text = stderr.join("\n");
  const plain = explainFailure(code, stderr, t);
  if (t.host !== "" && UNKNOWN_HOST.test(text) && !/REMOTE HOST IDENTIFICATION HAS CHANGED|REVOKED HOST KEY/i.test(text)) {
    return explainFailure(code, stderr, t, await offeredHostKey(t));
  }
  if ((code === 11 || code === 12) && largest && !FILE_SYSTEM_CAUSE.test(rootCause(stderr)) && plain.startsWith("rsync exited")) {
    const free = await freeSpace(t, controlPath);
    if (free !== null && (free.bytes < largest.size || free.inodes === 0)) {
      const where = `${t.host === "" ? "" : "the standby has "}${free.inodes === 0 ? "no free inodes" : `${kib(free.bytes)} free`} in ${t.destDir}`;
      return `${plain}: No space left on device, it seems: ${where}, ${largest.path} needs ${kib(largest.size)} (rsync gave no reason)`;
    }
  }
  return plain;
}

const kib = (n: number) => (n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)} MiB` : `${Math.floor(n / 1024)} KiB`);

/**
 * Free bytes and inodes (for this user) on the file system holding the destination; null if it cannot be told.
 * `controlPath`: through the transport's master connection (no login of its own).
 */
async function freeSpace(t: Target, controlPath?: string | null): Promise<{ bytes: number; inodes: number } | null> {
  if (t.host === "") {
    try {
      const s = statfsSync(t.destDir);
      return { bytes: s.bavail * s.bsize, inodes: s.files > 0 ? s.ffree : -1 };
    } catch {
      return null;
    }
  }
  const q = `'${t.destDir.replaceAll("'", "'\\''")}'`;
  try {
    const out: string[] = [];
    const r = await runChild([...sshCommand(t, controlPath), "--", `${t.user ? `${t.user}@` : ""}${t.host}`, `df -Pk -- ${q} && df -Pi -- ${q}`], null, (l) => out.push(l), AbortSignal.timeout(OFFERED_KEY_TIMEOUT_MS));
    // POSIX df -P: a header line, then "fs blocks used available capacity mounted-on" (-i: inodes in the same columns)
    const avail = out.filter((l) => !/^Filesystem/i.test(l)).map((l) => Number(l.trim().split(/\s+/)[3]));
    if (avail.length === 0 || !Number.isFinite(avail[0])) return null;
    return { bytes: (avail[0] as number) * 1024, inodes: r.code === 0 && avail.length > 1 && Number.isFinite(avail[1]) ? (avail[1] as number) : -1 };
  } catch {
    return null;
  }
}

const OFFERED_KEY_TIMEOUT_MS = 20_000;

export async function offeredHostKey(t: Target): Promise<string | undefined> {
  const abort = AbortSignal.timeout(OFFERED_KEY_TIMEOUT_MS);
  try {
    const r = await runChild([...sshCommand(t), "-v", "--", `${t.user ? `${t.user}@` : ""}${t.host}`, "true"], null, () => undefined, abort);
    return r.stderr.map((l) => /^debug1: Server host key: \S+ (SHA256:[A-Za-z0-9+/]+)/.exec(l)?.[1]).find((fp) => fp !== undefined);
  } catch {
    return undefined;
  }
}
