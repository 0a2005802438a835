// Child processes that die with us, even by kill -9.

/**
 * An orphaned rsync would go on writing the files a rerun is writing, and its late rename could put an older
 * version over a newer one; an orphaned ssh master would hold a login to the standby open. util-linux's setpriv
 * sets the parent-death signal and execs the command (same pid); where it is missing, the command runs as is.
 */
const SETPRIV = Bun.which("setpriv");
export const tiedToUs = (argv: string[]): string[] => (SETPRIV ? [SETPRIV, "--pdeathsig", "KILL", "--", ...argv] : argv);
