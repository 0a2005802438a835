// A PATH or GLOB argument (as `log` and `verify` take it), relative to the source dir: a plain path means that
// file or everything under that directory; a pattern with * ? [ is a glob whose * also crosses '/' (SQLite's GLOB).

export interface PathPattern {
  /** the argument as given, cleaned (no leading "./", no trailing "/") */
  text: string;
  glob: boolean;
  /** the directory every match lies under ("" = the whole tree): where a walk or a listing starts */
  base: string;
  match(rel: string): boolean;
}

export const isGlob = (s: string): boolean => /[*?[]/.test(s);

/** null when the argument names nothing inside the tree (".." or an absolute path outside `sourceDir`). */
export function parsePattern(arg: string, sourceDir: string): PathPattern | null {
  let p = arg;
  if (p.startsWith("/")) {
    if (p === sourceDir || p === `${sourceDir}/`) p = "";
    else if (p.startsWith(`${sourceDir}/`)) p = p.slice(sourceDir.length + 1);
    else return null;
  }
  p = p.replace(/^(\.\/)+/, "").replace(/\/+$/, "").replace(/\/{2,}/g, "/");
  if (p === ".") p = "";
  if (p.split("/").includes("..")) return null;
  if (!isGlob(p)) {
    const base = p;
    return { text: p, glob: false, base, match: (rel) => base === "" || rel === base || rel.startsWith(`${base}/`) };
  }
  const literal = p.slice(0, p.search(/[*?[]/));
  const base = literal.includes("/") ? literal.slice(0, literal.lastIndexOf("/")) : "";
  const re = globRegExp(p);
  return { text: p, glob: true, base, match: (rel) => re.test(rel) };
}

/** SQLite's GLOB as a RegExp: * any run (also '/'), ? one character, [..] a class ([^..] negated), the rest literal. */
export function globRegExp(glob: string): RegExp {
  let out = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === "*") out += "[\\s\\S]*";
    else if (c === "?") out += "[\\s\\S]";
    else if (c === "[") {
      const end = glob.indexOf("]", i + 2); // "[]...]": a ']' right after '[' (or '[^') is a member
      if (end < 0) {
        out += "\\[";
        continue;
      }
      let body = glob.slice(i + 1, end);
      const negate = body.startsWith("^");
      if (negate) body = body.slice(1);
      out += `[${negate ? "^" : ""}${body.replace(/[\\\]]/g, "\\$&")}]`;
      i = end;
    } else out += c.replace(/[.+^${}()|\\\]/]/g, "\\$&");
  }
  return new RegExp(`^${out}$`, "s");
}
