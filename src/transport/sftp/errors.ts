// SFTP failures for people: which operation, on which path on the standby, and why, also when the server only
// answers "Failure".
import type { SFTPWrapper } from "ssh2";

/** SFTP status codes (draft-ietf-secsh-filexfer-02) */
export const NO_SUCH_FILE = 2;
export const PERMISSION_DENIED = 3;
const FAILURE = 4;
const OP_UNSUPPORTED = 8;
/** statvfs f_flag */
const ST_RDONLY = 1;

export type SftpError = Error & { code?: number | string };

/** A failed SFTP request, with what was asked and on which path. */
export class SftpOpError extends Error {
  constructor(readonly op: string, readonly path: string, readonly failure: SftpError) {
    super(`${op} ${path}: ${failure.message}`);
  }

  get code(): number | string | undefined {
    return this.failure.code;
  }
}

/** The request's promise, its failure labelled with the operation and the path. */
export function labelled<T>(op: string, path: string, p: Promise<T>): Promise<T> {
  return p.catch((e: SftpError) => {
    throw e instanceof SftpOpError ? e : new SftpOpError(op, path, e);
  });
}

/** What the standby's file system says about itself, for a bare "Failure" (null: the server cannot tell). */
export interface FsFacts {
  readOnly: boolean;
  freeBytes: number;
  freeInodes: number;
}

export function statvfs(sftp: SFTPWrapper, path: string): Promise<FsFacts | null> {
  // An OpenSSH extension; other servers lack it.
  if ((sftp as unknown as { _extensions?: Record<string, string> })._extensions?.["statvfs@openssh.com"] === undefined) return Promise.resolve(null);
  return new Promise((resolve) => {
    try {
      sftp.ext_openssh_statvfs(path, (err: Error | undefined, st: Record<string, number | bigint>) => {
        if (err || !st) return resolve(null);
        const n = (k: string) => Number(st[k] ?? 0);
        resolve({ readOnly: (n("f_flag") & ST_RDONLY) !== 0, freeBytes: n("f_bavail") * n("f_frsize"), freeInodes: n("f_files") > 0 ? n("f_favail") : -1 });
      });
    } catch {
      resolve(null);
    }
  });
}

/**
 * One line for people. OpenSSH's sftp-server maps EACCES/EPERM to "permission denied" and ENOENT to "no such
 * file", but a full disk, a quota, a read-only file system all arrive as the bare status FAILURE ("Failure"):
 * `fs` (statvfs of the directory, asked right after) tells those apart where it can. `needBytes`: what the file
 * needed, so a nearly full disk counts as full.
 */
export function describeSftpError(e: unknown, fallbackPath: string, fs: FsFacts | null = null, needBytes = 0): string {
  const op = e instanceof SftpOpError ? e.op : "access";
  const path = e instanceof SftpOpError ? e.path : fallbackPath;
  const cause = e instanceof SftpOpError ? e.failure : (e as SftpError);
  if (cause.code === "ENOTDIR") return cause.message; // our own refusal (a symlink where a directory belongs), worded already
  const what = `${op} ${path} on the standby`;
  switch (cause.code) {
    case PERMISSION_DENIED:
      return `${what}: permission denied`;
    case NO_SUCH_FILE:
      return `${what}: no such file or directory`;
    case OP_UNSUPPORTED:
      return `${what}: not supported by the standby's SFTP server`;
    case FAILURE: {
      if (fs?.readOnly) return `${what}: Read-only file system`;
      if (fs && (fs.freeBytes < Math.max(needBytes, 1) || fs.freeInodes === 0)) {
        return `${what}: No space left on device (${fs.freeInodes === 0 ? "no free inodes" : `${Math.floor(fs.freeBytes / 1024)} KiB free`})`;
      }
      return `${what}: the SFTP server reports only "Failure" (a full disk or quota, an I/O error, or a name too long)`;
    }
    default:
      return `${what}: ${cause.message}`;
  }
}

/** Does this failure call for a look at the file system (statvfs) before it is described? */
export function isBareFailure(e: unknown): boolean {
  return (e as SftpError).code === FAILURE;
}
