// Reading config text: JSON with # and // comments (outside strings), with line:column in syntax errors.
import { ConfigError } from "../errors.ts";

/** Blanks out comments (keeping every newline and column) so JSON.parse positions still match the file. */
export function stripJsonComments(text: string): string {
  let out = "";
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string;
    if (inString) {
      out += ch;
      if (ch === "\\") {
        out += text[i + 1] ?? "";
        i++;
      } else if (ch === '"') {
        inString = false;
      }
      continue;
    }
    if (ch === '"') {
      inString = true;
      out += ch;
    } else if (ch === "#" || (ch === "/" && text[i + 1] === "/")) {
      while (i < text.length && text[i] !== "\n") {
        out += " ";
        i++;
      }
      if (i < text.length) out += "\n";
    } else {
      out += ch;
    }
  }
  return out;
}

function lineCol(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  const col = offset - before.lastIndexOf("\n");
  return `${line}:${col}`;
}

/** Finds where JSON.parse would fail, for a message with a position (Bun's messages carry none). */
function locateSyntaxError(text: string): { offset: number; reason: string } {
  let i = 0;
  const ws = () => {
    while (i < text.length && /\s/.test(text[i] as string)) i++;
  };
  const fail = (reason: string): never => {
    throw { offset: i, reason };
  };
  const value = (): void => {
    ws();
    const ch = text[i];
    if (ch === "{") {
      i++;
      ws();
      if (text[i] === "}") { i++; return; }
      for (;;) {
        ws();
        if (text[i] === "}") fail("trailing comma before }");
        if (text[i] !== '"') fail(`expected a "key", found ${text[i] === undefined ? "the end of the file" : JSON.stringify(text[i])}`);
        str();
        ws();
        if (text[i] !== ":") fail(`expected ":" after the key`);
        i++;
        value();
        ws();
        if (text[i] === ",") { i++; continue; }
        if (text[i] === "}") { i++; return; }
        fail(`expected "," or "}", found ${text[i] === undefined ? "the end of the file" : JSON.stringify(text[i])}`);
      }
    } else if (ch === "[") {
      i++;
      ws();
      if (text[i] === "]") { i++; return; }
      for (;;) {
        ws();
        if (text[i] === "]") fail("trailing comma before ]");
        value();
        ws();
        if (text[i] === ",") { i++; continue; }
        if (text[i] === "]") { i++; return; }
        fail(`expected "," or "]", found ${text[i] === undefined ? "the end of the file" : JSON.stringify(text[i])}`);
      }
    } else if (ch === '"') {
      str();
    } else {
      const m = /^(-?\d+(\.\d+)?([eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i));
      if (!m) fail(ch === undefined ? "unexpected end of the file" : `unexpected ${JSON.stringify(ch)} (strings need "double quotes")`);
      i += (m as RegExpExecArray)[0].length;
    }
  };
  const str = () => {
    const start = i;
    i++;
    while (i < text.length && text[i] !== '"') {
      if (text[i] === "\n") { i = start; fail("unterminated string"); }
      i += text[i] === "\\" ? 2 : 1;
    }
    if (i >= text.length) { i = start; fail("unterminated string"); }
    i++;
  };
  try {
    value();
    ws();
    if (i < text.length) fail(`unexpected ${JSON.stringify(text[i])} after the end of the JSON`);
  } catch (e) {
    if (typeof e === "object" && e !== null && "offset" in e) return e as { offset: number; reason: string };
    throw e;
  }
  return { offset: 0, reason: "invalid JSON" };
}

export function parseConfigText(text: string, where: string): Record<string, unknown> {
  const clean = stripJsonComments(text.replace(/^\uFEFF/, ""));
  let raw: unknown;
  try {
    raw = JSON.parse(clean);
  } catch {
    const { offset, reason } = locateSyntaxError(clean);
    throw new ConfigError(`${where}:${lineCol(clean, offset)}`, `invalid JSON: ${reason}`, "fix the file; # and // comments are allowed, trailing commas are not");
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ConfigError(where, "expected a JSON object { … } at the top level");
  }
  return raw as Record<string, unknown>;
}
