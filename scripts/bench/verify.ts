// verify: `rrdsync verify` of an N-file OpenNMS-like tree against a replica that matches, beside plain
// `rsync -a --checksum --dry-run` of the same tree to the same replica, in the same run, alternating which goes
// first (target ≤ 1.2×). Also `verify` via SFTP (every same-size file is read back: what that costs). Timed
// straight against sshd; the bytes each one moves are counted in one more run of each through a TCP relay.
// Usage: bun scripts/bench/verify.ts [--files 20000] [--runs 5] [--bin dist/rrdsync] [--no-sftp]
// As root it logs in as a plain-shell bench user (see user.ts). Run it under the heavy lock.
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { countingRelay } from "../../test/helpers/relay.ts";
import { startSshd } from "../../test/helpers/sshd.ts";
import { cachedBenchTree } from "./generate-tree.ts";
import { benchSshCommand, benchUser, destRootFor, giveTo, opt, rrdsyncBin, writeBenchConfig } from "./user.ts";

const FILES = Number(opt("--files", "20000"));
const RUNS = Number(opt("--runs", "5"));
const SFTP = !process.argv.includes("--no-sftp");
const root = resolve(import.meta.dir, "../../.bench");
const bin = rrdsyncBin();
const destRoot = destRootFor("rrdsync-bench-verify", root);
const src = await cachedBenchTree(root, FILES);

const user = benchUser();
const sshd = await startSshd(user ? { user: user.name } : {});

const relay = await countingRelay(sshd.port);
const relayPort = relay.port;
const known = join(sshd.dir, "relay_known_hosts");
writeFileSync(known, `[127.0.0.1]:${relayPort} ${sshd.hostKeys.ed25519}\n`);

async function timed(argv: string[], okCodes = [0]): Promise<{ s: number; up: number; down: number; err: string }> {
  relay.reset();
  const t = performance.now();
  const p = Bun.spawn(argv, { stdout: "ignore", stderr: "pipe" });
  const err = await new Response(p.stderr).text();
  const code = await p.exited;
  const s = (performance.now() - t) / 1000;
  if (!okCodes.includes(code)) throw new Error(`${argv.join(" ")} exited ${code}: ${err.slice(-2000)}`);
  await Bun.sleep(50);
  return { s, up: relay.toStandby, down: relay.fromStandby, err };
}

const dest = join(destRoot, "replica");
const state = join(destRoot, "state");
rmSync(destRoot, { recursive: true, force: true });
mkdirSync(dest, { recursive: true });
mkdirSync(state, { recursive: true });
giveTo(user, destRoot);
giveTo(user, dest);
const cfg = (transport: string, viaRelay: boolean) => {
  const dir = join(state, `${transport}${viaRelay ? "-relay" : ""}`);
  mkdirSync(dir, { recursive: true });
  const remote = viaRelay
    ? { remote_user: sshd.user, remote_host: "127.0.0.1", port: relayPort, remote_dest_dir: dest, ssh_key_path: sshd.clientKey, known_hosts_file: known }
    : { remote_user: sshd.user, remote_host: "127.0.0.1", port: sshd.port, remote_dest_dir: dest, ssh_key_path: sshd.clientKey, known_hosts_file: sshd.knownHosts };
  return writeBenchConfig(dir, { src, dest, sshd, extra: { state_file: join(state, "state.db"), remote_sync: { ...remote, transport } } });
};
const verifyArgv = (transport: string, viaRelay = false) => [...bin, "verify", "--quiet", "--config", cfg(transport, viaRelay)];
const rsyncArgv = (viaRelay = false) => {
  const ssh = viaRelay ? benchSshCommand(sshd).replace(`-p ${sshd.port}`, `-p ${relayPort}`).replace(`UserKnownHostsFile=${sshd.knownHosts}`, `UserKnownHostsFile=${known}`) : benchSshCommand(sshd);
  return ["rsync", "-a", "--checksum", "--dry-run", "--exclude=.complete", "-e", ssh, `${src}/`, `${sshd.user}@127.0.0.1:${dest}/`];
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const kb = (n: number) => `${(n / 1024).toFixed(0)} KiB`;
const times = { rsync: [] as number[], verify: [] as number[], sftp: [] as number[] };
const bytes = { rsync: { up: 0, down: 0 }, verify: { up: 0, down: 0 }, sftp: { up: 0, down: 0 } };
try {
  const first = await timed([...bin, "--once", "--quiet", "--config", cfg("rsync", false)]);
  console.log(`first sync ${first.s.toFixed(2)} s; replica ready (${FILES} files)`);
  for (let r = 0; r < RUNS; r++) {
    const order = r % 2 === 0 ? (["rsync", "verify"] as const) : (["verify", "rsync"] as const);
    for (const who of order) {
      const x = who === "rsync" ? await timed(rsyncArgv()) : await timed(verifyArgv("rsync"));
      times[who].push(x.s);
      console.log(`run ${r + 1} ${who === "rsync" ? "rsync -a --checksum --dry-run" : "rrdsync verify (rsync)     "} ${x.s.toFixed(2)} s`);
    }
    if (SFTP) {
      const x = await timed(verifyArgv("sftp"));
      times.sftp.push(x.s);
      console.log(`run ${r + 1} rrdsync verify (sftp)      ${x.s.toFixed(2)} s`);
    }
  }
  // The bytes on the wire, once each through the counting relay (it would slow SFTP's read-back if timed).
  for (const [who, argv] of [["rsync", rsyncArgv(true)], ["verify", verifyArgv("rsync", true)], ...(SFTP ? [["sftp", verifyArgv("sftp", true)]] : [])] as Array<[keyof typeof bytes, string[]]>) {
    const x = await timed(argv);
    bytes[who] = { up: x.up, down: x.down };
  }
} finally {
  relay.close();
  await sshd.cleanup();
  rmSync(destRoot, { recursive: true, force: true });
}
const a = median(times.verify);
const b = median(times.rsync);
console.log(`\n${FILES} files, median of ${RUNS} runs, binary: ${bin.join(" ")}`);
console.log(`rrdsync verify ${a.toFixed(2)} s, rsync -a --checksum --dry-run ${b.toFixed(2)} s: ${(a / b).toFixed(2)}× (target ≤ 1.2×)`);
console.log(`  on the wire: verify ${kb(bytes.verify.up)} up / ${kb(bytes.verify.down)} down; rsync ${kb(bytes.rsync.up)} up / ${kb(bytes.rsync.down)} down`);
if (SFTP) console.log(`rrdsync verify via SFTP ${median(times.sftp).toFixed(2)} s (${(median(times.sftp) / b).toFixed(2)}× rsync --checksum), ${kb(bytes.sftp.up)} up / ${kb(bytes.sftp.down)} down`);
