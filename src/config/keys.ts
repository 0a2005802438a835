// Every config key, declared once: its path, its rule (what it accepts), its default and what it means. The
// validator's schema (validate.ts), the defaults the loader fills in (load.ts, targets.ts) and the reference in
// docs/config.md (written by scripts/docs.ts, checked by test/unit/docs.test.ts) are all made from this table, so
// they cannot drift apart. Order matters: it is the reference's order, and "did you mean" breaks ties by it.
import {
  DEFAULT_BATCH_COLLECT_S, DEFAULT_BATCH_MAX_BYTES, DEFAULT_BATCH_MAX_FILES, DEFAULT_DEBOUNCE_S, DEFAULT_EXTENSIONS, DEFAULT_KEEP_HISTORY_DAYS,
  DEFAULT_KEEP_LOGS, DEFAULT_KEEP_VERSIONS, DEFAULT_MAX_BACKUP_BYTES, DEFAULT_MAX_DELETE, DEFAULT_MAX_HISTORY_BYTES, DEFAULT_MAX_LOG_BYTES,
  DEFAULT_POLL_INTERVAL_S, DEFAULT_RESCAN_INTERVAL_S, DEFAULT_RRD_HOLD_ATTEMPTS, DEFAULT_RRD_HOLD_DELAY_S, DEFAULT_RRD_STALE_STEPS,
  DEFAULT_RRD_SUMMARY_INTERVAL_S, DEFAULT_SFTP_PARALLEL_FILES, DEFAULT_SLICE_MAX_FILES, DEFAULT_SSH_CIPHERS,
} from "./defaults.ts";
import type { MaxDelete } from "./max-delete.ts";
import {
  bool, ciphers, days, extensions, hostName, int, listenAddress, LOG_LEVELS, MAX_BWLIMIT, maxDelete, objectList, oneOf, path, type Rule, seconds, str, userName,
} from "./rules.ts";

export interface KeyDecl<T = unknown> {
  rule: Rule<T>;
  /** the value when the key is absent (or null); absent itself when the key is required or its default is worked out (see `shown`) */
  value?: T;
  /** how the reference shows the default, when that is not the value itself */
  shown?: string;
  /** what the key means: one line of Markdown (links point into docs/) */
  doc: string;
  /** a list of objects: the key prefixes whose keys each element takes ("targets": remote_sync's, and its own) */
  items?: string[];
}

function key<T>(rule: Rule<T>, d: { value: NoInfer<T>; shown?: string } | { shown: string }, doc: string, items?: string[]): KeyDecl<T> {
  return { rule, ...d, doc, ...(items ? { items } : {}) };
}
const REQUIRED = { shown: "(required)" };

