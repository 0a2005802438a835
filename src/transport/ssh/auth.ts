// The SFTP transport's credentials: the configured (or default) private key, its passphrase, and ssh-agent.
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { utils } from "ssh2";
import type { Target } from "../../config/types.ts";

export interface SshIdentity {
  privateKey?: Buffer;
  passphrase?: string;
  /** ssh-agent's socket */
  agent?: string;
  /** the key file used, for messages ("" = agent only) */
  keyPath: string;
  /** things an admin should hear about once (a key others can read) */
  warnings: string[];
}

/** A credential problem: nothing can be sent until the admin fixes it. */
export class SshAuthError extends Error {}

/** OpenSSH's default identities, in its order, for a target without ssh_key_path. */
const DEFAULT_KEYS = ["id_ed25519", "id_ecdsa", "id_rsa"];

export function loadIdentity(t: Target, env: Record<string, string | undefined>, home: string): SshIdentity {
  const warnings: string[] = [];
  const agent = env.SSH_AUTH_SOCK && existsSync(env.SSH_AUTH_SOCK) ? env.SSH_AUTH_SOCK : undefined;
  const keyPath = t.sshKeyPath || (DEFAULT_KEYS.map((k) => join(home, ".ssh", k)).find((p) => existsSync(p)) ?? "");
  if (keyPath === "") {
    if (agent) return { agent, keyPath: "", warnings };
    throw new SshAuthError(`no ssh key: set remote_sync.ssh_key_path, put a key in ${join(home, ".ssh")} (id_ed25519, id_ecdsa or id_rsa), or start ssh-agent`);
  }
  let data: Buffer;
  try {
    data = readFileSync(keyPath);
    // OpenSSH refuses a private key others can read; the SFTP client uses it, but says so (the rsync transport would not).
    const mode = statSync(keyPath).mode & 0o777;
    if ((mode & 0o077) !== 0) warnings.push(`ssh key ${keyPath} is accessible by others (mode ${mode.toString(8)}): OpenSSH refuses such keys; fix: chmod 600 ${keyPath}`);
  } catch (e) {
    throw new SshAuthError(`cannot read ssh key ${keyPath}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const passphrase = readPassphrase(t, env);
  const parsed = utils.parseKey(data, passphrase);
  if (parsed instanceof Error) {
    const encrypted = /encrypted|passphrase/i.test(parsed.message);
    if (encrypted && passphrase === undefined) {
      if (agent) return { agent, keyPath: "", warnings };
      throw new SshAuthError(`ssh key ${keyPath} is protected by a passphrase: set RRDSYNC_SSH_PASSPHRASE or remote_sync.ssh_passphrase_file, or load the key into ssh-agent`);
    }
    if (encrypted || /bad decrypt|integrity check|decrypt/i.test(parsed.message)) {
      throw new SshAuthError(`ssh key ${keyPath}: the passphrase does not open it (${parsed.message})`);
    }
    throw new SshAuthError(`ssh key ${keyPath} is not a private key rrdsync can read (${parsed.message}); use an OpenSSH ed25519, ecdsa or rsa key`);
  }
  return { privateKey: data, passphrase, agent, keyPath, warnings };
}

function readPassphrase(t: Target, env: Record<string, string | undefined>): string | undefined {
  if (env.RRDSYNC_SSH_PASSPHRASE !== undefined) return env.RRDSYNC_SSH_PASSPHRASE;
  if (t.sshPassphraseFile === "") return undefined;
  try {
    // One line; its line ending is not part of the passphrase.
    return readFileSync(t.sshPassphraseFile, "utf8").replace(/\r?\n$/, "");
  } catch (e) {
    throw new SshAuthError(`cannot read remote_sync.ssh_passphrase_file ${t.sshPassphraseFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}
