// Typed errors and the one exit-code table; main.ts is the only place that turns them into a process exit.

export const ExitCode = {
  /** every file is on the destination and recorded */
  Ok: 0,
  /** some files failed and stay pending (each is named in the log); the next run retries them */
  Pending: 1,
  /** bad command line or config: nothing was done */
  Usage: 2,
  /** another rrdsync holds the lock for this state file */
  Locked: 3,
  /** the standby was written to behind rrdsync (split brain, or a promotion): the target is fenced */
  Fenced: 4,
  /** a bug in rrdsync: the message asks for a report */
  Internal: 70,
  /** --watch: a second SIGINT or SIGTERM while stopping; it left without waiting for the running transfer (128 + SIGINT, as shells report Ctrl-C) */
  Interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/**
 * The table printed by --help and `rrdsync help exit-codes`; scripts/docs.ts writes it into README.md,
 * docs/exit-codes.md and the man page (test/unit/docs.test.ts fails when one of them differs).
 */
export const EXIT_CODE_TABLE: ReadonlyArray<readonly [number, string]> = [
  [ExitCode.Ok, "all files synced and recorded"],
  [ExitCode.Pending, "some files failed and stay pending (named in the log); the next run retries them (also: the state\n      disk is full, the metrics file could not be written). check: a check failed; status: files pending or the\n      target down; restore: no such version; verify: the replica differs from the source, or could not be compared;\n      merge: the merged file could not be written, or an RRD stayed locked by another process; failback: files left\n      on both sides (named), or the standby could not be reached (run it again)"],
  [ExitCode.Usage, "usage or config error (also: a state DB that describes another source or destination, a state or\n      log directory another user can write); nothing was done"],
  [ExitCode.Locked, "another rrdsync is running with the same state file"],
  [ExitCode.Fenced, "the standby was written to: split brain or promotion. The target is fenced: nothing more is written,\n      deleted or moved there (rrdsync unfence shows the ways on). status, verify, unfence: a target is fenced; failback: the standby was promoted or written to again meanwhile"],
  [ExitCode.Internal, "internal error (a bug): please report it with the message"],
  [ExitCode.Interrupted, "--watch: stopped by a second SIGINT or SIGTERM while it was stopping, without waiting for the running\n      transfer; nothing unconfirmed was recorded, so the next start sends it again (--once exits 1 then)"],
];

/** An error the user can fix: printed as one message plus a hint, never with a stack. */
export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode = ExitCode.Usage,
    readonly hint?: string,
  ) {
    super(message);
    this.name = "UserError";
  }
}

/** A config file problem; `where` is "config.json: remote_sync.port"-style. */
export class ConfigError extends UserError {
  constructor(where: string, problem: string, hint?: string) {
    super(`${where}: ${problem}`, ExitCode.Usage, hint);
    this.name = "ConfigError";
  }
}

/** A state DB that describes another source or destination than the config's (src/store/identity.ts). */
export class StateMismatchError extends UserError {
  constructor(message: string, hint: string) {
    super(message, ExitCode.Usage, hint);
    this.name = "StateMismatchError";
  }
}

export class LockHeldError extends UserError {
  constructor(readonly pid: number, lockPath: string) {
    super(
      `another rrdsync (${Number.isNaN(pid) ? "its pid not recorded yet" : `pid ${pid}`}) is running with this state file (lock ${lockPath})`,
      ExitCode.Locked,
      "wait for it to finish, or stop it; the lock goes with its process (the kernel releases it however it ends)",
    );
    this.name = "LockHeldError";
  }
}
