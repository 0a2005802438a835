// The first sync (empty state): one whole-tree transfer starts at once and walks the tree itself, while our walk
// goes beside it to know each file's version and describe its change. The state and change rows are written ahead
// into one open transaction as files are described, and settled after the transfer by the usual confirm + audit.
import type { BatchFile } from "../transport/types.ts";
import type { WalkedFile } from "../source/walk.ts";
import { ownPathsInside } from "../source/own-files.ts";
import { changeRowFor } from "./audit.ts";
import type { PassState, TargetContext } from "./context.ts";
import { type Described, yieldToIO } from "./describe.ts";
import { type Planned, statFacts } from "./plan.ts";
import type { Sender } from "./send.ts";
import { formatEntry } from "../track/changelog.ts";

/**
 * A first sync of a tree up to this many files goes as one whole-tree rsync run: rsync walks and pipelines the
 * tree itself, ~1.5× faster than the same files listed one by one. Past it our walk pauses until the run ends and
 * goes on in ordinary batches (the run has sent those files too, so they cost only a quick check).
 */
export const WHOLE_TREE_MAX_FILES = 200_000;

export async function firstSync(t: TargetContext, p: PassState, sender: Sender, it: Iterator<WalkedFile>): Promise<void> {
  const { store, config, log } = t;
  const ahead = config.changeTracking.enabled;
  if (ahead) store.beginAhead();
  try {
    let listed!: (files: BatchFile[]) => void;
    const listedP = new Promise<BatchFile[]>((resolve) => {
      listed = resolve;
    });
    const describer = sender.describer(ahead ? (f, d) => writeAhead(t, f, d) : undefined);
    const transfer = sender.transfer(listedP, { wholeTree: { extensions: config.monitoredExtensions, exclude: ownPathsInside(config.sourceDir, t.own) } });
    log.debug("first sync: one whole-tree transfer");
    const files: Planned[] = [];
    for (;;) {
      const n = it.next();
      if (n.done) break;
      const { rel, abs, stat } = n.value;
      p.stats.scanned++;
      const f: Planned = { rel, abs, facts: statFacts(stat), prev: null, ctimeNs: stat.ctimeNs };
      files.push(f);
      describer.add(f);
      p.progress.plannedFiles++;
      p.progress.plannedBytes += f.facts.size;
      if (files.length >= WHOLE_TREE_MAX_FILES) break;
      if (files.length % 256 === 0) {
        if (files.length % 2048 === 0) p.reportProgress();
        await yieldToIO(); // let rsync's output be read while we walk
      }
    }
    log.debug(`first sync: ${files.length} files walked`);
    listed(files.map((f) => ({ path: f.rel, size: f.facts.size, walked: f.ctimeNs === undefined ? undefined : { ...f.facts, ctimeNs: f.ctimeNs } })));
    p.progress.walking = false;
    p.reportProgress();
    const t0 = performance.now();
    const result = await transfer;
    log.debug(`whole-tree transfer done; ${files.length} files walked, ${describer.backlog} still to describe`);
    if (result.error) describer.stop();
    await sender.record(files, result, describer, t0);
  } catch (e) {
    store.abortAhead();
    throw e;
  }
}

/** The row and change a confirmation would record, written ahead into the open transaction. */
function writeAhead(t: TargetContext, f: Planned, d: Described): void {
  const rec = d.rec;
  if (rec instanceof Error || rec?.damage) return; // recorded (or held) after the transfer, as usual
  const time = Date.now();
  const change = rec ? changeRowFor(f, rec, time) : null;
  f.ahead = { time, state: { ...f.facts, sha256: rec?.sha256 ?? null, rrd: rec?.rrd ?? null }, change, entry: change ? formatEntry(new Date(time), f.rel, change.details) : null };
  if (!t.store.writingAhead) return;
  try {
    t.store.writeAhead(f.rel, f.ahead.state, change);
  } catch (e) {
    // Writing ahead is only a speed-up: without it the batch commits the ordinary way after the transfer.
    t.store.abortAhead();
    t.log.warn(`state DB: writing ahead failed (${(e as Error).message}); the first sync commits after the transfer instead`);
  }
}
