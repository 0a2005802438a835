// Pure: what `rrdsync failback` does with each file the standby holds (issue 26). A file whose standby copy is
// one rrdsync delivered (the conflict rule of policy/conflict.ts says so) is left to the ordinary send; any other
// is pulled and then: an RRD on both sides is merged into ours (rrd-merge.ts), a JRobin file or another file
// kind the merge does not know is left (reported: never overwritten on either side), a text file is taken from
// the side whose mtime is later, and a file only the standby has is copied here. Also the temporary directory's
// name, so a leftover of a killed run is recognised by exactly its pattern. No node:/bun imports.
import { judgeReplica, type Known, newerThan, type ReplicaFile, type Version } from "./conflict.ts";

export type FailbackAction =
  /** an RRD on both sides: the standby's rows merged into ours, in place */
  | "merge"
  /** another file on both sides: the standby's version if it is newer, else ours */
  | "text"
  /** only on the standby: copied into the source */
  | "copy"
  /** on both sides, but not mergeable (a JRobin file, a directory here): reported and left, neither side overwritten */
  | "leave";

export type FailbackPick =
  | { pull: false; why: string }
  | { pull: true; action: FailbackAction; why: string };

/** What is at a name in the source, for the decision. */
export type LocalFile = ({ kind: "file" } & Version) | { kind: "absent" } | { kind: "other"; what: string };

const RRD = /\.rrd$/i;
const JROBIN = /\.jrb$/i;

/**
 * The decision for one file of the standby's listing. `known`: what rrdsync knows it delivered there (the state
 * row and noted versions; `source` is ours now). `monitored`: the name is one the config replicates.
 */
export function pickFailback(rel: string, standby: Version, known: Known, local: LocalFile, monitored: boolean): FailbackPick {
  if (!insideTree(rel)) return { pull: false, why: "a name outside the tree (refused)" };
  if (!monitored) return { pull: false, why: "not a monitored file" };
  const j = judgeReplica("write", known, { kind: "file", ...standby } satisfies ReplicaFile);
  if (j.ok) return { pull: false, why: j.why };
  if (local.kind === "other") return { pull: true, action: "leave", why: `a ${local.what} here, where the standby has a file` };
  if (local.kind === "absent") return { pull: true, action: "copy", why: j.why };
  if (JROBIN.test(rel)) return { pull: true, action: "leave", why: "a JRobin file: rrdsync cannot merge it (no JRobin writer here to prove a merged file against)" };
  if (RRD.test(rel)) return { pull: true, action: "merge", why: j.why };
  return { pull: true, action: "text", why: j.why };
}

/**
 * A name from the standby's listing that stays inside the tree: relative, no empty, "." or ".." component. The
 * standby is another host (perhaps a compromised one): a listing naming "../../etc/cron.d/x" is never pulled or
 * copied anywhere.
 */
export function insideTree(rel: string): boolean {
  return rel !== "" && !rel.startsWith("/") && rel.split("/").every((c) => c !== "" && c !== "." && c !== "..");
}

/** A text file on both sides: whose version both end up with (the later mtime; a tie keeps ours). */
export function textWinner(local: Version, standby: Version): "standby" | "local" {
  return newerThan(standby.mtimeNs, local.mtimeNs) && standby.mtimeNs !== local.mtimeNs ? "standby" : "local";
}

/** The temporary directory of a run, beside the source: the target's tag (its state file's) and a random part. */
export function tempDirName(tag: string, random: string): string {
  return `.rrdsync-failback-${tag}-${random}`;
}

/** Is this directory entry a failback temporary directory of this target (exactly the pattern, nothing looser)? */
export function isTempDirOf(name: string, tag: string): boolean {
  return new RegExp(`^\\.rrdsync-failback-${tag}-[0-9a-f]{12}$`).test(name);
}

/** The rows each side gives a merge (sums over the archives), for the change log and --dry-run. */
export interface RowCounts {
  /** rows only the standby held a value for: added here */
  added: number;
  /** rows both held a value for: the newer side's kept */
  both: number;
  /** rows only ours held */
  ours: number;
}

export function rowCounts(archives: ReadonlyArray<{ onlyA: number; onlyB: number; both: number }>): RowCounts {
  let added = 0;
  let both = 0;
  let ours = 0;
  for (const a of archives) {
    added += a.onlyB;
    both += a.both;
    ours += a.onlyA;
  }
  return { added, both, ours };
}
