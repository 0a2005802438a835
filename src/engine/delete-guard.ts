// Pure: may this pass delete these files on the replica? The guard against a source that is suddenly empty
// (an unmounted mount point, a wrong source_dir) wiping the standby: above max_delete, nothing is deleted.
import { describeMaxDelete, type MaxDelete } from "../config/max-delete.ts";

/** null: go ahead; otherwise why not. `tracked` is how many files the state knew before the pass. */
export function deleteRefusal(toDelete: number, tracked: number, max: MaxDelete): string | null {
  if (toDelete === 0) return null;
  const limit = "count" in max ? max.count : Math.floor((tracked * max.percent) / 100);
  if (toDelete <= limit) return null;
  const share = tracked > 0 ? ` (${((toDelete / tracked) * 100).toFixed(toDelete === tracked ? 0 : 1)}% of ${tracked} tracked)` : "";
  return `${toDelete} files would be deleted on the replica${share}, more than max_delete allows (${describeMaxDelete(max)}, ${limit} here)`;
}
