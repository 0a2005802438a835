// The frame every e2e file shares: one throwaway sshd for the file, fresh worlds (and daemons) per test, all
// cleaned up after each test, and sshd running again for the next test even if one stopped it.
import { afterAll, afterEach, beforeAll } from "bun:test";
import { type Daemon, startDaemon } from "./daemon.ts";
import { type SshdFixture, startSshd } from "./sshd.ts";
import { makeWorld, type World } from "./world.ts";

export interface E2eSuite {
  sshd(): SshdFixture;
  world(): World;
  daemon(args: string[], env?: Record<string, string>): Daemon;
}

export function e2eSuite(name: string, sshdOpts: Parameters<typeof startSshd>[0] = {}): E2eSuite {
  let sshd: SshdFixture | undefined;
  const worlds: World[] = [];
  const daemons: Daemon[] = [];
  beforeAll(async () => {
    sshd = await startSshd(sshdOpts);
  });
  afterAll(async () => {
    await sshd?.cleanup();
  });
  afterEach(async () => {
    for (const d of daemons.splice(0)) await d.stop("SIGKILL");
    for (const w of worlds.splice(0)) w.cleanup();
    await sshd?.start().catch(() => undefined);
  });
  const fixture = () => {
    if (!sshd) throw new Error("sshd is not started yet (use it inside a test)");
    return sshd;
  };
  return {
    sshd: fixture,
    world() {
      const w = makeWorld(fixture(), name);
      worlds.push(w);
      return w;
    },
    daemon(args, env) {
      const d = startDaemon(args, env);
      daemons.push(d);
      return d;
    },
  };
}
