// A TCP relay in front of the sshd fixture that counts the bytes each way: what crosses "the link", for tests
// and benches that must show how much (or how little) a command sends.
import { connect, createServer, type Server } from "node:net";

export interface CountingRelay {
  port: number;
  /** bytes from the client to the standby, and back, since the start or the last reset() */
  toStandby: number;
  fromStandby: number;
  reset(): void;
  close(): void;
}

export async function countingRelay(targetPort: number): Promise<CountingRelay> {
  const r: CountingRelay = {
    port: 0, toStandby: 0, fromStandby: 0,
    reset: () => void Object.assign(r, { toStandby: 0, fromStandby: 0 }),
    close: () => server.close(),
  };
  const server: Server = createServer((client) => {
    const up = connect({ host: "127.0.0.1", port: targetPort });
    client.on("data", (b) => {
      r.toStandby += b.length;
      up.write(b);
    });
    up.on("data", (b) => {
      r.fromStandby += b.length;
      client.write(b);
    });
    const end = () => {
      client.destroy();
      up.destroy();
    };
    client.on("close", end).on("error", end);
    up.on("close", end).on("error", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const a = server.address();
  r.port = typeof a === "object" && a ? a.port : 0;
  return r;
}
