// sd_notify(3) for the daemon under systemd (Type=notify): READY=1, WATCHDOG=1, STATUS=, STOPPING=1 as datagrams
// to $NOTIFY_SOCKET. Bun has no AF_UNIX datagram socket (node:dgram is UDP only), so each message goes out through
// libc via bun:ffi, as libsystemd does it: one socket per message, nothing kept open.
import { dlopen, FFIType, read } from "bun:ffi";

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_NOSIGNAL = 0x4000;
/** sizeof(sockaddr_un.sun_path) on Linux */
const SUN_PATH_MAX = 108;

export interface Notifier {
  /** true when systemd (or a test) listens on NOTIFY_SOCKET */
  readonly enabled: boolean;
  /** the main loop must come round at least this often (ms) for the watchdog; Infinity when there is none */
  readonly wakeEveryMs: number;
  ready(status: string): void;
  status(text: string): void;
  /** Call from the daemon's main loop only: a loop that is stuck must stop feeding it, so systemd restarts us. */
  watchdog(): void;
  stopping(status: string): void;
}

/**
 * struct sockaddr_un for NOTIFY_SOCKET: an absolute path (NUL-terminated), or "@name" for Linux's abstract
 * namespace (a leading NUL, no terminator, the length says where it ends). null when it is neither or too long.
 */
export function notifySockaddr(socketPath: string): Uint8Array | null {
  const abstract = socketPath.startsWith("@");
  if (!abstract && !socketPath.startsWith("/")) return null;
  const name = abstract ? Buffer.concat([Buffer.from([0]), Buffer.from(socketPath.slice(1))]) : Buffer.from(`${socketPath}\0`);
  if (name.length > SUN_PATH_MAX) return null;
  const addr = new Uint8Array(2 + name.length);
  new DataView(addr.buffer).setUint16(0, AF_UNIX, true); // sa_family_t, host order: little-endian on x86-64 and arm64
  addr.set(name, 2);
  return addr;
}

type Libc = ReturnType<typeof openLibc>;
function openLibc() {
  return dlopen("libc.so.6", {
    socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    sendto: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i64 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
    __errno_location: { args: [], returns: FFIType.ptr },
  }).symbols;
}

const noop: Notifier = { enabled: false, wakeEveryMs: Infinity, ready() {}, status() {}, watchdog() {}, stopping() {} };

/**
 * The notifier for this process, from NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID (a watchdog meant for another
 * pid, e.g. a wrapper's, is not ours). Without NOTIFY_SOCKET every call does nothing. A failure is reported once
 * through onError and not again: the daemon goes on either way (systemd's watchdog, if any, will restart it).
 */
export function systemdNotifier(env: Record<string, string | undefined>, onError: (message: string) => void): Notifier {
  const socketPath = env.NOTIFY_SOCKET ?? "";
  if (socketPath === "") return noop;
  const addr = notifySockaddr(socketPath);
  const usec = Number(env.WATCHDOG_USEC);
  const forUs = env.WATCHDOG_PID === undefined || Number(env.WATCHDOG_PID) === process.pid;
  const watchdogMs = Number.isFinite(usec) && usec > 0 && forUs ? usec / 1000 : Infinity;
  let libc: Libc | null = null;
  let failed = false;
  let lastPing = 0;

  const fail = (why: string) => {
    if (!failed) onError(`cannot notify systemd via NOTIFY_SOCKET=${socketPath}: ${why}`);
    failed = true;
  };
  const send = (message: string) => {
    if (failed) return;
    if (addr === null) return fail("not an absolute path or @abstract name of at most 107 bytes");
    try {
      libc ??= openLibc();
    } catch (e) {
      // bun:ffi needs the JIT: under MemoryDenyWriteExecute=yes it refuses ("bun:ffi requires the JIT").
      return fail(`bun:ffi is unavailable (${(e as Error).message})`);
    }
    const fd = libc.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return fail(`socket() failed, errno ${errno(libc)}`);
    const data = Buffer.from(message);
    const sent = Number(libc.sendto(fd, data, data.length, MSG_NOSIGNAL, addr, addr.length));
    if (sent < 0) fail(`sendto() failed, errno ${errno(libc)}`);
    libc.close(fd);
  };
  // One line per field; a status text must not smuggle in a second field (a file name with a newline).
  const oneLine = (s: string) => s.replace(/[\n\r]/g, " ");

  return {
    enabled: true,
    wakeEveryMs: watchdogMs / 2, // sd_watchdog_enabled(3): ping at half the interval
    ready: (status) => send(`READY=1\nSTATUS=${oneLine(status)}`),
    status: (text) => send(`STATUS=${oneLine(text)}`),
    watchdog: () => {
      if (watchdogMs === Infinity) return;
      // The loop may spin through many iterations in a busy moment; a ping per quarter interval is plenty.
      const now = Date.now();
      if (now - lastPing < Math.min(1000, watchdogMs / 4)) return;
      lastPing = now;
      send("WATCHDOG=1");
    },
    stopping: (status) => send(`STOPPING=1\nSTATUS=${oneLine(status)}`),
  };
}

function errno(libc: Libc): number {
  const p = libc.__errno_location();
  return p === null ? -1 : read.i32(p, 0);
}
