// Everything a command prints on stdout goes through writeOut: awaited to the last byte (process.exit would cut
// off what a slow pipe has not taken yet: `restore big.txt | wc -c` got 128 KiB of 575), and a reader that went
// away (`rrdsync log | head`) ends the command quietly with exit 0, as cat and git do.

/** The reader of stdout is gone (EPIPE): nothing is wrong, there is just nobody left to print for. */
export class OutputClosed extends Error {
  constructor() {
    super("stdout was closed by its reader");
    this.name = "OutputClosed";
  }
}

export function isOutputClosed(e: unknown): boolean {
  return e instanceof OutputClosed || (e as NodeJS.ErrnoException | null)?.code === "EPIPE";
}

/**
 * process.stdout.write with its callback awaited. Not Bun.write(Bun.stdout): into a pipe that fills up (a slow
 * reader) Bun 1.4.5 retries a partly written string from its start, so the reader got 166 KB of a 100 KB log,
 * the first 64 KiB twice (seen with strace).
 */
export async function writeOut(data: string | Uint8Array): Promise<void> {
  if (data.length === 0) return;
  await new Promise<void>((resolve, reject) => {
    process.stdout.write(data, (e) => {
      if (!e) resolve();
      else reject(isOutputClosed(e) ? new OutputClosed() : e);
    });
  });
}
