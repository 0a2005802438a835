// The docs' Markdown as text to read in a terminal or a pipe: headings underlined, paragraphs and list items wrapped
// to a width, tables as one block per row, code as it is, markup and maintainers' comments gone. Pure: the styles
// (colour on a terminal, none on a pipe) are passed in.

export interface Styles {
  heading(s: string): string;
  code(s: string): string;
  bold(s: string): string;
}

export const PLAIN: Styles = { heading: (s) => s, code: (s) => s, bold: (s) => s };

export interface RenderOptions {
  /** wrap paragraphs to this many columns; Infinity: one line per paragraph (a pipe: grep finds a sentence whole) */
  width: number;
  styles: Styles;
  /** a link to another page becomes "text (rrdsync help NAME)": the page names that are topics */
  topics: readonly string[];
}

/** Display width of a string (its code points; the docs hold no wide characters). */
const width = (s: string) => [...s.replace(/\x1b\[[0-9;]*m/g, "")].length;

/** Inline Markdown → text: `code`, **bold**, [links](page.md#anchor). */
export function inline(md: string, o: RenderOptions): string {
  return md.replace(/`([^`]+)`|\*\*(.+?)\*\*|\[([^\]]+)\]\(([^)]*)\)/g, (_, code: string | undefined, bold: string | undefined, text: string | undefined, href: string | undefined) => {
    if (code !== undefined) return o.styles.code(code);
    if (bold !== undefined) return o.styles.bold(inline(bold, o));
    const shown = inline(text as string, o);
    const page = /^([a-z-]+)\.md(#.*)?$/.exec(href as string)?.[1];
    // "see [troubleshooting](troubleshooting.md#…)" reads "see rrdsync help troubleshooting", not the name twice
    if (page !== undefined && o.topics.includes(page)) return shown.toLowerCase().replace(/ /g, "-") === page ? `rrdsync help ${page}` : `${shown} (rrdsync help ${page})`;
    if (/^https?:/.test(href as string)) return `${shown} <${href}>`;
    return shown;
  });
}

/** Words filled into lines of at most `w` columns, the first after `first`, the rest after `rest`. */
export function wrap(text: string, w: number, first: string, rest: string): string[] {
  if (!Number.isFinite(w)) return [first + text];
  const words = text.split(/ +/).filter((x) => x !== "");
  const lines: string[] = [];
  let cur = first;
  let empty = true;
  for (const word of words) {
    if (!empty && width(cur) + 1 + width(word) > w) {
      lines.push(cur);
      cur = rest + word;
    } else {
      cur += (empty ? "" : " ") + word;
    }
    empty = false;
  }
  lines.push(cur);
  return lines;
}

function splitRow(row: string): string[] {
  const cells: string[] = [];
  let cur = "";
  const body = row.trim().replace(/^\|/, "").replace(/\|$/, "");
  for (let i = 0; i < body.length; i++) {
    const c = body[i] as string;
    if (c === "\\" && body[i + 1] === "|") {
      cur += "|";
      i++;
    } else if (c === "|") {
      cells.push(cur.trim());
      cur = "";
    } else {
      cur += c;
    }
  }
  cells.push(cur.trim());
  return cells;
}

/**
 * A table as one block per row: the first cell as the row's name, then each other cell indented, labelled with its
 * column's header (the "meaning" column unlabelled): readable at any width, and a grep finds a row by its name.
 */
function table(rows: string[], o: RenderOptions): string[] {
  const [head, , ...body] = rows.map(splitRow);
  const names = body.map((r) => inline(r[0] ?? "", { ...o, styles: PLAIN }));
  // short names (exit codes, markers) lead their row's first line; long ones get a line of their own
  const col = Math.max(...names.map(width));
  const beside = col <= 10;
  const indent = beside ? " ".repeat(col + 4) : "      ";
  const out: string[] = [];
  body.forEach((r, n) => {
    const name = names[n] as string;
    const cells = r.slice(1).map((c, i) => {
      const h = head?.[i + 1] ?? "";
      return c === "" ? "" : (h === "" || h === "meaning" ? "" : `${inline(h, o)}: `) + inline(c, o);
    }).filter((c) => c !== "");
    const styled = o.styles.bold(name);
    if (!beside) out.push(...wrap(styled, o.width, "  ", "  "));
    cells.forEach((c, i) => {
      const first = beside && i === 0 ? `  ${styled}${" ".repeat(col - width(name) + 2)}` : indent;
      out.push(...wrap(c, o.width, first, indent));
    });
    if (beside && cells.length === 0) out.push(`  ${styled}`);
  });
  return out;
}

export function renderMarkdown(md: string, o: RenderOptions): string {
  const lines = md.replace(/<!--[\s\S]*?-->\n?/g, "").split("\n");
  const out: string[] = [];
  const blank = () => {
    if (out.length > 0 && out[out.length - 1] !== "") out.push("");
  };
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i] as string;
    if (l.startsWith("```")) {
      blank();
      for (i++; i < lines.length && !(lines[i] as string).startsWith("```"); i++) out.push(`    ${lines[i]}`);
      blank();
      continue;
    }
    const h = /^(#{1,4}) (.*)$/.exec(l);
    if (h) {
      blank();
      const text = inline(h[2] as string, { ...o, styles: PLAIN });
      const level = (h[1] as string).length;
      out.push(o.styles.heading(level === 1 ? text.toUpperCase() : text));
      if (level <= 2) out.push(o.styles.heading((level === 1 ? "=" : "-").repeat(width(text))));
      out.push("");
      continue;
    }
    if (l.startsWith("|")) {
      const rows: string[] = [];
      for (; i < lines.length && (lines[i] as string).startsWith("|"); i++) rows.push(lines[i] as string);
      i--;
      blank();
      out.push(...table(rows, o));
      blank();
      continue;
    }
    const item = /^(\s*)(- |\d+\. )(.*)$/.exec(l);
    if (item) {
      const bullet = (item[2] as string).startsWith("-") ? "• " : (item[2] as string);
      const indent = `  ${item[1]}`;
      out.push(...wrap(inline(item[3] as string, o), o.width, indent + bullet, indent + " ".repeat(bullet.length)));
      continue;
    }
    if (l.trim() === "") {
      blank();
      continue;
    }
    // a paragraph: its lines joined
    const para = [l];
    while (i + 1 < lines.length && (lines[i + 1] as string).trim() !== "" && !/^(```|#|\||\s*- |\s*\d+\. )/.test(lines[i + 1] as string)) para.push(lines[++i] as string);
    out.push(...wrap(inline(para.join(" "), o), o.width, "", ""));
  }
  while (out[out.length - 1] === "") out.pop();
  return `${out.join("\n")}\n`;
}
