// Output long enough to page: through $PAGER (default `less -FRX`) on a terminal when it is longer than the screen,
// straight out otherwise; used by `log` and `help`.
import { isOutputClosed, writeOut } from "./out.ts";

/**
 * Streams the chunks out as they are made (any size of output in bounded memory): through $PAGER (default
 * `less -FRX`) when they are longer than the terminal, straight out otherwise. A reader that goes away early
 * (`| head`, quitting the pager) ends it quietly: exit 0.
 */
export async function page(chunks: Iterable<string>, tty: boolean, env: Record<string, string | undefined>): Promise<void> {
  const it = chunks[Symbol.iterator]();
  const pager = (env.PAGER ?? "less -FRX").trim().split(/\s+/).filter((w) => w !== "");
  if (tty && pager.length > 0 && pager[0] !== "cat" && Bun.which(pager[0] as string)) {
    // Only as much as a screen is held to decide whether a pager is needed.
    const screen = process.stdout.rows ?? 24;
    const head: string[] = [];
    let lines = 0;
    for (let n = it.next(); !n.done; n = it.next()) {
      head.push(n.value);
      lines += n.value.split("\n").length - 1;
      if (lines > screen) break;
    }
    if (lines > screen) {
      const p = Bun.spawn(pager, { stdin: "pipe", stdout: "inherit", stderr: "inherit", env: { LESS: "FRX", ...env } });
      await pipeOut(sinkWriter(p.stdin), [head, it], async () => {
        await p.stdin.end();
      });
      await p.exited;
      return;
    }
    await pipeOut(writeOut, [head]);
    return;
  }
  await pipeOut(writeOut, [it]);
}

/**
 * Writes in chunks of ~64 KiB, waiting for each to be taken (stdout through writeOut: see out.ts for why not
 * Bun.stdout); a closed reader (EPIPE) stops it without an error.
 */
async function pipeOut(write: (chunk: string) => Promise<void>, parts: Array<Iterable<string> | Iterator<string>>, end?: () => Promise<unknown>): Promise<void> {
  let buf = "";
  try {
    for (const part of parts) {
      const iterable: Iterable<string> = Symbol.iterator in part ? (part as Iterable<string>) : { [Symbol.iterator]: () => part as Iterator<string> };
      for (const s of iterable) {
        buf += s;
        if (buf.length >= 65536) {
          await write(buf);
          buf = "";
        }
      }
    }
    if (buf !== "") await write(buf);
    await end?.();
  } catch (e) {
    if (!isOutputClosed(e) && !isClosedPipe(e)) throw e;
  }
}

/** The pager's stdin: each chunk flushed before the next is made. */
function sinkWriter(sink: import("bun").FileSink): (chunk: string) => Promise<void> {
  return async (chunk) => {
    sink.write(chunk);
    await sink.flush();
  };
}

function isClosedPipe(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === "EPIPE" || code === "ERR_STREAM_DESTROYED" || code === "ECONNRESET";
}
