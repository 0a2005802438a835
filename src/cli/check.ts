// `rrdsync check`: one screen of ✓/✗ lines, each ✗ with how to fix it; exit 0 only if nothing failed.
// It runs the same ssh command line the transfers use, so a ✓ here means rsync's ssh will get in too.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statfsSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import pc from "picocolors";
import { NO_CONFIG_ORIGIN } from "../config/load.ts";
import { sharedDirProblem } from "../config/places.ts";
import { allTargets, type Config } from "../config/types.ts";
import { ExitCode } from "../errors.ts";
import { escapeLine } from "../escape.ts";
import { formatTimestamp } from "../log.ts";
import { describeFsError, formatBytes } from "../text.ts";
import { plural } from "../text.ts";
import { identityOf } from "../store/identity.ts";
import { StateStore } from "../store/state.ts";
import { type FenceRecord, fenceSummary, readFence } from "../store/fence.ts";
import { chooseTransport, createTransport, describeTarget } from "../transport/create.ts";
import { FENCED_MARKER, parseFenceMarker, parseMarker, PROMOTED_MARKER } from "../transport/marker.ts";
import { hostsFieldMatches, lookupName } from "../transport/ssh/known-hosts.ts";
import { runRemote } from "../transport/probe.ts";
import { countDirs } from "../source/walk.ts";
import { writeOut } from "./out.ts";
import { type HistoryFacts, historyFacts, historyLine, targetOption, verifyLine } from "./status.ts";

type Verdict = "ok" | "fail" | "warn";
interface Result {
  verdict: Verdict;
  label: string;
  detail: string;
  fix?: string;
}

const SSH_TIMEOUT_MS = 30_000;
/** below this, backups and logs are about to stop being written */
const MIN_FREE_BYTES = 100 * 1024 * 1024;

export async function runChecks(config: Config, env: Record<string, string | undefined>): Promise<ExitCode> {
  const origin = config.origin === NO_CONFIG_ORIGIN ? "no config file: --source, --dest and the built-in defaults" : `${config.origin} is valid`;
  const results: Result[] = [{ verdict: "ok", label: "config", detail: origin }];
  const c = pc.createColors(process.stdout.isTTY === true && !(env.NO_COLOR ?? ""));
  // Each line as soon as its check is done (a login can take seconds); details can quote the standby's stderr.
  const print = (r: Result) => {
    const mark = r.verdict === "ok" ? c.green("✓") : r.verdict === "warn" ? c.yellow("!") : c.red("✗");
    return writeOut(`${mark} ${r.label}: ${escapeLine(r.detail)}\n${r.fix ? `    ${c.dim("fix:")} ${escapeLine(r.fix)}\n` : ""}`);
  };
  await print(results[0] as Result);
  const add = async (r: Result) => {
    results.push(r);
    await print(r);
  };

  await add(checkSource(config));
  const shared = sharedDirProblem(config);
  await add(shared === null
    ? { verdict: "ok", label: "own directories", detail: "the state, backup and log directories are writable by this user (and root) alone" }
    : { verdict: "fail", label: "own directories", detail: `${shared.key}: ${shared.message}`, fix: shared.fix });
  // Every target: with several, each line names the one it is about.
  const all = allTargets(config);
  // rsync here matters only to targets that use it; "auto" does without it.
  const kinds = new Set(all.map((c) => (c.target.host === "" ? "rsync" : c.target.transport)));
  if (kinds.has("rsync") || kinds.has("auto")) {
    const r = await checkLocalRsync();
    await add(r.verdict === "fail" && !kinds.has("rsync") ? { ...r, verdict: "warn", detail: "not found: auto uses sftp" } : r);
  }
  for (const c of all) {
    const suffix = all.length > 1 ? ` (${describeTarget(c)})` : "";
    let reached = false;
    for await (const r of checkTarget(c, env)) {
      await add({ ...r, label: `${r.label}${suffix}` });
      reached = r.label === "destination" && r.verdict === "ok";
    }
    if (reached) {
      const p = await checkPromotion(c);
      await add({ ...p, label: `${p.label}${suffix}` });
    }
    const f = checkFence(c);
    await add({ ...f, label: `${f.label}${suffix}` });
    const v = checkLastVerify(c);
    await add({ ...v, label: `${v.label}${suffix}` });
  }
  await add(checkInotify(config));
  await add(checkHistory(config));
  for (const r of checkFreeSpace(config)) await add(r);

  const failed = results.filter((r) => r.verdict === "fail").length;
  await writeOut(failed === 0 ? `${c.green("all checks passed")}\n` : `${c.red(`${plural(failed, "check")} failed`)}\n`);
  return failed === 0 ? ExitCode.Ok : ExitCode.Pending;
}

