// `rrdsync help [TOPIC]` and `--help`, from the source and as the compiled binary (RRDSYNC_BIN): every page of docs/
// comes out of the binary itself, plain on a pipe, through $PAGER on a terminal; the exit codes it prints are the
// code's; a wrong topic is exit 2 with the list; `| head` ends it quietly.
import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TOPICS } from "../../../src/cli/topics.ts";
import { EXIT_CODE_TABLE } from "../../../src/errors.ts";
import { rrdsyncCommand, runRrdsync } from "../../helpers/world.ts";

const oneLine = (s: string) => s.replace(/\s+/g, " ").trim();
const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

describe("rrdsync help", () => {
  test("without a topic: every page, by name and title", async () => {
    const r = await runRrdsync(["help"]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    for (const t of TOPICS) expect(r.stdout).toMatch(new RegExp(`^  ${t.name} +${/^# (.+)$/m.exec(t.text)?.[1]?.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`, "m"));
  });

  test("exit-codes prints the code's table, one line a code", async () => {
    const r = await runRrdsync(["help", "exit-codes"]);
    expect(r.code).toBe(0);
    const rows = [...r.stdout.matchAll(/^ {2}(\d+) +(.+)$/gm)].map((m) => [Number(m[1]), m[2]] as const);
    expect(rows).toEqual(EXIT_CODE_TABLE.map(([code, text]) => [code, oneLine(text)] as const));
  });

  test("every page, on a pipe: all its headings, no Markdown markup, no maintainers' comments", async () => {
    for (const t of TOPICS) {
      const r = await runRrdsync(["help", t.name]);
      expect({ topic: t.name, code: r.code, stderr: r.stderr }).toEqual({ topic: t.name, code: 0, stderr: "" });
      for (const m of t.text.replace(/```[\s\S]*?```/g, "").matchAll(/^(#{1,4}) (.+)$/gm)) {
        const plain = (m[2] as string).replace(/`/g, "").replace(/\*\*/g, "");
        expect(r.stdout).toContain((m[1] as string).length === 1 ? plain.toUpperCase() : plain);
      }
      expect(r.stdout).not.toContain("<!--");
      expect(r.stdout).not.toMatch(/\]\([^)]*\.md/);
      expect(r.stdout).not.toContain("**");
    }
  });

  test("a topic by a prefix only it has; a wrong or ambiguous one is exit 2 with the list", async () => {
    const trouble = await runRrdsync(["help", "trouble"]);
    expect(trouble.code).toBe(0);
    expect(trouble.stdout).toContain("WHEN THINGS GO WRONG");
    for (const [asked, said] of [["nope", 'no help topic "nope"'], ["c", 'help topic "c" could be config or commands or change-log']]) {
      const r = await runRrdsync(["help", asked as string]);
      expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 2, stdout: "" });
      expect(r.stderr).toContain(`rrdsync: ${said}`);
      expect(r.stderr).toContain(`hint: the topics: ${TOPICS.map((t) => t.name).join(", ")}`);
      expect(r.stderr).not.toContain("    at ");
    }
  });

  test("| head: the reader goes away, rrdsync ends quietly with exit 0", async () => {
    const cmd = `${rrdsyncCommand().map(shq).join(" ")} help benchmarks | head -1 >/dev/null; echo "\${PIPESTATUS[0]}"`;
    const p = Bun.spawnSync(["bash", "-c", cmd], { stdout: "pipe", stderr: "pipe" });
    expect({ rc: p.stdout.toString().trim(), err: p.stderr.toString() }).toEqual({ rc: "0", err: "" });
  });

  test.skipIf(Bun.which("script") === null)("on a terminal: through $PAGER, wrapped to the terminal", async () => {
    const dir = mkdtempSync(join(tmpdir(), "rrdsync-help-"));
    try {
      const paged = join(dir, "paged.txt");
      // script(1) gives rrdsync a terminal (80 columns); the "pager" keeps what it was given
      const cmd = `stty cols 80 rows 24; ${rrdsyncCommand().map(shq).join(" ")} help troubleshooting`;
      const p = Bun.spawnSync(["script", "-qec", cmd, "/dev/null"], { env: { ...process.env, PAGER: `tee ${paged}`, NO_COLOR: "1" }, stdout: "pipe", stderr: "pipe" });
      expect(p.exitCode).toBe(0);
      expect(existsSync(paged)).toBe(true);
      const text = readFileSync(paged, "utf8");
      expect(text).toContain("WHEN THINGS GO WRONG\n====================\n");
      expect(Math.max(...text.split("\n").map((l) => [...l].length))).toBeLessThanOrEqual(80);
      expect(text).not.toContain("\x1b["); // NO_COLOR
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("rrdsync --help", () => {
  test("the exit codes, 130 among them, and where the docs are: help TOPIC and the man page, not README.md", async () => {
    const r = await runRrdsync(["--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Exit codes:");
    expect(r.stdout).toMatch(/^ {2}130 --watch: stopped by a second SIGINT/m);
    expect(r.stdout).toContain("rrdsync help TOPIC");
    expect(r.stdout).toContain("man rrdsync");
    expect(r.stdout).not.toContain("README");
    expect(r.stdout).toMatch(/^ {2}help \[topic\] +Print a page of the docs/m);
  });
});
