// A stand-in for systemd's end of NOTIFY_SOCKET: a bound AF_UNIX datagram socket (a path, or an abstract name given
// as "@name") that collects each message with its arrival time. Written apart from src/watch/notify.ts on purpose
// (its own sockaddr code), and checked against systemd's own client, systemd-notify, in test/e2e/cli/notify.test.ts.
import { dlopen, FFIType } from "bun:ffi";

const libc = dlopen("libc.so.6", {
  socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  bind: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  recv: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i64 },
  close: { args: [FFIType.i32], returns: FFIType.i32 },
}).symbols;

export interface NotifyMessage {
  at: number;
  text: string;
}

export class NotifySocket {
  readonly messages: NotifyMessage[] = [];
  private readonly fd: number;
  private readonly timer: ReturnType<typeof setInterval>;

  /** `name`: an absolute path, or "@name" for the abstract namespace (what NOTIFY_SOCKET will say). */
  constructor(readonly name: string) {
    const sunPath = name.startsWith("@") ? `\0${name.slice(1)}` : `${name}\0`;
    const addr = Buffer.alloc(2 + Buffer.byteLength(sunPath));
    addr.writeUInt16LE(1, 0); // AF_UNIX
    addr.write(sunPath, 2, "latin1");
    const SOCK_DGRAM = 2, SOCK_NONBLOCK = 0o4000, SOCK_CLOEXEC = 0o2000000;
    this.fd = libc.socket(1, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (this.fd < 0 || libc.bind(this.fd, addr, addr.length) !== 0) throw new Error(`cannot bind a datagram socket at ${name}`);
    const buf = Buffer.alloc(4096);
    // Non-blocking reads on a short timer: a test's timings are in hundreds of milliseconds.
    this.timer = setInterval(() => {
      for (;;) {
        const n = Number(libc.recv(this.fd, buf, buf.length, 0));
        if (n < 0) break;
        this.messages.push({ at: Date.now(), text: buf.subarray(0, n).toString() });
      }
    }, 10);
  }

  /** Messages holding `field` (e.g. "READY=1") as one of their lines. */
  having(field: string): NotifyMessage[] {
    return this.messages.filter((m) => m.text.split("\n").includes(field));
  }

  async waitFor(field: string, timeoutMs: number): Promise<NotifyMessage> {
    const t0 = Date.now();
    for (;;) {
      const hit = this.having(field)[0];
      if (hit) return hit;
      if (Date.now() - t0 > timeoutMs) throw new Error(`no ${field} within ${timeoutMs} ms; got ${JSON.stringify(this.messages)}`);
      await Bun.sleep(20);
    }
  }

  close(): void {
    clearInterval(this.timer);
    libc.close(this.fd);
  }
}
