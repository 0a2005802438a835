import { expect, test } from "bun:test";
import { attributeErrors, decodeRsyncName, isFileItem, namesInErrorLine, parseItemizeLine, parseListOnlyFile, parseNewerLine } from "../../src/transport/rsync/itemize.ts";
import { rootCause } from "../../src/transport/rsync/errors.ts";
import { isSftpTempName, tempNameOwner } from "../../src/transport/temp-names.ts";

const latin1 = (s: string) => Buffer.from(s, "utf8").toString("latin1"); // what the transport hands the parser

test("itemize lines: sent, unchanged and directory items; spaces inside the flags; a name with spaces", () => {
  expect(parseItemizeLine("RRDSYNC> >f+++++++++ 38232 snmp/1/a b.rrd")).toEqual({ flags: ">f+++++++++", bytes: 38232, path: "snmp/1/a b.rrd", dir: false });
  const same = parseItemizeLine("RRDSYNC> .f          0 x.txt");
  expect(same).toEqual({ flags: ".f         ", bytes: 0, path: "x.txt", dir: false });
  expect(isFileItem(same!.flags)).toBe(true);
  const dir = parseItemizeLine("RRDSYNC> cd+++++++++ 0 snmp/1/");
  expect([dir?.path, dir?.dir]).toEqual(["snmp/1", true]);
  expect(isFileItem(dir!.flags)).toBe(false);
  expect(parseItemizeLine("sent 1,234 bytes  received 35 bytes")).toBeNull();
});

test("rsync's \\#ooo escapes decode back to the exact bytes: newline, backslash, UTF-8", () => {
  expect(decodeRsyncName("a\\#012b.txt")).toBe("a\nb.txt");
  expect(decodeRsyncName("back\\#134#slash")).toBe("back\\#slash");
  expect(decodeRsyncName(latin1("données-é.rrd"))).toBe("données-é.rrd");
  expect(parseItemizeLine(`RRDSYNC> >f+++++++++ 3 ${latin1("-leading 'q' ü")}`)?.path).toBe("-leading 'q' ü");
});

test("error lines name the failed files, quoted or not, absolute or relative", () => {
  expect(namesInErrorLine('rsync: [sender] link_stat "/src/gone.txt" failed: No such file or directory (2)')).toContain("/src/gone.txt");
  expect(namesInErrorLine("cannot delete non-empty directory: bad.txt")).toContain("bad.txt");
  const batch = new Set(["gone.txt", "bad.txt", "ok.txt", "d/x y.rrd"]);
  const errs = attributeErrors(
    [
      'rsync: [sender] link_stat "/src/gone.txt" failed: No such file or directory (2)',
      "could not make way for new regular file: bad.txt",
      'rsync: [receiver] mkstemp "/dest/d/.x y.rrd.AbC123" failed: Permission denied (13)',
      'rsync: [sender] send_files failed to open "/src/d/x y.rrd": Permission denied (13)',
    ],
    batch,
  );
  expect([...errs.keys()].sort()).toEqual(["bad.txt", "d/x y.rrd", "gone.txt"]);
  expect(errs.has("ok.txt")).toBe(false);
});

test("temporary names map back to their files: rsync's mkstemp name, SFTP's, rsync's partial dir", () => {
  expect(tempNameOwner("/dest/d/.a.txt.lo9vEQ")).toBe("/dest/d/a.txt");
  expect(tempNameOwner(".a b.rrd.rrdsync-tmp")).toBe("a b.rrd");
  expect(tempNameOwner("d/.rrdsync-partial/a.txt")).toBe("d/a.txt");
  expect(tempNameOwner("d/a.txt")).toBeNull();
  expect(tempNameOwner("d/.hidden")).toBeNull();
  expect(isSftpTempName(".a.txt.rrdsync-tmp")).toBe(true);
  for (const n of [".rrdsync-tmp", "a.txt.rrdsync-tmp", ".a.txt.rrdsync-tmpx", ".a.txt.rrdsync-tmp.keep"]) expect(isSftpTempName(n)).toBe(false);
});

test("error lines: a temporary name is its file; under the source or destination root only an exact path matches", () => {
  const batch = new Set(["d/a.txt", "a.txt", "b.txt"]);
  const roots = ["/dest", "/src"];
  const errs = attributeErrors(['rsync: [receiver] mkstemp "/dest/d/.a.txt.lo9vEQ" failed: Operation not permitted (1)'], batch, roots);
  expect([...errs.keys()]).toEqual(["d/a.txt"]);
  // x/b.txt is not b.txt (a suffix match would say so)
  expect(attributeErrors(['rsync: [receiver] rename "/dest/x/.b.txt.AbC123" -> "x/b.txt": Permission denied (13)'], batch, roots).has("b.txt")).toBe(false);
  expect(attributeErrors(['rsync: [receiver] rename "/dest/x/.b.txt.AbC123" -> "x/b.txt": Permission denied (13)'], batch).has("b.txt")).toBe(true);
});

test("the root cause of a failed run: the receiver's error, a file-system cause first, never the sender's broken pipe", () => {
  expect(rootCause([
    'rsync: [receiver] write failed on "/dest/big.bin": No space left on device (28)',
    "rsync error: error in file IO (code 11) at receiver.c(657) [receiver=3.5.0]",
    "rsync: [sender] write error: Broken pipe (32)",
  ])).toBe('rsync: [receiver] write failed on "/dest/big.bin": No space left on device (28)');
  expect(rootCause(["rsync: [sender] write error: Broken pipe (32)", "rsync error: error in rsync protocol data stream (code 12) at io.c(232)"])).toBe(
    "rsync error: error in rsync protocol data stream (code 12) at io.c(232)",
  );
  expect(rootCause([])).toBe("");
});

test("verify's lines: \"NAME is newer\" (escaped names) and --list-only file lines; anything else is not ours", () => {
  expect(parseNewerLine("snmp/1/a.rrd is newer")).toBe("snmp/1/a.rrd");
  expect(parseNewerLine("we ird\\#012nl.txt is newer")).toBe("we ird\nnl.txt");
  expect(parseNewerLine(latin1("données.rrd is newer"))).toBe("données.rrd");
  expect(parseNewerLine("RRDSYNC> .f          0 x is newer")).toBeNull();
  expect(parseNewerLine(" is newer")).toBeNull();
  expect(parseNewerLine('skipping non-regular file "l is newer"')).toBeNull();
  expect(parseListOnlyFile("-rw-r--r--           3 2030/01/01 00:00:00 a/ b.txt")).toBe("a/ b.txt");
  expect(parseListOnlyFile("-rw-r--r--    1234567890 2030/01/01 00:00:00 x\\#012y")).toBe("x\ny");
  expect(parseListOnlyFile("drwxr-xr-x        4096 2026/11/30 09:10:03 extradir")).toBeNull();
  expect(parseListOnlyFile("lrwxrwxrwx           3 2026/11/30 09:10:03 link")).toBeNull();
});
