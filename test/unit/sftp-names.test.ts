// The SFTP transport's temporary names: beside the final name (atomic rename), hidden, within NAME_MAX.
import { expect, test } from "bun:test";
import { tempNameFor } from "../../src/transport/sftp.ts";

test("a temporary name sits in the file's own directory, hidden, not ending in a monitored extension", () => {
  expect(tempNameFor("a.rrd")).toBe(".a.rrd.rrdsync-tmp");
  expect(tempNameFor("snmp/1/eth0/ifInOctets.rrd")).toBe("snmp/1/eth0/.ifInOctets.rrd.rrdsync-tmp");
  expect(tempNameFor("d/-x y\n'z'.txt")).toBe("d/.-x y\n'z'.txt.rrdsync-tmp");
});

test("a name near NAME_MAX (bytes, not characters) gets a fixed hashed name, still one per file", () => {
  const long = `${"é".repeat(120)}.rrd`; // 244 bytes
  const tmp = tempNameFor(`d/${long}`);
  expect(tmp).toMatch(/^d\/\.[0-9a-f]{32}\.rrdsync-tmp$/);
  expect(tempNameFor(`d/${long}`)).toBe(tmp);
  expect(tempNameFor(`d/${"é".repeat(119)}.rrd`)).not.toBe(tmp);
  expect(Buffer.byteLength(tmp.split("/")[1] as string)).toBeLessThanOrEqual(255);
});
