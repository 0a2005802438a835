// `rrdsync install` and `rrdsync uninstall`: carry out src/install/plan.ts's steps on the file system (or only print
// them, --dry-run), record what was written in a manifest, and remove exactly that again.
import { accessSync, chmodSync, chownSync, constants, existsSync, linkSync, lstatSync, mkdirSync, readFileSync, renameSync, rmdirSync, rmSync, statSync, unlinkSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { parseDest } from "../config/dest.ts";
import { parseConfigText } from "../config/read.ts";
import { copyToNew, tempBeside, writeFileAtomic } from "../safe-files.ts";
import { ExitCode, UserError } from "../errors.ts";
import { type DaemonUser, INSTALL_DEFAULTS, type InstallOptions, keptOriginalPath, type Manifest, manifestPath, nextSteps, planInstall, type Step, UNIT_NAME, unsafeDataDir, unsafeForUnitFiles, writableDirsOf } from "../install/plan.ts";
import { sha256File } from "../install/sha256.ts";
import { isCompiled, VERSION, versionLine } from "../version.ts";
import { starterConfig, writeConfigFile } from "./init.ts";

export interface InstallFlags {
  prefix?: string;
  etc?: string;
  config?: string;
  stateDir?: string;
  logDir?: string;
  systemdDir?: string;
  logrotateDir?: string;
  /** --without-systemd: no unit (cron only) */
  withoutSystemd?: boolean;
  root?: string;
  user?: string;
  dryRun?: boolean;
  purge?: boolean;
  source?: string;
  dest?: string;
}

const say = (line: string) => process.stdout.write(`${line}\n`);
/** One line per action, the verb in a column: "create  /var/lib/rrdsync (0750)"; a dry run says "would create". */
const act = (dry: boolean, verb: string, path: string, note = "") => say(`${dry ? "would " : ""}${verb.padEnd(8)}${path}${note ? ` ${note}` : ""}`);
const octal = (mode: number) => mode.toString(8).padStart(4, "0");

/**
 * An option's path: absolute as given (a relative one would be taken from wherever sudo happened to run, and written
 * into the unit as it resolved there), normalised, and plain enough for systemd and logrotate.
 */
function checkedPath(option: string, value: string): string {
  if (!isAbsolute(value)) throw new UserError(`${option} ${value}: not an absolute path`, ExitCode.Usage, `give it from the root: ${option} ${resolve(value)} if that is what you mean`);
  const p = resolve(value);
  const problem = unsafeForUnitFiles(p);
  if (problem !== null) throw new UserError(`${option} ${p}: ${problem}`, ExitCode.Usage, "choose a plain absolute path");
  return p;
}

/** The account from the system's user database (getent: also LDAP/SSSD users), with its primary group's name. */
function lookUpUser(name: string): DaemonUser {
  const entry = (db: string, key: string) => {
    const r = Bun.spawnSync(["getent", db, key], { stdout: "pipe", stderr: "ignore" });
    return r.exitCode === 0 ? r.stdout.toString().trim().split("\n")[0]?.split(":") ?? null : null;
  };
  const pw = entry("passwd", name);
  if (pw === null || pw.length < 7) {
    throw new UserError(`--user ${name}: no such user`, ExitCode.Usage, `create it first, e.g.: useradd --system --home-dir /var/lib/${name} --create-home --shell /usr/sbin/nologin ${name}`);
  }
  const uid = Number(pw[2]);
  const gid = Number(pw[3]);
  const group = entry("group", String(gid))?.[0] ?? String(gid);
  return { name, group, uid, gid, home: pw[5] || "/" };
}

function installOptions(flags: InstallFlags): InstallOptions {
  const d = INSTALL_DEFAULTS;
  const etcDir = checkedPath("--etc", flags.etc ?? d.etcDir);
  const user = flags.user === undefined || flags.user === "root" ? null : lookUpUser(String(flags.user));
  if (user !== null && unsafeForUnitFiles(`/${user.name}`) !== null) throw new UserError(`--user ${user.name}: not a plain user name`, ExitCode.Usage);
  const o: InstallOptions = {
    prefix: checkedPath("--prefix", flags.prefix ?? d.prefix),
    etcDir,
    configPath: checkedPath("--config", flags.config ?? join(etcDir, "config.json")),
    stateDir: checkedPath("--state-dir", flags.stateDir ?? d.stateDir),
    logDir: checkedPath("--log-dir", flags.logDir ?? d.logDir),
    systemdDir: flags.withoutSystemd === true ? null : checkedPath("--systemd-dir", flags.systemdDir ?? d.systemdDir),
    logrotateDir: checkedPath("--logrotate-dir", flags.logrotateDir ?? d.logrotateDir),
    root: flags.root === undefined ? "" : checkedPath("--root", flags.root),
    user,
  };
  for (const [option, dir, what] of [["--state-dir", o.stateDir, "state"], ["--log-dir", o.logDir, "log"], ["--etc", o.etcDir, "etc"]] as const) {
    const problem = unsafeDataDir(dir, what, o);
    if (problem !== null) throw new UserError(`${option} ${dir}: ${problem}`, ExitCode.Usage, `choose a directory of rrdsync's own, e.g. ${option} ${what === "state" ? d.stateDir : what === "log" ? d.logDir : d.etcDir}`);
  }
  // What the starter config will say, checked now: nothing is written when it would be refused.
  if (flags.source !== undefined && !isAbsolute(flags.source)) throw new UserError(`--source ${flags.source}: not an absolute path`, ExitCode.Usage, `give it from the root: --source ${resolve(flags.source)}`);
  if (flags.dest !== undefined) parseDest(flags.dest);
  return o;
}

/**
 * Every step checked before any is carried out: a file where a directory goes (or the reverse), a place this user
 * cannot write. An install refused half way would leave files without a manifest for uninstall.
 */
function preflight(steps: Step[], at: (p: string) => string): void {
  for (const step of steps) {
    const target = at(step.path);
    const st = lstatSync(target, { throwIfNoEntry: false });
    if (step.kind === "dir") {
      if (st !== undefined) {
        if (!statSync(target).isDirectory()) throw new UserError(`${target} exists and is not a directory`, ExitCode.Usage, "move it away, or choose another path");
        continue;
      }
    } else {
      if (st?.isDirectory()) throw new UserError(`${target} is a directory, where install writes a file`, ExitCode.Usage, "move it away, or choose another path");
      if (step.kind === "config" && st !== undefined) continue; // kept as it is
    }
    // The nearest directory that exists is where the new entry (or its first missing parent) is made.
    let up = dirname(target);
    for (let s2 = statSync(up, { throwIfNoEntry: false }); s2 === undefined && dirname(up) !== up; s2 = statSync(up, { throwIfNoEntry: false })) up = dirname(up);
    if (!statSync(up).isDirectory()) throw new UserError(`${up} is a file, so ${target} cannot be made`, ExitCode.Usage, "move it away, or choose another path");
    try {
      accessSync(up, constants.W_OK);
    } catch (e) {
      throw fsError(e, "write", target);
    }
  }
}

/** Who runs install, as chown spells it (the daemon runs as that user when there is no --user: root, normally). */
function ownerName(): string {
  const id = (flag: string) => Bun.spawnSync(["id", flag], { stdout: "pipe" }).stdout.toString().trim();
  return `${id("-un")}:${id("-gn")}`;
}

/** A failed write names the path and the usual fix instead of a stack. */
function fsError(e: unknown, what: string, path: string): UserError {
  const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
  const hint = code === "EACCES" || code === "EPERM" || code === "EROFS"
    ? "run it as root (sudo), or point --prefix, --etc, --state-dir, --log-dir, --systemd-dir and --logrotate-dir (or --root) at directories you can write"
    : undefined;
  return new UserError(`cannot ${what} ${path}: ${code}`, ExitCode.Usage, hint);
}

/**
 * A random temp name (created exclusively, never through a symlink) + rename, 0644: a reader (systemd, logrotate,
 * uninstall) never sees half a file, and nothing planted beside it is written through.
 */
function writeAtomically(path: string, text: string): void {
  writeFileAtomic(path, text, { mode: 0o644, sync: true });
}

/**
 * Keeps the file at `path` (not install's own) as `kept`: a hard link where both are on one file system (the same
 * file, its owner, mode and times), else a copy. `kept` must not exist yet.
 */
function keepOriginal(path: string, kept: string): void {
  try {
    linkSync(path, kept);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EXDEV") throw e;
    copyToNew(path, kept, statSync(path).mode & 0o7777);
  }
}

/** The directories an existing config at `path` writes to outside the state and log directories (none: no config yet). */
function configWrites(path: string, o: InstallOptions): string[] {
  let raw: Record<string, unknown>;
  try {
    raw = parseConfigText(readFileSync(path, "utf8"), path);
  } catch {
    return []; // none yet (the starter config writes only to the state and log directories), or not readable as one
  }
  const { dirs, unsafe } = writableDirsOf(raw, [o.stateDir, o.logDir]);
  for (const d of unsafe) say(`warning: ${d} (written by ${path}) cannot be named in ReadWritePaths= as it is (a space, quote or %): add it in a drop-in, systemctl edit rrdsync`);
  return dirs;
}

/** `path` if nothing is there, else `path.1`, `path.2`, …: a kept file never replaces another kept one. */
function freeName(path: string): string {
  for (let i = 0; ; i++) {
    const p = i === 0 ? path : `${path}.${i}`;
    if (lstatSync(p, { throwIfNoEntry: false }) === undefined) return p;
  }
}

/** `path` and its ancestors that do not exist yet, outermost first (final paths; looked up under root). */
function missingDirs(root: string, path: string): string[] {
  const out: string[] = [];
  for (let p = path; p !== dirname(p) && !existsSync(join(root, p)); p = dirname(p)) out.unshift(p);
  return out;
}

/** True when systemd runs this machine and the unit went to its usual place (not a test's or a package's root). */
function liveSystemd(o: { root: string }, unitPath: string | null): boolean {
  return o.root === "" && unitPath === join(INSTALL_DEFAULTS.systemdDir, UNIT_NAME) && existsSync("/run/systemd/system");
}

function systemctl(args: string[]): void {
  const r = Bun.spawnSync(["systemctl", ...args], { stdout: "pipe", stderr: "pipe" });
  say(`systemctl ${args.join(" ")}${r.exitCode === 0 ? "" : `: failed (${r.stderr.toString().trim() || `exit ${r.exitCode}`})`}`);
}

function readManifest(path: string): Manifest | null {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return null;
  }
  const bad = () => new UserError(`${path}: not a manifest written by rrdsync install`, ExitCode.Usage, "remove it and the files it names by hand (rrdsync help install lists them)");
  let m: Manifest;
  try {
    m = JSON.parse(text) as Manifest;
  } catch {
    throw bad();
  }
  if (typeof m !== "object" || m === null || !Array.isArray(m.files) || !Array.isArray(m.dirs) || !Array.isArray(m.dataDirs)) throw bad();
  if (m.originals !== undefined && (!Array.isArray(m.originals) || m.originals.some((x) => typeof x !== "object" || x === null))) throw bad();
  const paths = [...m.files.map((f) => f?.path), ...m.dirs, ...m.dataDirs, ...(m.config === null ? [] : [m.config]), ...(m.originals ?? []).flatMap((x) => [x.path, x.kept])];
  if (paths.some((p) => typeof p !== "string" || !p.startsWith("/") || p === "/") || m.files.some((f) => typeof f.sha256 !== "string")) throw bad();
  return m;
}