export const KEYS = {
  source_dir: key(path({ allowEmpty: false }), REQUIRED,
    "the tree to replicate: a directory, named as it is. A symlink (`cur -> v1`) is exit 2 in every command with the directory to name instead (a link re-pointed under a running daemon would swap the tree under it); so is `/`"),
  state_file: key(path({ allowEmpty: true }), { shown: "`~/.local/state/rrdsync/state-<key>.db` (`<key>`: a hash of source and destination; `$XDG_STATE_HOME` if set)" },
    "SQLite state DB; a lock `<state_file>.lock` sits beside it. Must be a file path (a directory, or a path under a file, is exit 2). It records the source and destination it describes: pointed at another pair it is exit 2 (see [the config re-pointed](troubleshooting.md#exit-2-the-config-re-pointed-at-another-standby-or-source); `--rebuild-state`). Its directory (like those of the backups and logs) must not be writable by another user than the one rrdsync runs as (exit 2 with the fix)"),
  "remote_sync.remote_user": key(userName, { value: "", shown: '`""` (ssh\'s default)' },
    "the login name on the standby (not starting with `-`, no `:`, `/`, spaces or control characters)"),
  "remote_sync.remote_host": key(hostName, { value: "" },
    "standby host; **empty = `remote_dest_dir` is a local directory** (no SSH). A host name, an IPv4 or IPv6 address (`::1` or `[::1]`) or an ssh_config alias: letters, digits and `. - _ : %`, not starting with `-`"),
  "remote_sync.remote_dest_dir": key(path({ allowEmpty: false }), REQUIRED,
    "absolute destination path. A local one may not be `/`, `source_dir` itself, inside it or above it (symlinks resolved); a remote one may be `/` only with `\"transport\": \"sftp\"` (an SFTP-only account's chroot)"),
  "remote_sync.ssh_key_path": key(path({ allowEmpty: true }), { value: "", shown: '`""` (ssh\'s default keys)' },
    "private key; used with `IdentitiesOnly=yes`. SFTP: OpenSSH, PEM or PKCS#8; Ed25519, ECDSA, RSA (see [SFTP credentials](transports.md#sftp-credentials))"),
  "remote_sync.port": key(int(1, 65535), { value: 22 }, "SSH port"),
  "remote_sync.known_hosts_file": key(path({ allowEmpty: false }), { shown: "`~/.ssh/known_hosts`" },
    "host keys are verified against it (`StrictHostKeyChecking=yes`, `BatchMode=yes`); any path works, with spaces, quotes or `%` too (quoted for ssh)"),
  "remote_sync.ssh_ciphers": key(ciphers, { value: DEFAULT_SSH_CIPHERS },
    "`ssh -c` for transfers: AES-GCM first (hardware AES on any current server makes it several times cheaper per byte than ChaCha20, ssh's own first choice), then the rest of OpenSSH's defaults, so any standby that takes OpenSSH's defaults still agrees on one. `\"\"` = leave the choice to ssh and `~/.ssh/config`. A comma list of cipher names without spaces (`ssh -Q cipher`), optionally starting with `+`, `-` or `^`"),
  "remote_sync.transport": key(oneOf(["rsync", "sftp", "auto"]), { value: "rsync" },
    "`\"rsync\"`, `\"sftp\"` (built-in client, no rsync needed on the standby) or `\"auto\"` (rsync when both ends have it); see [transports](transports.md). `--transport` overrides it for every target"),
  "remote_sync.sftp_parallel_files": key(int(1, 64), { value: DEFAULT_SFTP_PARALLEL_FILES }, "SFTP: files written at once"),
  "remote_sync.ssh_passphrase_file": key(path({ allowEmpty: true }), { value: "" },
    "SFTP: a file holding the key's passphrase (one line, mode 600; `RRDSYNC_SSH_PASSPHRASE` takes precedence)"),
  targets: key(objectList, { value: [] as unknown[] },
    "further standbys, each an object with `remote_sync`'s keys plus `name` and `state_file` (below). Targets never share state: two with the same `name` or `state_file`, two unnamed ones on the same host and port (give them names), or two to the same destination are exit 2 naming both. Each is replicated on its own: its own state DB, pending files and backoff, in parallel (`--once`) or in its own lane (`--watch`), so one standby that is down never holds back another; `status` and `check` report each. The change log and the backups follow the first target (`remote_sync`, or the first of `targets` without it). A `\"targets\"` list alone (no `remote_sync`) works too",
    ["remote_sync", "targets[]"]),
  "targets[].name": key(str, { shown: "`host:port`, or the path of a local one" }, "the target's name, as `status`, `check` and the metrics' `target` label show it"),
  "targets[].state_file": key(path({ allowEmpty: false }), { shown: "`<state_file>.<name>.db`" }, "the target's own state DB"),
  "logging.log_file": key(path({ allowEmpty: true }), { value: "", shown: '`""` (none)' },
    "log in the seed's format `2024-12-12 15:05:40,908 - INFO - …`. A directory, or a file that cannot be created, is exit 2"),
  "logging.log_level": key(oneOf(LOG_LEVELS, { WARN: "WARNING", FATAL: "CRITICAL" }), { value: "INFO" },
    "`DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL` (any case; `WARN` and `FATAL` are read as `WARNING` and `CRITICAL`)"),
  delete: key(bool, { value: false },
    "`true`: a file gone from the source (also one deleted while rrdsync was not running) is deleted on the replica and recorded (`File deleted`, kind `deleted`); its last backup stays restorable. Only tracked files go: other files in the replica's directories are never touched, and a directory that still holds any stays. Done with rsync filter rules and `--delete` (as lsyncd does), so it works with any rsync on the standby, including 3.4.3 whose `--delete-missing-args` is broken"),
  max_delete: key(maxDelete, { value: DEFAULT_MAX_DELETE as MaxDelete, shown: '`"10%"`' },
    "the guard: when one pass (or one daemon batch) would delete more than this (a count, or a percentage of the tracked files), nothing is deleted, the log says why and how many, and `--once` exits 1: an unmounted or emptied source never wipes the standby. Raise it for one run when the deletes are meant"),
  "retry.initial": key(seconds(0.1), { value: 1 },
    "`--watch`: files the destination did not confirm are retried after this many seconds, doubling up to `retry.max` (±20% jitter); `--once` leaves them to the next run"),
  "retry.max": key(seconds(1), { value: 300 }, "`--watch`: the longest wait between retries (at least `retry.initial`)"),
  debounce_time: key(seconds(0), { value: DEFAULT_DEBOUNCE_S }, "`--watch`: seconds a changed file must be quiet before it ships"),
  batch_collect_time: key(seconds(0), { value: DEFAULT_BATCH_COLLECT_S },
    "`--watch`: while events keep coming (a river of RRD updates), a batch that is due waits up to this many seconds more for others, or until `batch_max_files` are due (see [watch](watch.md#a-river-not-a-burst)); a burst that ended goes at once. `0` = off (a batch per quarter debounce)"),
  max_delay: key(seconds(0), { shown: "`3 × debounce_time` (at least 1)" },
    "`--watch`: a file rewritten continuously ships at least this often (seconds, ≥ `debounce_time`)"),
  rescan_interval: key(seconds(0), { value: DEFAULT_RESCAN_INTERVAL_S }, "`--watch`: seconds between full safety rescans; `0` = off"),
  poll_interval: key(seconds(0), { value: DEFAULT_POLL_INTERVAL_S },
    "`--watch`: seconds between stat sweeps of the tracked files, for writers that keep a file mapped and open (no event until they close it); `0` = off. ~2 µs of CPU per file per sweep"),
  monitored_extensions: key(extensions, { value: DEFAULT_EXTENSIONS },
    "file name suffixes (`\"rrd\"` reads as `\".rrd\"`); `[]` = every regular file. An entry that cannot end a name (`\".\"`, a `/`, a control character such as a newline) or is a pattern (`\"*\"`, `\"*.rrd\"`) is exit 2"),
  "rsync_options.archive": key(bool, { value: true }, "`-a`"),
  "rsync_options.compress": key(bool, { value: false },
    "`-z` (rsync 3.2+ on both ends negotiates zstd). Set it for a standby across a WAN: on a slow link it makes a first sync of real RRDs about 3.5× faster and an update's deltas a third of the bytes ([measured](benchmarks.md#over-a-wan)); on a LAN it only costs CPU, so it stays off by default"),
  "rsync_options.verbose": key(bool, { value: false }, "log each transferred file's itemize line at INFO"),
  "rsync_options.update": key(bool, { value: false }, "`--update` (skip files newer on the standby)"),
  "rsync_options.checksum": key(bool, { value: false }, "`--checksum`"),
  "rsync_options.partial": key(bool, { value: false }, "`--partial-dir=.rrdsync-partial`: resumable, and partial data never appears at a final path"),
  "rsync_options.bwlimit": key(int(0, MAX_BWLIMIT), { value: 0 }, "KiB/s, 0 = unlimited; at most 2147483647 (rsync keeps it in a C `int`)"),
  "rsync_options.itemize_changes": key(bool, { value: false }, "log rsync's itemize lines at INFO (they are always parsed)"),
  "rsync_options.stats": key(bool, { value: false }, "log rsync's `--stats` block at INFO"),
  "change_tracking.enabled": key(bool, { value: true }, "`false`: replicate only (no change log, no backups, no history rows)"),
  "change_tracking.backup_dir": key(path({ allowEmpty: true }), { shown: "`<state dir>/backup` (without `state_file`: `~/.local/state/rrdsync/backup-<key>`)" },
    "copies of text files larger than 64 KiB as last synced (mirrors the tree), for diffs; smaller ones (nearly every text file of an RRD tree) are kept in the state DB, deflated. Copies found here without a row in the state DB (the seed script's, an older rrdsync's) are read as the current copy. Two configs whose state files share a directory must each set their own"),
  "change_tracking.change_log_file": key(path({ allowEmpty: true }), { shown: "`<state dir>/change_log.txt` (without `state_file`: `~/.local/state/rrdsync/change_log-<key>.txt`)" },
    "the audit trail (see [the change log](change-log.md))"),
  "change_tracking.diff_tool": key(oneOf(["difflib", "diff", "builtin"]), { value: "difflib" }, "`difflib`/`diff` are accepted for compatibility; diffs are always made in-process"),
  "change_tracking.keep_versions": key(int(1, 100_000), { value: DEFAULT_KEEP_VERSIONS },
    "backup versions kept per text file (the current one included), for `rrdsync restore`; older ones are deleted after each batch"),
  "change_tracking.max_backup_bytes": key(int(0, Number.MAX_SAFE_INTEGER), { value: DEFAULT_MAX_BACKUP_BYTES, shown: "`536870912` (512 MiB)" },
    "bytes all superseded versions may take together (oldest go first; the current copies, which the diffs need, always stay); `0` = no limit"),
  "change_tracking.max_log_bytes": key(int(0, Number.MAX_SAFE_INTEGER), { value: DEFAULT_MAX_LOG_BYTES, shown: "`104857600` (100 MiB)" },
    "the change log is rotated past this size to `change_log.txt.1.gz` (gzip); `0` = never (leave it to logrotate). Beside an external logrotate it only reopens when the file was moved away"),
  "change_tracking.keep_logs": key(int(1, 1000), { value: DEFAULT_KEEP_LOGS }, "rotated change logs kept (`.1.gz` … `.N.gz`)"),
  "change_tracking.first_sync_entries": key(oneOf(["auto", "every", "summary"]), { value: "auto" },
    "the change-log entries of a first sync: `\"every\"` file's, one `\"summary\"` entry, or `\"auto\"`: every file's for a tree of up to 10,000 files, a summary above. Each file's entry is in the state DB either way (`rrdsync log`)"),
  "change_tracking.rrd_updates": key(oneOf(["rollup", "every"]), { value: "rollup" },
    "routine RRD updates (the same structure, the last update forward: every RRD once per collection step) are `\"rollup\"`ed: no entry of their own, the file's row in the state DB holds its last update and values and counts them, and one summary entry per `rrd_summary_interval` says how many RRDs were updated how many times, with the exceptions by name. `\"every\"`: one entry per update, as the seed logged them (~270 bytes of change log and ~190 bytes of state DB each: at 1,000 updates/s that is ~40 GB a day)"),
  "change_tracking.rrd_summary_interval": key(seconds(1), { value: DEFAULT_RRD_SUMMARY_INTERVAL_S },
    "seconds per roll-up summary (periods start on the clock: 14:00, 15:00, …; a period without any RRD event writes nothing)"),
  "change_tracking.rrd_stale_steps": key(int(0, 1_000_000), { value: DEFAULT_RRD_STALE_STEPS },
    "an RRD that was updating and then has no update for this many of its own steps while the rest of the tree goes on (collection for its node or interface broke) gets a `stopped updating` entry, and a `resumed` one when it updates again; `0` = off. \"The rest of the tree goes on\" is the newest last update the routine updates brought (never ahead of the clock): when collection stops as a whole, nothing is called stale"),
  "change_tracking.keep_history": key(days(0), { value: DEFAULT_KEEP_HISTORY_DAYS },
    "days of change history kept in the state DB (`rrdsync log`, `restore`'s listing); older entries are pruned a few thousand at a time beside the batches. `0` = for ever. The change log file's rotation is apart (`max_log_bytes`, `keep_logs`)"),
  "change_tracking.max_history_bytes": key(int(0, Number.MAX_SAFE_INTEGER), { value: DEFAULT_MAX_HISTORY_BYTES, shown: "`1073741824` (1 GiB)" },
    "the change history's bytes in the state DB at most (its entries' texts plus ~40 bytes each); the oldest go first. `0` = no limit. Freed pages are given back to the file system a few at a time (incremental auto-vacuum; see [the change log](change-log.md#the-history-has-a-retention))"),
  "rrd_hold.attempts": key(int(0, 1000), { value: DEFAULT_RRD_HOLD_ATTEMPTS }, "an `.rrd`/`.jrb` that looks torn is held back this many times before it ships anyway, flagged; `0` = never hold"),
  "rrd_hold.delay": key(seconds(0), { value: DEFAULT_RRD_HOLD_DELAY_S }, "seconds between looks at a held file"),
  metrics_listen: key(listenAddress, { value: null, shown: '`""` (off)' },
    "`--watch`: serve Prometheus metrics at `http://HOST:PORT/metrics`, e.g. `\"127.0.0.1:9717\"` (`\"[::1]:9717\"`, `\"0.0.0.0:9717\"`); a host is required. An address in use stops the daemon at start with exit 2. At most 32 connections at once, each closed after its answer or 5 s. See [monitoring](monitoring.md)"),
  metrics_file: key(path({ allowEmpty: true }), { value: "", shown: '`""` (off)' },
    "write the same metrics to this file by rename, for node_exporter's textfile collector: `--once` after each run, `--watch` every 15 s and at stop (the collector reads `*.prom` files; a name without `.prom` is warned about). One that cannot be written makes `--once` exit 1 (the daemon logs it once until a write succeeds)"),
  batch_max_files: key(int(1, 10_000_000), { value: DEFAULT_BATCH_MAX_FILES }, "files per rsync process"),
  slice_max_files: key(int(1, 10_000_000), { value: DEFAULT_SLICE_MAX_FILES },
    "a first sync's walk goes in pieces of whole directories of about this many files (its memory is bounded by one; a single directory with more files is one piece); through SFTP each piece is also one transfer and one commit"),
  batch_max_bytes: key(int(1, Number.MAX_SAFE_INTEGER), { value: DEFAULT_BATCH_MAX_BYTES, shown: "`1073741824` (1 GiB)" },
    "bytes per rsync process (a batch always holds at least one file)"),
} satisfies Record<string, KeyDecl<any>>;

export type KeyPath = keyof typeof KEYS;
type ValueOf<K extends KeyPath> = (typeof KEYS)[K] extends KeyDecl<infer T> ? T : never;

/** The default of a key whose default is a plain value (not required, not worked out from other keys). */
export function defaultOf<K extends KeyPath>(k: K): ValueOf<K> {
  const d: KeyDecl = KEYS[k];
  if (!("value" in d)) throw new Error(`config key ${k} has no plain default`);
  return d.value as ValueOf<K>;
}

/** How the reference shows a key's default. */
export function shownDefault(d: KeyDecl): string {
  return d.shown ?? `\`${JSON.stringify(d.value)}\``;
}
