// `rrdsync promote DIR`, run on the standby when an admin fails over to it: marks the replica as promoted with a
// small marker at DIR's root (transport/marker.ts) that the old primary's rrdsync reads before it compares or
// writes anything there, and refuses the whole target (exit 4). Prints what to do next. Needs no config: the
// standby may have none.
import { closeSync, constants, fsyncSync, linkSync, lstatSync, openSync, statSync, unlinkSync, writeSync } from "node:fs";
import { hostname, userInfo } from "node:os";
import { join, resolve } from "node:path";
import { randomBytes } from "node:crypto";
import { ExitCode, UserError } from "../errors.ts";
import { quoteName } from "../names.ts";
import { readNoFollow } from "../transport/replica-check.ts";
import { formatMarker, MARKER_MAX_BYTES, parseMarker, PROMOTED_MARKER, REPLICA_ROOT_NAMES } from "../transport/marker.ts";
import { walkTree } from "../source/walk.ts";
import { versionLine } from "../version.ts";
import { writeOut } from "./out.ts";

export async function promoteCommand(dirArg: string | undefined, env: Record<string, string | undefined>): Promise<ExitCode> {
  if (dirArg === undefined || dirArg === "") throw new UserError("promote needs the replica's directory", ExitCode.Usage, "rrdsync promote /opt/opennms/share/rrd (on the standby: the remote_dest_dir the primary replicates to)");
  const dir = resolve(dirArg);
  let st;
  try {
    st = statSync(dir); // DIR itself may be a symlink, as a destination may
  } catch (e) {
    throw new UserError(`${dir}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such directory" : (e as Error).message}`, ExitCode.Usage, "give the replica's directory on this standby (the primary's remote_dest_dir)");
  }
  if (!st.isDirectory()) throw new UserError(`${dir} is not a directory`, ExitCode.Usage, "give the replica's directory on this standby (the primary's remote_dest_dir)");
  const marker = join(dir, PROMOTED_MARKER);
  const existing = readExisting(marker);
  if (existing !== null) {
    await writeOut(`${dir} is already promoted: ${existing}\nNothing changed. ${marker} is the marker; it stays until the replica is demoted (see README: Failover and failback).\n`);
    return ExitCode.Ok;
  }
  // What the replica holds now: the last state the primary delivered (its newest file says when that was).
  let files = 0;
  let bytes = 0;
  let newest: { path: string; mtimeNs: bigint } | null = null;
  const exclude = new Set(REPLICA_ROOT_NAMES.map((n) => join(dir, n)));
  for (const f of walkTree(dir, { extensions: [], exclude, onProblem: () => {} })) {
    files++;
    bytes += Number(f.stat.size);
    if (newest === null || f.stat.mtimeNs > newest.mtimeNs) newest = { path: f.rel, mtimeNs: f.stat.mtimeNs };
  }
  const now = new Date();
  const user = (() => {
    // Bun's userInfo() says "unknown" where the user is not in /etc/passwd's usual place: root is uid 0 anyway
    const uid = process.getuid?.();
    try {
      const name = userInfo().username;
      if (name !== "" && name !== "unknown") return name;
    } catch {
      // no passwd entry
    }
    return uid === 0 ? "root" : process.env.USER || process.env.LOGNAME || String(uid ?? "?");
  })();
  const text = formatMarker({
    host: hostname(), promotedAt: now.toISOString(), user, by: versionLine(),
    replica: { files, bytes, newest: newest === null ? null : { path: newest.path, mtime: new Date(Number(newest.mtimeNs / 1_000_000n)).toISOString() } },
  });
  writeMarker(dir, marker, text);
  const ageS = newest === null ? null : Math.round((now.getTime() - Number(newest.mtimeNs / 1_000_000n)) / 1000);
  const lines = [
    `${dir} is promoted: ${marker} written (${hostname()}, ${now.toISOString()}).`,
    `The replica holds ${files.toLocaleString("en-US")} files; the newest, ${newest === null ? "none" : `${quoteName(newest.path)}, was written ${ageS} s ago`}: what the primary delivered last.`,
    "",
    "Next:",
    "  1. Here: start OpenNMS on this host (systemctl start opennms). Its data goes into this directory from now on.",
    "  2. On the old primary, if it can be reached: stop rrdsync (systemctl disable --now rrdsync, or its cron line).",
    "     If it comes back by itself, its rrdsync reads this marker at its first contact and refuses this target",
    "     (exit 4, \"the standby … was promoted\"): nothing here is compared, overwritten or deleted.",
    "  3. Later, to make the old primary the standby of this one: point an rrdsync here at it (source_dir " + dir + "),",
    "     or bring this host's data back with rrdsync failback; README: Failover and failback.",
  ];
  if (ageS !== null && ageS < 60) lines.push("", `Note: a file here was written ${ageS} s ago: the primary may still be replicating. Stop it first if it can be reached.`);
  if (process.getuid?.() !== 0) lines.push("", `Warning: not run as root: the marker belongs to ${user}. Run it as root: the primary's login (the user rrdsync logs in as) could otherwise rewrite it; it can still delete it, since it writes in that directory.`);
  await writeOut(`${lines.join("\n")}\n`);
  void env;
  return ExitCode.Ok;
}

function readExisting(marker: string): string | null {
  const st = lstatSync(marker, { throwIfNoEntry: false });
  if (st === undefined) return null;
  if (!st.isFile()) return `${marker} is there but is not a regular file`;
  try {
    const m = parseMarker(readNoFollow(marker, MARKER_MAX_BYTES).toString("utf8"));
    return m === null ? `${marker} is there but is not one rrdsync wrote` : `${m.host} at ${m.promotedAt}${m.user ? ` by ${m.user}` : ""}`;
  } catch (e) {
    return `${marker} is there but cannot be read (${(e as Error).message})`;
  }
}

/**
 * Written under a random name (O_EXCL, O_NOFOLLOW: nothing planted there is followed or reused), synced, then
 * linked to the marker's name, which fails rather than replace one that appeared meanwhile.
 */
function writeMarker(dir: string, marker: string, text: string): void {
  const tmp = join(dir, `.${PROMOTED_MARKER}.${randomBytes(6).toString("hex")}`);
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
  try {
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    linkSync(tmp, marker);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(`${marker}: cannot write the promotion marker: ${code === "EEXIST" ? "one appeared meanwhile" : (e as Error).message}`, ExitCode.Usage,
      code === "EACCES" || code === "EPERM" || code === "EROFS" ? `run it as root, on a writable ${dir}` : "run rrdsync promote again");
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // gone already
    }
  }
  const d = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    fsyncSync(d); // the marker's name survives a power cut
  } finally {
    closeSync(d);
  }
}
