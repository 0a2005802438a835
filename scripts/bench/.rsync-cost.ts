// scratch: rsync CPU per batch over the loopback sshd, variants
import { startSshd } from "../../test/helpers/sshd.ts";
import { benchSshCommand, benchUser, giveTo } from "./user.ts";
const user = benchUser();
const sshd = await startSshd(user ? { user: user.name } : {});
const ssh = benchSshCommand(sshd) + " -c aes128-gcm@openssh.com";
const variants = process.argv.slice(2);
const cpu = () => { const s = require("node:fs").readFileSync("/proc/self/stat","latin1").split(") ")[1].split(" "); return (Number(s[13])+Number(s[14]))/100; };
for (const v of variants) {
  Bun.spawnSync(["rm", "-rf", "/dev/shm/rx-d2"]); Bun.spawnSync(["cp", "-a", "/dev/shm/rx-dest", "/dev/shm/rx-d2"]); if (user) Bun.spawnSync(["chown", "-R", `${user.name}`, "/dev/shm/rx-d2"]);
  const sshdCpu0 = sshdCpu();
  const c0 = cpu(); const t0 = performance.now();
  const r = Bun.spawnSync(["sh", "-c", `rsync -a --files-from=${process.env.LIST ?? "/var/tmp/rx/list"} ${v} -ii --out-format='%i %b %n' --info=stats1 -e '${ssh}' /var/tmp/rx/src/ ${sshd.user}@127.0.0.1:/dev/shm/rx-d2/ | tail -2 | head -1`]);
  const t = (performance.now() - t0) / 1000; const c = cpu() - c0;
  console.log(`${v}: ${t.toFixed(2)} s, client CPU ${c.toFixed(2)} s, standby CPU ${(sshdCpu() - sshdCpu0).toFixed(2)} s: ${r.stdout.toString().trim()}`);
}
function sshdCpu() { let sum = 0; const fs = require("node:fs"); for (const d of fs.readdirSync("/proc")) { if (!/^\d+$/.test(d)) continue; try { const s = fs.readFileSync(`/proc/${d}/stat`, "latin1"); const comm = s.slice(s.indexOf("(")+1, s.lastIndexOf(")")); if (comm !== "sshd" && comm !== "rsync") continue; const cl = fs.readFileSync(`/proc/${d}/cmdline`, "latin1"); if (!cl.includes(sshd.dir) && !cl.includes("--server")) continue; const f = s.slice(s.lastIndexOf(")")+2).split(" "); sum += (Number(f[11])+Number(f[12])+Number(f[13])+Number(f[14]))/100; } catch {} } return sum; }
await sshd.cleanup();