async function* checkTarget(config: Config, env: Record<string, string | undefined>): AsyncGenerator<Result> {
  const t = config.target;
  if (t.host === "") {
    yield checkLocalDest(t.destDir);
    return;
  }
  const key = checkKey(t.sshKeyPath, t.transport);
  yield key;
  const known = await checkKnownHost(config);
  yield known;
  if (known.verdict !== "ok") return;
  if (t.transport === "sftp") {
    yield* checkSftp(config, env);
    return;
  }
  const login = await runRemote(config.target, "true");
  yield login.code === 0
    ? { verdict: "ok", label: "ssh login", detail: `${t.user ? `${t.user}@` : ""}${t.host} port ${t.port}` }
    : { verdict: "fail", label: "ssh login", detail: lastLine(login.err) || `ssh exited ${login.code}`, fix: key.verdict === "fail" ? "fix the ssh key first (above): ssh ignores a key others can read" : loginFix(login.err, config) };
  if (login.code !== 0) return;
  if (t.transport === "auto") {
    const c = await chooseTransport(t);
    if ("error" in c) {
      yield { verdict: "fail", label: "transport", detail: c.error };
      return;
    }
    yield { verdict: "ok", label: "transport", detail: `${c.kind} (auto: ${c.why})` };
    if (c.kind === "sftp") {
      yield* checkSftp(config, env);
      return;
    }
  } else {
    yield { verdict: "ok", label: "transport", detail: "rsync over ssh" };
  }
  yield await checkRemoteRsync(config);
  yield await checkRemoteDest(config);
}

/** The SFTP transport's own client does the login and a test write, so a ✓ means its transfers get in too. */
async function* checkSftp(config: Config, env: Record<string, string | undefined>): AsyncGenerator<Result> {
  const t = config.target;
  const { SftpTransport } = await import("../transport/sftp/transport.ts");
  const r = await new SftpTransport({ target: t, sourceDir: config.sourceDir, env }).probeDestination();
  if (r.login !== null) {
    yield { verdict: "fail", label: "ssh login", detail: r.login, fix: /host key/.test(r.login) ? "see the message: host keys are never accepted blindly" : loginFix(r.login, config) };
    return;
  }
  yield { verdict: "ok", label: "ssh login", detail: `${t.user ? `${t.user}@` : ""}${t.host} port ${t.port} (built-in SSH client)` };
  yield { verdict: "ok", label: "transport", detail: `sftp${t.transport === "auto" ? "" : " (configured)"}: ${r.detail}` };
  yield r.dest === null
    ? { verdict: "ok", label: "destination", detail: `${t.destDir} on the standby is writable` }
    : { verdict: "fail", label: "destination", detail: r.dest, fix: destinationFix(r.dest, t.destDir, t.user, "sftp") };
}

/**
 * The change history in the state DB: its size and span against the retention settings, and free pages the DB
 * keeps (never a failure: a warning when the DB holds much free space it cannot give back).
 */
