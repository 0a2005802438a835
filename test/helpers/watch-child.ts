// A tree watcher in a process of its own, for tests that need one (a compiled binary; a user namespace with its own
// inotify limits). Usage: watch-child ROOT. Prints one JSON line per event, {"type":"ready",...} once the initial add is
// done; when stdin ends it closes the watcher, prints {"type":"closed"} and must then exit by itself (nothing left open).
import { createTreeWatcher } from "../../src/watch/watcher.ts";

// (No top-level await: `bun build --compile --bytecode` does not take it.)
async function main(root: string): Promise<void> {
  const w = createTreeWatcher(root, (e) => console.log(JSON.stringify(e)), {
    debug: () => {},
    warn: (m) => console.error(m),
    error: (m) => console.error(m),
  });
  w.start();
  await w.ready;
  console.log(JSON.stringify({ type: "ready", kind: w.kind, watches: w.watchCount() }));
  for await (const _ of Bun.stdin.stream()) {
    // only waiting for the end of stdin
  }
  await w.close();
  console.log(JSON.stringify({ type: "closed" }));
}

const root = process.argv[2];
if (!root) {
  console.error("usage: watch-child ROOT");
  process.exit(2);
}
main(root).catch((e) => {
  console.error(e);
  process.exit(70);
});
