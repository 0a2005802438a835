// Pure: the rsync argv for a target and the config's rsync_options. Always an array; never a shell string.
import type { RsyncOptions, Target } from "../../config/types.ts";
import { OUT_FORMAT } from "./itemize.ts";
import { PARTIAL_DIR, SFTP_TMP_SUFFIX } from "../temp-names.ts";
import type { TreeFilter } from "../types.ts";


/**
 * rsync splits the -e string itself (main.c do_cmd): quotes group, a doubled quote inside quotes is a literal
 * quote, there are no backslash escapes. So: single-quote anything unusual, doubling its single quotes.
 */
export function quoteForRsyncShell(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "''")}'`;
}

/**
 * A path as an ssh -o value: ssh splits it on whitespace (several known_hosts files) and expands % tokens, so a
 * path with a space, a quote or a % would name other files. Double quotes group it (backslash escapes \ and ")
 * and %% is a literal %.
 */
export function sshConfigPath(p: string): string {
  return `"${p.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("%", "%%")}"`;
}

/**
 * The ssh command line. `controlPath`: only through that master connection (ssh-master.ts). ControlMaster=no: this
 * ssh never becomes a master itself; ProxyCommand=false: where the master is gone, ssh would silently log in on its
 * own (a login per batch, unnoticed); instead it fails at once (NO_MASTER), and the next attempt starts a new master.
 */
export function sshCommand(t: Target, controlPath?: string | null): string[] {
  const argv = [
    "ssh", "-p", String(t.port),
    // Never ask (cron has no terminal), never accept an unknown or changed host key.
    "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${sshConfigPath(t.knownHostsFile)}`,
    "-o", "ConnectTimeout=15", "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4",
  ];
  if (t.sshKeyPath) argv.push("-i", t.sshKeyPath, "-o", "IdentitiesOnly=yes");
  if (t.sshCiphers) argv.push("-c", t.sshCiphers);
  if (controlPath) argv.push("-o", "ControlMaster=no", "-o", `ControlPath=${controlPath}`, "-o", "ProxyCommand=false");
  return argv;
}

/** what ssh says when a command meant for the master found none (the ProxyCommand above) */
export const NO_MASTER = "Connection closed by UNKNOWN port 65535";

/** The destination (or a directory `sub` inside it) as rsync's last argument. */
export function destinationArg(t: Target, sub = ""): string {
  const dir = sub === "" ? `${t.destDir}/` : `${t.destDir}/${sub}/`;
  if (t.host === "") return dir;
  const host = t.host.includes(":") ? `[${t.host}]` : t.host;
  return `${t.user ? `${t.user}@` : ""}${host}:${dir}`;
}

/**
 * rsync filter patterns treat * ? [ as wildcards; a backslash escapes them, but backslashes are only read as
 * escapes when the pattern holds a wildcard. `inWildcardPattern`: the caller adds a wildcard of its own.
 */