function checkHistory(config: Config): Result {
  let h: HistoryFacts | null = null;
  try {
    const store = StateStore.openExisting(config.stateFile);
    try {
      h = store === null ? null : historyFacts(store);
    } finally {
      store?.close();
    }
  } catch (e) {
    return { verdict: "warn", label: "history", detail: `cannot read ${config.stateFile}: ${(e as Error).message}` };
  }
  if (h === null) return { verdict: "ok", label: "history", detail: "no state DB yet" };
  const ct = config.changeTracking;
  const limits = `keep_history ${ct.keepHistoryDays > 0 ? `${ct.keepHistoryDays} d` : "for ever"}, max_history_bytes ${ct.maxHistoryBytes > 0 ? formatBytes(ct.maxHistoryBytes) : "unlimited"}`;
  const detail = `${historyLine(h, (t) => formatTimestamp(new Date(t)).slice(0, 19))} (${limits})`;
  if (!h.incremental && h.freeBytes > 64 * 1024 ** 2) {
    return { verdict: "warn", label: "history", detail, fix: "the free pages are reused by new rows (the file no longer grows); to give them back, stop rrdsync and run: sqlite3 STATE_FILE 'PRAGMA auto_vacuum = INCREMENTAL; VACUUM' (needs the DB's size free on its disk)" };
  }
  return { verdict: "ok", label: "history", detail };
}

/** The fence in the state DB (issue 23): a fenced target is a failure, with the way to look into it. */
function checkFence(config: Config): Result {
  let f: FenceRecord | null = null;
  try {
    const store = StateStore.openExisting(config.stateFile);
    try {
      f = store === null ? null : readFence(store);
    } finally {
      store?.close();
    }
  } catch (e) {
    return { verdict: "warn", label: "fence", detail: `cannot read ${config.stateFile}: ${(e as Error).message}` };
  }
  if (f === null) return { verdict: "ok", label: "fence", detail: "not fenced: the standby holds what rrdsync delivered, as far as it has looked" };
  return {
    verdict: "fail", label: "fence", detail: `FENCED since ${formatTimestamp(new Date(f.since)).slice(0, 19)} (${fenceSummary(f)}): nothing is written, deleted or moved there`,
    fix: `rrdsync unfence${targetOption(config)} shows what the standby changed and the ways on (failback, --overwrite, --keep-replica)`,
  };
}

/** Is the standby marked as promoted (rrdsync promote)? Asked the way a batch asks it, through the transport. */
async function checkPromotion(config: Config): Promise<Result> {
  const transport = createTransport(config);
  try {
    const r = await transport.replicaState([]);
    if (r.error !== undefined) return { verdict: "fail", label: "replica check", detail: r.error, fix: "rrdsync asks the standby's GNU stat (rsync transport) before each batch: install coreutils there, or use the sftp transport" };
    if (r.marker === null && r.fence !== null) {
      // the fence recorded on the standby: the next run refuses the target, whatever this state DB says
      const f = "text" in r.fence ? parseFenceMarker(r.fence.text) : null;
      return {
        verdict: "fail", label: "fenced on the standby",
        detail: f === null ? `${config.target.destDir}/${FENCED_MARKER} on the standby fences this target (it cannot be read)` : `${config.target.destDir}/${FENCED_MARKER}: fenced by ${f.host} at ${f.fencedAt} (${f.files} file${f.files === 1 ? "" : "s"} changed on the standby${f.conflicts[0] ? `, first: ${JSON.stringify(f.conflicts[0].path)}` : ""}): this target is refused`,
        fix: `rrdsync unfence${targetOption(config)} shows the ways on (README: Failover and failback)`,
      };
    }
    if (r.marker === null) return { verdict: "ok", label: "replica check", detail: `${config.target.destDir} is not promoted; the standby answers the check a batch makes` };
    const m = "text" in r.marker ? parseMarker(r.marker.text) : null;
    return {
      verdict: "fail", label: "promoted",
      detail: m === null ? `${config.target.destDir}/${PROMOTED_MARKER} on the standby marks it as promoted` : `the standby ${m.host} was promoted at ${m.promotedAt} (rrdsync promote): this target is refused`,
      fix: "rrdsync failback brings its data back here; or point this rrdsync at the new standby. README: Failover and failback",
    };
  } finally {
    await transport.close();
  }
}