export async function installCommand(flags: InstallFlags): Promise<ExitCode> {
  if (!isCompiled()) {
    throw new UserError(
      "rrdsync install copies the running binary, but this is Bun running the source",
      ExitCode.Usage,
      "build it first and run the binary: bun run build && sudo dist/rrdsync install",
    );
  }
  const o = installOptions(flags);
  const dry = flags.dryRun === true;
  const at = (p: string) => join(o.root, p);
  const old = readManifest(at(manifestPath(o.etcDir)));
  // An upgrade: what the existing config writes besides the state and log directories (metrics_file's directory,
  // a local destination, …) must be writable under ProtectSystem=strict too.
  o.extraWritable = configWrites(at(o.configPath), o);
  const steps = planInstall(o) as Step[];
  preflight(steps, at);
  // A reinstall (an upgrade) keeps what the first install created, so uninstall still removes it.
  const m: Manifest = {
    version: VERSION, installed: new Date().toISOString(), user: o.user?.name ?? null,
    files: [...(old?.files ?? [])], dirs: [...(old?.dirs ?? [])], config: old?.config ?? null, dataDirs: [...(old?.dataDirs ?? [])],
    originals: [...(old?.originals ?? [])],
  };
  const recordFile = (path: string, sha256: string) => {
    m.files = [...m.files.filter((f) => f.path !== path), { path, sha256 }];
  };
  if (dry) say(`dry run: nothing is written${o.root ? `; every path below is under ${o.root}` : ""}`);
  let unitPath: string | null = null;

  for (const step of steps) {
    const target = at(step.path);
    try {
      if (step.kind === "dir") {
        const owner = step.owner === null ? "" : `, ${o.user?.name}:${o.user?.group}`;
        if (existsSync(target)) {
          if (!statSync(target).isDirectory()) throw new UserError(`${target} exists and is not a directory`, ExitCode.Usage, "move it away, or choose another path");
          // The daemon's own directories must be the daemon's (a switch between --user and root leaves them wrong).
          const st = statSync(target);
          const want = step.role === "state" || step.role === "log" ? (step.owner ?? { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 }) : null;
          if (want !== null && (st.uid !== want.uid || st.gid !== want.gid)) {
            const who = o.user === null ? `${ownerName()}` : `${o.user.name}:${o.user.group}`;
            say(`warning: ${target} exists but is not ${who.split(":")[0]}'s: the daemon cannot write it. Fix: chown -R ${who} ${target}`);
          } else act(false, "exists", target);
          continue;
        }
        const created = missingDirs(o.root, step.path);
        act(dry, "create", target, `(${octal(step.mode)}${owner})`);
        if (dry) continue;
        mkdirSync(target, { recursive: true, mode: 0o755 });
        chmodSync(target, step.mode); // mkdir's mode is cut by the umask
        if (step.owner !== null) chownSync(target, step.owner.uid, step.owner.gid);
        const own = created.pop() as string;
        m.dirs.push(...created.filter((d) => !m.dirs.includes(d)));
        const list = step.role === "etc" || step.role === "state" || step.role === "log" ? m.dataDirs : m.dirs;
        if (!list.includes(own)) list.push(own);
      } else if (step.kind === "binary") {
        act(dry, "install", target, `(${versionLine()}, 0755)`);
        if (dry) continue;
        const previous = existsSync(target) ? await sha256File(target) : null;
        // temp + rename: a running daemon keeps its old binary until restarted, never a half-copied one
        const tmp = tempBeside(target);
        try {
          copyToNew(process.execPath, tmp, 0o755);
          const sha = await sha256File(tmp);
          recordFile(step.path, sha);
          renameSync(tmp, target);
          if (previous !== null && previous !== sha) say(`note: a running rrdsync keeps the binary it started with; restart it (systemctl restart rrdsync) to run this one`);
        } finally {
          rmSync(tmp, { force: true });
        }
      } else if (step.kind === "file") {
        if (step.role === "unit") unitPath = step.path;
        const exists = existsSync(target);
        const same = exists && readFileSync(target, "utf8") === step.text;
        // A file there that install did not write as it is now (the admin's own unit or snippet, or ours edited):
        // kept, never lost; the admin's own goes back in place on uninstall.
        const ours = exists && old?.files.some((f) => f.path === step.path && f.sha256 === new Bun.CryptoHasher("sha256").update(readFileSync(target)).digest("hex"));
        const keep = exists && !same && !ours ? freeName(at(keptOriginalPath(o.etcDir, step.path, step.role))) : null;
        if (same) act(false, "same", target);
        else act(dry, "write", target, keep !== null ? `(the one there is kept as ${keep})` : exists ? "(replacing install's own)" : "");
        if (dry) continue;
        if (keep !== null) {
          mkdirSync(dirname(keep), { recursive: true });
          keepOriginal(target, keep);
          const admins = !old?.files.some((f) => f.path === step.path);
          if (admins && !m.originals?.some((x) => x.path === step.path)) m.originals = [...(m.originals ?? []), { path: step.path, kept: keep.slice(o.root.length) }];
        }
        writeAtomically(target, step.text);
        recordFile(step.path, new Bun.CryptoHasher("sha256").update(step.text).digest("hex"));
      } else if (step.kind === "config") {
        if (existsSync(target)) {
          act(false, "keep", target, "(exists)");
          continue;
        }
        act(dry, "write", target, "(a commented starter config: fill in the standby)");
        if (dry) continue;
        writeConfigFile(target, starterConfig({
          path: step.path, source: flags.source, dest: flags.dest, home: o.user?.home ?? homedir(), stateDir: o.stateDir, logDir: o.logDir,
        }));
        m.config = step.path;
      } else {
        act(dry, "write", target, "(what uninstall removes)");
        if (dry) continue;
        writeAtomically(target, `${JSON.stringify(m, null, 2)}\n`);
      }
    } catch (e) {
      if (e instanceof UserError) throw e;
      throw fsError(e, "write", target);
    }
  }
  if (!dry && liveSystemd(o, unitPath)) systemctl(["daemon-reload"]);
  const home = o.user?.home ?? homedir();
  process.stdout.write(`\n${dry ? "(dry run) " : ""}${nextSteps(o, { knownHosts: join(home, ".ssh/known_hosts"), keyPath: join(home, ".ssh/id_ed25519"), destGiven: flags.dest !== undefined })}`);
  return ExitCode.Ok;
}

