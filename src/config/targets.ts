// The standbys of a config (remote_sync, then "targets"): each checked, and each with a state DB of its own, so
// no two targets ever share what they have and what is pending (a failed target would be recorded as done).
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { ConfigError } from "../errors.ts";
import { defaultOf as d } from "./keys.ts";
import { checkLocalDest, realish } from "./places.ts";
import type { Config, Target, TransportKind } from "./types.ts";

type Obj = Record<string, any>;

export interface TargetContext {
  sourceDir: string;
  home: string;
  /** --transport: every target uses it */
  transport?: TransportKind;
}

/** `name(key)`: how messages name a key of this target ("config.json: targets[1].remote_host", or "--dest"). */
export function makeTarget(raw: Obj, name: (key: string) => string, ctx: TargetContext): Target {
  const host: string = raw.remote_host ?? d("remote_sync.remote_host");
  if (raw.remote_dest_dir === undefined) throw new ConfigError(name("remote_dest_dir"), "is missing", "every target needs its destination directory");
  const t: Target = {
    user: host === "" ? "" : (raw.remote_user ?? d("remote_sync.remote_user")),
    host,
    port: raw.port ?? d("remote_sync.port"),
    destDir: raw.remote_dest_dir,
    sshKeyPath: raw.ssh_key_path ?? d("remote_sync.ssh_key_path"),
    knownHostsFile: raw.known_hosts_file ?? `${ctx.home}/.ssh/known_hosts`,
    sshCiphers: raw.ssh_ciphers ?? d("remote_sync.ssh_ciphers"),
    transport: ctx.transport ?? raw.transport ?? d("remote_sync.transport"),
    sftpParallelFiles: raw.sftp_parallel_files ?? d("remote_sync.sftp_parallel_files"),
    sshPassphraseFile: raw.ssh_passphrase_file ?? d("remote_sync.ssh_passphrase_file"),
  };
  if (host === "" && t.transport === "sftp") {
    throw new ConfigError(name("transport"), '"sftp" needs a remote host, and this target is a local directory', 'set remote_host, or use "rsync" for a local destination');
  }
  if (host === "") checkLocalDest(name("remote_dest_dir"), t.destDir, ctx.sourceDir);
  // The standby's whole file system: a rename or delete there would reach its system files. Only SFTP may name
  // "/": an SFTP-only account's chroot (ChrootDirectory + internal-sftp), which is all that account sees.
  else if (t.destDir === "/" && t.transport !== "sftp") {
    throw new ConfigError(name("remote_dest_dir"), `"/" is the standby's root directory${t.transport === "auto" ? ' (and "auto" may choose rsync, which sees the whole machine)' : ""}`,
      'point it at a directory of its own on the standby, e.g. /opt/opennms/share/rrd ("/" only with "transport": "sftp" into a chroot)');
  }
  if (host !== "" && t.sshKeyPath !== "" && !existsSync(t.sshKeyPath)) {
    throw new ConfigError(name("ssh_key_path"), `${t.sshKeyPath} does not exist`, "point it at the private key, or remove the key to use ssh's defaults");
  }
  return t;
}

/** The state DB of a further target: its state_file, else `<state_file>.<name>.db` (name: given, or host:port). */
export function extraStateFile(raw: Obj, t: Target, primaryState: string): { name: string; stateFile: string } {
  const name: string = raw.name ?? (t.host === "" ? t.destDir : `${t.host}:${t.port}`);
  const slug = name.replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^_+|_+$/g, "");
  return { name, stateFile: (raw.state_file as string | undefined) ?? primaryState.replace(/(\.db)?$/, `.${slug || "target"}.db`) };
}

/** Where a target writes, for telling two apart: the same directory on the same standby is the same place. */
function placeKey(t: Target): string {
  return t.host === "" ? realish(t.destDir) : `${t.user}@${t.host.toLowerCase()}:${t.port}:${t.destDir}`;
}

/**
 * Every target replicates to its own place and keeps its own state DB; a clash is a config error naming both
 * (two unnamed targets on one standby would derive the same state DB: they need names).
 */
export function checkDistinct(origin: string, config: Pick<Config, "target" | "stateFile" | "extraTargets">, wheres: string[], named: Array<string | undefined>): void {
  const all = [{ target: config.target, stateFile: config.stateFile }, ...config.extraTargets];
  const seen = { place: new Map<string, number>(), state: new Map<string, number>(), name: new Map<string, number>() };
  all.forEach((x, i) => {
    const place = placeKey(x.target);
    const p = seen.place.get(place);
    if (p !== undefined) {
      throw new ConfigError(`${origin}: ${wheres[p]} and ${wheres[i]}`, `both replicate to ${x.target.host === "" ? x.target.destDir : place}`, "remove one of them: a destination is one target");
    }
    seen.place.set(place, i);
    const n = named[i];
    if (n !== undefined) {
      const q = seen.name.get(n);
      if (q !== undefined) throw new ConfigError(`${origin}: ${wheres[q]}.name and ${wheres[i]}.name`, `are both ${JSON.stringify(n)}`, "give each target a name of its own");
      seen.name.set(n, i);
    }
    const state = resolve(x.stateFile);
    const s = seen.state.get(state);
    if (s !== undefined) {
      throw new ConfigError(`${origin}: ${wheres[s]} and ${wheres[i]}`, `would share the state DB ${state}`,
        'give each target its own "name" (its state DB is <state_file>.<name>.db) or its own "state_file": targets never share state');
    }
    seen.state.set(state, i);
  });
}