export function escapeFilterPattern(s: string, inWildcardPattern = false): string {
  if (!inWildcardPattern && !/[*?[]/.test(s)) return s;
  return s.replace(/[*?[\\]/g, (c) => `\\${c}`);
}

/** Filter rules for a whole-tree run: rrdsync's own files out, then only the monitored extensions. */
export function treeFilterArgs(tree: TreeFilter): string[] {
  const args = tree.exclude.map((rel) => `--exclude=/${escapeFilterPattern(rel)}`);
  if (tree.extensions.length > 0) {
    args.push("--include=*/", ...tree.extensions.map((e) => `--include=*${escapeFilterPattern(e, true)}`), "--exclude=*");
  }
  return args;
}

/**
 * `sparse`: the batch holds a sparse file (see RsyncTransport); a whole-tree run always is, as it cannot know in
 * advance and a first sync of sparse files must not fill the standby's disk.
 */
export function buildRsyncArgv(opts: { target: Target; rsync: RsyncOptions; sourceDir: string; controlPath?: string | null }, tree?: TreeFilter, progress = false, sparse = false): string[] {
  const { target, rsync } = opts;
  const argv = ["rsync"];
  if (tree) {
    // A whole-tree run (first sync, rebuilt state) has no per-file check of the replica before it (engine/guard.ts):
    // --update leaves every file that is newer on the standby than ours, and --info=skip1 names each ("is newer"):
    // a conflict. An older copy there (pre-seeded, or the seed script's) is replaced.
    argv.push("-r", ...treeFilterArgs(tree), "--update", "--info=skip1");
  } else {
    // --files-from implies -R (paths relative to the source root) and turns off -a's -r: exactly the listed files.
    // --ignore-times: we list a file because it changed, and rsync's quick check compares mtimes in whole
    // seconds: an RRD rewritten within the same second at the same size would be skipped (seen in tests).
    // The delta algorithm still sends only the changed blocks.
    argv.push("--files-from=-", "--from0", "--ignore-times");
  }
  // Per-file output costs a whole-tree run ~14% (measured), and it does not need it (see wholeTreeOutcomes):
  // there it is only asked for when the config wants itemized lines in the log.
  if (!tree || rsync.itemizeChanges || rsync.verbose) argv.push("-ii", `--out-format=${OUT_FORMAT}`);
  if (rsync.archive) argv.push("-a");
  // The walk mirrors ours: regular files only (symlinks, devices, fifos never sent). After -a, which sets them.
  if (tree) argv.push("--no-links", "--no-devices", "--no-specials");
  // Holes stay holes on the replica (a sparse 2 GB .rrd is not 2 GB there), and runs of zeros become holes. Safe
  // with our temp file + rename (rsync refuses --sparse only with --inplace before 3.1.3; we never use --inplace).
  // Not for every batch: it costs the receiver CPU (20,000 RRDs copied locally: 2.65 s instead of 2.12 s).
  if (tree || sparse) argv.push("--sparse");
  if (rsync.compress) argv.push("-z");
  if (rsync.update && !tree) argv.push("--update");
  if (rsync.checksum) argv.push("--checksum");
  // A partial dir keeps resumable data away from final paths (plain --partial would leave it there).
  if (rsync.partial) argv.push(`--partial-dir=${PARTIAL_DIR}`);
  if (rsync.bwlimit > 0) argv.push(`--bwlimit=${rsync.bwlimit}`);
  // rsync's own count of the bytes it put on the wire ("sent N bytes  received M bytes"): one line per run, for
  // rrdsync_sent_bytes_total (the files' sizes are another metric). --stats prints the same line.
  argv.push(rsync.stats ? "--stats" : "--info=stats1");
  // A whole-tree run prints no per-file lines; its overall progress (\r-separated) feeds the progress line.
  if (tree && progress) argv.push("--info=progress2");
  if (target.host !== "") argv.push("-e", sshCommand(target, opts.controlPath).map(quoteForRsyncShell).join(" "));
  argv.push(`${opts.sourceDir}/`, destinationArg(target));
  return argv;
}

/**
 * A dry run that compares instead of sends: which files of a batch does the replica hold now? Used after rsync
 * exited 23/24, when any file of the batch may have failed on the receiver although rsync itemized it as sent.
 * rsync's quick check, size and mtime to the nanosecond (`--modify-window=-1`), where the receiver's rsync is
 * 3.1.3 or later (`nanoseconds`): an older one reads -1 as "never equal". Otherwise, where mtimes are not kept
 * (no -a), or where the config compares by checksum anyway: `--checksum` (both ends read the files).
 */
export function buildHeldArgv(opts: { target: Target; rsync: RsyncOptions; sourceDir: string; controlPath?: string | null }, tree: TreeFilter | undefined, nanoseconds: boolean): string[] {
  const { target, rsync } = opts;
  const argv = ["rsync", "--dry-run"];
  if (tree) argv.push("-r", ...treeFilterArgs(tree));
  else argv.push("--files-from=-", "--from0");
  argv.push("-ii", `--out-format=${OUT_FORMAT}`);
  if (rsync.archive) argv.push("-a");
  if (tree) argv.push("--no-links", "--no-devices", "--no-specials");
  argv.push(rsync.archive && !rsync.checksum && nanoseconds ? "--modify-window=-1" : "--checksum");
  if (target.host !== "") argv.push("-e", sshCommand(target, opts.controlPath).map(quoteForRsyncShell).join(" "));
  argv.push(`${opts.sourceDir}/`, destinationArg(target));
  return argv;
}

/** Does this rsync compare mtimes to the nanosecond with --modify-window=-1 (3.1.3 or later)? `version`: "rsync 3.2.7" */
export function comparesNanoseconds(version: string): boolean {
  const [major = 0, minor = 0, patch = 0] = (/(\d+)\.(\d+)(?:\.(\d+))?/.exec(version) ?? []).slice(1).map((n) => Number(n ?? 0));
  return major > 3 || (major === 3 && (minor > 1 || (minor === 1 && patch >= 3)));
}

/**
 * Deletes by filter, the way lsyncd does, so it works with any rsync on the standby (rsync 3.4.3's
 * --delete-missing-args is broken, RsyncProject/rsync#910): the deleted paths and their parent directories are
 * included (anchored, wildcards escaped, read NUL-separated from stdin), everything else excluded. Excluded files
 * are protected from --delete, so only the listed files go; a directory still holding others stays.
 */
export function buildDeleteArgv(opts: { target: Target; sourceDir: string; controlPath?: string | null }): string[] {
  const argv = ["rsync", "-r", "--delete", "--from0", "--include-from=-", "--exclude=*", "-ii", `--out-format=${OUT_FORMAT}`];
  if (opts.target.host !== "") argv.push("-e", sshCommand(opts.target, opts.controlPath).map(quoteForRsyncShell).join(" "));
  argv.push(`${opts.sourceDir}/`, destinationArg(opts.target));
  return argv;
}

/** The include rules for deleting `paths`: each parent directory once, then each file. */
export function deleteRules(paths: string[]): string[] {
  const dirs = new Set<string>();
  for (const p of paths) {
    const parts = p.split("/");
    for (let i = 1; i < parts.length; i++) dirs.add(`/${parts.slice(0, i).join("/")}/`);
  }
  return [...[...dirs].map((d) => escapeFilterPattern(d)), ...paths.map((p) => escapeFilterPattern(`/${p}`))];
}

/**
 * Filter rules for `verify`: the whole-tree rules, plus the leftovers a transfer may leave on the replica (rsync's
 * partial dir, SFTP's temporary names), which are neither ours to compare nor extra files.
 */
export function verifyFilterArgs(tree: TreeFilter): string[] {
  return [`--exclude=${PARTIAL_DIR}/`, `--exclude=.*${SFTP_TMP_SUFFIX}`, ...treeFilterArgs(tree)];
}

/**
 * `verify`'s comparison: a dry run (nothing is written on either side) with --checksum, so the standby's rsync
 * hashes its own copies and only checksums cross the link; -r without -a compares content, not owners or modes
 * (so a file that is the same has nothing to itemize: -i is silent about it).
 * `--update` + `--info=skip1` names the files whose replica copy is newer ("NAME is newer"). A subtree run
 * (`tree`) walks it on both sides and, with --delete (a dry run: nothing is deleted), names the extra files;
 * otherwise exactly the listed files (stdin, NUL-separated) are compared.
 */
export function buildVerifyArgv(opts: { target: Target; sourceDir: string; controlPath?: string | null }, tree?: { root: string; filter: TreeFilter }, nameSame = true): string[] {
  const argv = ["rsync", "--dry-run", "--checksum", "--update", "--info=skip1"];
  // A line per file is work for both rsyncs and for us; a subtree run can do with the differences alone (-i) and
  // --stats' count of the files it compared. A list run names each file (-ii): a listed file it is silent about
  // is then never taken for the same.
  argv.push(...(tree && !nameSame ? ["-i", "--stats"] : ["-ii"]), `--out-format=${OUT_FORMAT}`);
  if (tree) argv.push("-r", "--delete", ...verifyFilterArgs(tree.filter));
  else argv.push("--files-from=-", "--from0");
  if (opts.target.host !== "") argv.push("-e", sshCommand(opts.target, opts.controlPath).map(quoteForRsyncShell).join(" "));
  const root = tree?.root ?? "";
  argv.push(root === "" ? `${opts.sourceDir}/` : `${opts.sourceDir}/${root}/`, destinationArg(opts.target, root));
  return argv;
}

/**
 * `rrdsync failback`'s pull: the listed files (NUL-separated on stdin) copied from the standby into `into`, a
 * directory of ours, mtimes kept (-t) so each copy's version is the standby's. No -l: a symlink on the standby is
 * skipped, never copied as one; no -p/-o/-g: the copies are ours (the directory is 0700).
 */
export function buildPullArgv(o: { target: Target; controlPath?: string | null }, into: string): string[] {
  const argv = ["rsync", "-t", "--files-from=-", "--from0", "--no-links", "--no-devices", "--no-specials", "-ii", `--out-format=${OUT_FORMAT}`];
  if (o.target.host !== "") argv.push("-e", sshCommand(o.target, o.controlPath).map(quoteForRsyncShell).join(" "));
  argv.push(destinationArg(o.target), `${into}/`);
  return argv;
}

/** Lists the replica's files under `sub` (names, sizes, mtimes; nothing is read): where `verify` looks for extras. */
export function buildListArgv(o: { target: Target; controlPath?: string | null }, sub: string, filter: TreeFilter): string[] {
  const argv = ["rsync", "-r", "--list-only", "--no-h", ...verifyFilterArgs(filter)];
  if (o.target.host !== "") argv.push("-e", sshCommand(o.target, o.controlPath).map(quoteForRsyncShell).join(" "));
  argv.push(destinationArg(o.target, sub));
  return argv;
}