export async function uninstallCommand(flags: InstallFlags): Promise<ExitCode> {
  const root = flags.root === undefined ? "" : resolve(flags.root);
  const at = (p: string) => join(root, p);
  const etcDir = checkedPath("--etc", flags.etc ?? (flags.config !== undefined ? dirname(resolve(flags.config)) : INSTALL_DEFAULTS.etcDir));
  const mpath = at(manifestPath(etcDir));
  // Uninstall runs as root and deletes what the manifest lists: it must be a file only root (or we) could write.
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(mpath);
  } catch {
    throw new UserError(`no install manifest at ${mpath}: nothing is known to have been installed there`, ExitCode.Usage, "pass the --etc (and --root) that install was given");
  }
  const me = process.getuid?.() ?? 0;
  for (const [p, s] of [[mpath, st], [dirname(mpath), statSync(dirname(mpath))]] as const) {
    if ((s.uid !== 0 && s.uid !== me) || (s.mode & 0o022) !== 0 || s.isSymbolicLink()) {
      throw new UserError(`${p} could have been written by another user (owner uid ${s.uid}, mode ${octal(s.mode & 0o7777)}): not trusted`, ExitCode.Usage, "check what it lists, then remove the files by hand");
    }
  }
  const m = readManifest(mpath) as Manifest;
  const dry = flags.dryRun === true;
  if (dry) say("dry run: nothing is removed");
  const unit = m.files.find((f) => f.path.endsWith(`/${UNIT_NAME}`))?.path ?? null;
  if (liveSystemd({ root }, unit)) {
    if (dry) say("would run: systemctl disable --now rrdsync.service");
    else systemctl(["disable", "--now", UNIT_NAME]);
  }
  const kept: string[] = [];
  try {
    for (const f of m.files) {
      const p = at(f.path);
      if (!existsSync(p)) {
        act(false, "gone", p);
      } else if ((await sha256File(p)) !== f.sha256) {
        act(false, "keep", p, "(changed since install)");
        kept.push(p);
      } else {
        act(dry, "remove", p);
        if (!dry) unlinkSync(p);
      }
    }
    // What install replaced that was not its own goes back in place, where install's file is gone now.
    for (const x of m.originals ?? []) {
      const [p, k] = [at(x.path), at(x.kept)];
      if (!existsSync(k)) continue;
      if (!dry ? !existsSync(p) : !kept.includes(p)) {
        act(dry, "restore", p, `(from ${k}: it was there before install)`);
        if (!dry) renameSync(k, p);
      } else if (flags.purge) {
        // install's file stays (changed since); the earlier one must not go with the config directory
        act(dry, "keep", `${p}.rrdsync-orig`, `(the file that was there before install; ${p} changed since, so it stays too)`);
        if (!dry) renameSync(k, `${p}.rrdsync-orig`);
      } else {
        say(`note: ${p} changed since install and stays; the file that was there before install is ${k}`);
      }
    }
    const data = [...(m.config ? [m.config] : []), ...m.dataDirs];
    if (flags.purge) {
      for (const p of data.map(at).filter((p) => existsSync(p))) {
        act(dry, "remove", p, statSync(p).isDirectory() ? "(and everything in it)" : "");
        if (!dry) rmSync(p, { recursive: true, force: true });
      }
    }
    act(dry, "remove", mpath);
    if (!dry) rmSync(mpath, { force: true });
    // Deepest first; a directory that holds anything else stays.
    for (const d of [...m.dirs].sort((a, b) => b.length - a.length)) {
      const p = at(d);
      if (!existsSync(p)) continue;
      try {
        if (!dry) rmdirSync(p);
        act(dry, "remove", p, dry ? "(if empty)" : "");
      } catch {
        act(false, "keep", p, "(not empty)");
      }
    }
    if (!flags.purge) {
      const left = data.map(at).filter((p) => existsSync(p));
      if (left.length > 0) say(`kept the config, state and logs: ${left.join(", ")} (rrdsync uninstall --purge removes them)`);
    }
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw fsError(e, "remove", (e as NodeJS.ErrnoException).path ?? mpath);
  }
  if (!dry && liveSystemd({ root }, unit)) systemctl(["daemon-reload"]);
  if (kept.length > 0) say(`left ${kept.length} changed file${kept.length === 1 ? "" : "s"} in place (compare them with what install writes: rrdsync install --dry-run)`);
  return ExitCode.Ok;
}