/** When `rrdsync verify` last compared the replica with the source, and what it found (never a failure of the setup). */
function checkLastVerify(config: Config): Result {
  let v: ReturnType<StateStore["status"]>["lastVerify"];
  try {
    const store = StateStore.openExisting(config.stateFile, identityOf(config));
    try {
      v = store?.status().lastVerify;
    } finally {
      store?.close();
    }
  } catch (e) {
    return { verdict: "warn", label: "last verify", detail: `cannot read ${config.stateFile}: ${(e as Error).message}` };
  }
  const fix = "rrdsync verify (it compares by content; nightly from cron on a big tree: rrdsync verify --sample 10%)";
  if (v === undefined) return { verdict: "warn", label: "last verify", detail: "never run: nothing has compared the replica with the source yet", fix };
  const detail = `${formatTimestamp(new Date(v.time)).slice(0, 19)}: ${verifyLine(v)}`;
  if (v.error) return { verdict: "warn", label: "last verify", detail, fix };
  const drift = v.differs + v.missing + v.newer + v.extra + v.errors;
  if (drift > v.repaired) return { verdict: "warn", label: "last verify", detail, fix: "rrdsync verify to see the differences, rrdsync verify --repair to send them again" };
  return { verdict: "ok", label: "last verify", detail };
}

