// Asks the standby, over the transfers' own ssh command line, whether (and which) rsync it has.
import type { Target } from "../config/types.ts";
import { explainFailureOnline } from "./rsync/errors.ts";
import { sshCommand } from "./rsync/args.ts";

const PROBE_TIMEOUT_MS = 30_000;

export type RsyncProbe =
  | { kind: "present"; version: string }
  /** ssh got in, rsync did not answer */
  | { kind: "absent"; detail: string }
  /** ssh itself failed (host key, connection, auth): nothing is known about rsync */
  | { kind: "unreachable"; error: string };

/** `controlPath`: ask through that master connection (ssh-master.ts) instead of logging in for it. */
export async function probeRemoteRsync(t: Target, controlPath?: string | null): Promise<RsyncProbe> {
  const r = await runRemote(t, "rsync --version", controlPath);
  if (r.code === 255 || r.code === -1) return { kind: "unreachable", error: await explainFailureOnline(r.code, r.err.split("\n"), t) };
  const m = /rsync\s+version\s+(\S+)/.exec(r.out);
  if (r.code === 0 && m) return { kind: "present", version: `rsync ${m[1]}` };
  return { kind: "absent", detail: r.err.trim().split("\n").pop()?.trim() || `exit ${r.code}` };
}

/** Runs `command` on the standby with the same ssh options rsync's transfers use. */
export async function runRemote(t: Target, command: string, controlPath?: string | null): Promise<{ code: number; out: string; err: string }> {
  if (Bun.which("ssh") === null) return { code: 127, out: "", err: "ssh: not found (install openssh-client)" };
  const p = Bun.spawn([...sshCommand(t, controlPath), "--", `${t.user ? `${t.user}@` : ""}${t.host}`, command], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => p.kill("SIGKILL"), PROBE_TIMEOUT_MS);
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  return { code: p.signalCode ? -1 : code, out, err };
}
