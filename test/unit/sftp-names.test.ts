// The SFTP transport's temporary names (beside the final name for an atomic rename, hidden, within NAME_MAX) and its error messages.
import { expect, test } from "bun:test";
import { describeSftpError, SftpOpError } from "../../src/transport/sftp/errors.ts";
import { tempNameFor } from "../../src/transport/temp-names.ts";

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

test("SFTP errors name the operation and the path; a bare Failure is told apart by statvfs where it can", () => {
  const fail = (code: number, message: string) => new SftpOpError("write", "/d/.a.rrd.rrdsync-tmp", Object.assign(new Error(message), { code }));
  expect(describeSftpError(fail(3, "Permission denied"), "/d/a.rrd")).toBe("write /d/.a.rrd.rrdsync-tmp on the standby: permission denied");
  expect(describeSftpError(fail(2, "No such file"), "/d/a.rrd")).toBe("write /d/.a.rrd.rrdsync-tmp on the standby: no such file or directory");
  const full = { readOnly: false, freeBytes: 4096, freeInodes: 100 };
  expect(describeSftpError(fail(4, "Failure"), "/d/a.rrd", full, 1_000_000)).toBe("write /d/.a.rrd.rrdsync-tmp on the standby: No space left on device (4 KiB free)");
  expect(describeSftpError(fail(4, "Failure"), "/d/a.rrd", { ...full, readOnly: true })).toBe("write /d/.a.rrd.rrdsync-tmp on the standby: Read-only file system");
  expect(describeSftpError(fail(4, "Failure"), "/d/a.rrd", { ...full, freeBytes: 1e9 }, 10)).toMatch(/reports only "Failure"/);
  expect(describeSftpError(fail(4, "Failure"), "/d/a.rrd", { ...full, freeInodes: 0 }, 10)).toMatch(/No space left on device \(no free inodes\)/);
});
