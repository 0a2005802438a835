// The text exposition of the metrics: label escaping, families without samples left out, counters' names.
import { expect, test } from "bun:test";
import { zeroTotals } from "../../src/engine/metrics.ts";
import { escapeLabel, renderMetrics } from "../../src/metrics/prometheus.ts";

test("label values escape backslash, double quote and newline, and nothing else", () => {
  expect(escapeLabel('a"b\\c\nd é')).toBe('a\\"b\\\\c\\nd é');
});

test("one HELP and TYPE per family, a sample per target; unknown figures are left out, never invented", () => {
  const base = { status: {}, totals: { ...zeroTotals(), filesTransferred: 7 }, trackedFiles: 9, pendingFiles: 1, up: false, lag: null, fenced: false, conflicts: 0 };
  const text = renderMetrics([{ ...base, target: "u@h:/r" }, { ...base, target: 'lo"cal', fenced: true, conflicts: 3 }], null);
  expect(text).toContain('# TYPE rrdsync_files_transferred_total counter\nrrdsync_files_transferred_total{target="u@h:/r"} 7\nrrdsync_files_transferred_total{target="lo\\"cal"} 7\n');
  expect(text).toContain('rrdsync_target_up{target="u@h:/r"} 0\n');
  expect(text).toContain('rrdsync_target_fenced{target="u@h:/r"} 0\nrrdsync_target_fenced{target="lo\\"cal"} 1\n');
  expect(text).toContain('rrdsync_replica_conflicts{target="lo\\"cal"} 3\n');
  expect(text).toContain('rrdsync_last_success_timestamp_seconds{target="u@h:/r"} 0\n'); // never: 0
  expect(text).not.toContain("rrdsync_replica_lag"); // not computed: absent
  expect(text).not.toContain("rrdsync_pass_duration_seconds"); // no pass yet
  expect(text).not.toContain("rrdsync_queue_overflows_total"); // not a daemon
  expect(text.match(/^# HELP rrdsync_files_transferred_total /gm)).toHaveLength(1);
  const daemon = renderMetrics([], { inotifyWatches: null, queueOverflows: 2 });
  expect(daemon).toBe("# HELP rrdsync_queue_overflows_total Times the kernel's inotify event queue overflowed (each answered with a full rescan).\n# TYPE rrdsync_queue_overflows_total counter\nrrdsync_queue_overflows_total 2\n");
  expect(renderMetrics([], { inotifyWatches: 42, queueOverflows: 0 })).toContain("# TYPE rrdsync_inotify_watches gauge\nrrdsync_inotify_watches 42\n");
});