function checkSource(config: Config): Result {
  try {
    if (!statSync(config.sourceDir).isDirectory()) throw Object.assign(new Error(), { code: "ENOTDIR" });
    readdirSync(config.sourceDir);
    return { verdict: "ok", label: "source", detail: `${config.sourceDir} is readable` };
  } catch (e) {
    return { verdict: "fail", label: "source", detail: `${config.sourceDir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, fix: "set source_dir to the RRD directory (OpenNMS: share/rrd), readable by this user" };
  }
}

async function checkLocalRsync(): Promise<Result> {
  const r = await run(["rsync", "--version"]);
  if (r.code !== 0) return { verdict: "fail", label: "rsync (here)", detail: "not found", fix: "install rsync (apt-get install rsync / dnf install rsync)" };
  return { verdict: "ok", label: "rsync (here)", detail: rsyncVersion(r.out) ?? "present" };
}

/** A real write (a temp file made and removed): access(2) says nothing true about immutable dirs, ACLs or NFS. */
function checkLocalDest(dir: string): Result {
  try {
    mkdirSync(dir, { recursive: true });
    const probe = join(dir, `.rrdsync-check-${process.pid}`);
    writeFileSync(probe, "", { flag: "wx" });
    rmSync(probe, { force: true });
    return { verdict: "ok", label: "destination", detail: `${dir} (local directory) is writable` };
  } catch (e) {
    const why = describeFsError(e);
    return { verdict: "fail", label: "destination", detail: `${dir}: ${why}`, fix: destinationFix(why, dir, "", "local") };
  }
}

/**
 * The fix for a destination that refuses writes, from what refused it: a read-only mount, an immutable
 * directory, a full disk and plain permissions each have their own (mkdir/chown fixes only the last).
 */
export function destinationFix(error: string, dir: string, user: string, via: "local" | "ssh" | "sftp"): string {
  const where = via === "local" ? "" : "on the standby: ";
  if (/read-only file system|EROFS/i.test(error)) return `${where}the file system holding ${dir} is mounted read-only: remount it read-write (mount -o remount,rw MOUNTPOINT), or point remote_dest_dir at a writable one`;
  if (/no space|ENOSPC|quota|EDQUOT/i.test(error)) return `${where}the file system holding ${dir} is full (or the user's quota is): free some space (df -h ${dir})`;
  if (/operation not permitted|EPERM|immutable/i.test(error)) return `${where}${dir} (or a directory above it) is immutable or append-only: lsattr -d ${dir}, then chattr -i (or -a) on it`;
  const chown = `${where}mkdir -p ${dir} && chown ${user || (via === "local" ? "$(id -un)" : "<remote_user>")} ${dir}`;
  if (/permission denied|EACCES/i.test(error)) {
    // SFTP's "permission denied" also covers EPERM: an immutable directory reads the same.
    return via === "sftp" ? `${chown} (if it already belongs to that user: lsattr -d ${dir} for an immutable directory)` : chown;
  }
  if (via === "sftp" && /\bfailure\b/i.test(error)) return `${where}the SFTP server refused without a reason: a read-only file system, a full disk or a quota on ${dir} are the usual causes (mount, df -h ${dir})`;
  return `${chown}, and check that its file system is mounted read-write and not full`;
}

function checkKey(key: string, transport: string): Result {
  if (key === "") return { verdict: "ok", label: "ssh key", detail: "none configured: ssh's default keys and agent are used" };
  let mode: number;
  try {
    mode = statSync(key).mode;
    readFileSync(key);
  } catch (e) {
    return { verdict: "fail", label: "ssh key", detail: `${key}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, fix: "point remote_sync.ssh_key_path at a private key this user can read" };
  }
  if ((mode & 0o077) !== 0) {
    // The built-in SFTP client still uses it (a warning), OpenSSH refuses it (a failure).
    return { verdict: transport === "sftp" ? "warn" : "fail", label: "ssh key", detail: `${key} is accessible by others (mode ${(mode & 0o777).toString(8)}): ssh refuses such keys`, fix: `chmod 600 ${key}` };
  }
  return { verdict: "ok", label: "ssh key", detail: `${key} (mode ${(mode & 0o777).toString(8)})` };
}

async function checkKnownHost(config: Config): Promise<Result> {
  const t = config.target;
  const name = lookupName(t.host, t.port);
  const scan = `ssh-keyscan -p ${t.port} ${t.host} >> ${t.knownHostsFile}   (then compare the fingerprint with ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on the standby)`;
  if (!existsSync(t.knownHostsFile)) {
    return { verdict: "fail", label: "host key", detail: `${t.knownHostsFile} does not exist`, fix: scan };
  }
  // The SFTP client reads known_hosts itself (no OpenSSH needed here); the rsync transport's ssh asks ssh-keygen's view.
  const listed = t.transport === "sftp"
    ? (await import("../transport/ssh/session.ts")).readKnownHosts(t.knownHostsFile).some((l) => l.marker === "" && hostsFieldMatches(l.hosts, name))
    : (await run(["ssh-keygen", "-F", name, "-f", t.knownHostsFile])).code === 0;
  if (!listed) return { verdict: "fail", label: "host key", detail: `${name} is not in ${t.knownHostsFile} (host keys are never accepted blindly)`, fix: scan };
  return { verdict: "ok", label: "host key", detail: `${name} is in ${t.knownHostsFile}` };
}

async function checkRemoteRsync(config: Config): Promise<Result> {
  const r = await runRemote(config.target, "rsync --version");
  const v = rsyncVersion(r.out);
  if (r.code !== 0 || v === null) {
    return { verdict: "fail", label: "rsync (standby)", detail: lastLine(r.err) || "not found on the standby", fix: "install rsync on the standby (apt-get install rsync / dnf install rsync), or set remote_sync.transport to \"sftp\"" };
  }
  const [major = 0, minor = 0] = (v.match(/\d+/g) ?? []).map(Number);
  if (major < 3) return { verdict: "fail", label: "rsync (standby)", detail: `${v}: older than 3.0, which rrdsync needs`, fix: "upgrade rsync on the standby" };
  return { verdict: "ok", label: "rsync (standby)", detail: `${v}${major === 3 && minor < 1 ? " (old but usable)" : ""}` };
}

async function checkRemoteDest(config: Config): Promise<Result> {
  const d = config.target.destDir;
  const q = `'${d.replaceAll("'", "'\\''")}'`;
  // A real write, as in checkLocalDest: `test -w` is true for root on an immutable directory or a read-only mount.
  const r = await runRemote(config.target, `mkdir -p -- ${q} && t=$(mktemp -p ${q} .rrdsync-check.XXXXXX) && rm -f -- "$t"`);
  if (r.code !== 0) {
    const why = lastLine(r.err);
    return { verdict: "fail", label: "destination", detail: `${d} on the standby is not writable${why ? `: ${why}` : ""}`, fix: destinationFix(why, d, config.target.user, "ssh") };
  }
  return { verdict: "ok", label: "destination", detail: `${d} on the standby is writable` };
}

function checkInotify(config: Config): Result {
  let limit: number | null = null;
  try {
    limit = Number(readFileSync("/proc/sys/fs/inotify/max_user_watches", "utf8").trim());
  } catch {
    return { verdict: "warn", label: "inotify", detail: "cannot read fs.inotify.max_user_watches (not Linux?): --watch falls back to polling scans" };
  }
  const dirs = countDirs(config.sourceDir);
  const need = dirs + 1000; // other programs of this user watch too
  if (need > limit) {
    return { verdict: "fail", label: "inotify", detail: `the tree has ${dirs} directories, the watch limit is ${limit}: --watch would fall back to polling`, fix: `sysctl fs.inotify.max_user_watches=${Math.max(need * 2, 65536)} (and in /etc/sysctl.d/ to keep it)` };
  }
  return { verdict: "ok", label: "inotify", detail: `${dirs} directories to watch, limit ${limit}` };
}

function checkFreeSpace(config: Config): Result[] {
  const ct = config.changeTracking;
  const places: Array<[string, string]> = [[dirname(config.stateFile), "state"], [ct.backupDir, "backups"], [dirname(ct.changeLogFile), "change log"]];
  if (config.logging.logFile) places.push([dirname(config.logging.logFile), "log"]);
  // One line per file system, naming what lives on it.
  const byFs = new Map<string, { at: string; free: number; what: string[] }>();
  const out: Result[] = [];
  for (const [dir, what] of places) {
    const at = nearestExisting(dir);
    try {
      const s = statfsSync(at);
      const key = `${s.type}:${s.blocks}:${s.files}`;
      const fs = byFs.get(key) ?? { at, free: Number(s.bavail) * Number(s.bsize), what: [] };
      fs.what.push(what);
      byFs.set(key, fs);
    } catch (e) {
      out.push({ verdict: "warn", label: `free space (${what})`, detail: `${at}: ${(e as Error).message}` });
    }
  }
  for (const { at, free, what } of byFs.values()) {
    const label = `free space (${what.join(", ")})`;
    out.push(free < MIN_FREE_BYTES
      ? { verdict: "fail", label, detail: `${formatBytes(free)} free at ${at}`, fix: "free some space, or move backup_dir / change_log_file / state_file elsewhere; lower keep_versions or max_backup_bytes" }
      : { verdict: "ok", label, detail: `${formatBytes(free)} free at ${at}` });
  }
  return out;
}

function nearestExisting(dir: string): string {
  let d = dir;
  while (!existsSync(d) && dirname(d) !== d) d = dirname(d);
  return d;
}


function rsyncVersion(out: string): string | null {
  const m = /rsync\s+version\s+(\S+)/.exec(out);
  return m ? `rsync ${m[1]}` : null;
}

const lastLine = (s: string) => s.trim().split("\n").filter((l) => l.trim() !== "").pop()?.trim() ?? "";

function loginFix(err: string, config: Config): string {
  const t = config.target;
  if (/Permission denied/i.test(err)) return `add the public key of ${t.sshKeyPath || "your key"} to ~${t.user || ""}/.ssh/authorized_keys on ${t.host}`;
  if (/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED/i.test(err)) return `the standby's host key does not match ${t.knownHostsFile}: if it really changed, remove the old line (ssh-keygen -R) and add the new one after checking its fingerprint`;
  if (/Connection refused|timed out|No route|Could not resolve/i.test(err)) return `is sshd running on ${t.host} port ${t.port}, and reachable from here?`;
  return "run the ssh command by hand with -v to see why";
}

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  if (Bun.which(argv[0] as string) === null) return { code: 127, out: "", err: `${argv[0]}: not found` };
  const p = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => p.kill("SIGKILL"), SSH_TIMEOUT_MS);
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  return { code, out, err };
}
