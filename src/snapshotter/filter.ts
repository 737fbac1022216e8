// containerd's filter syntax (its `filters` package), which List receives: a filter is selectors joined by ","
// (all must match), several filters match when any does. A selector is `<fieldpath>[<op><value>]` with the
// operators == != ~= (a regular expression) or none (the field is present); a fieldpath is fields joined by
// "." and a field may be "quoted" (`labels."containerd.io/snapshot.ref"`); a value is bare up to "," or space, or
// quoted with "…", or /…/ and |…| after ~=. Pure: strings in, a predicate out.
import { SnapshotError } from "./errors.ts";
import type { SnapshotRow } from "./store.ts";

export type Operator = "present" | "==" | "!=" | "~=";

export interface Selector {
  fieldpath: string[];
  op: Operator;
  value: string;
  /** The compiled value of a ~= selector. */
  re?: RegExp;
}

/** Any of the filters matches when all of its selectors do; no filter (or an empty one) matches everything. */
export type Filter = readonly (readonly Selector[])[];

/** What a field path names on an object, undefined when it has no such field. */
export type Fields = (fieldpath: readonly string[]) => string | undefined;

type Token = { kind: "eof" | "quoted" | "value" | "field" | "separator" | "operator" | "illegal"; text: string; pos: number };

const QUOTES = new Set(["/", "|", '"']);
const SEPARATORS = new Set([",", "."]);
const OPERATOR_CHARS = new Set(["=", "!", "~"]);
const isField = (c: string) => /^[A-Za-z0-9_]$/.test(c);
const isValue = (c: string) => c !== "," && !/^[\s\p{Cc}]$/u.test(c);

/** The tokens of one filter; whether a bare word is a value depends on an operator just before it. */
class Scanner {
  readonly #chars: string[];
  #pos = 0;
  #afterOperator = false;

  constructor(input: string) {
    this.#chars = [...input];
  }

  peek(): Token {
    const [pos, after] = [this.#pos, this.#afterOperator];
    const t = this.scan();
    [this.#pos, this.#afterOperator] = [pos, after];
    return t;
  }

  scan(): Token {
    const c = this.#chars;
    while (this.#pos < c.length && /^\s$/.test(c[this.#pos])) this.#pos++;
    const start = this.#pos;
    const take = (kind: Token["kind"]): Token => ({ kind, text: c.slice(start, this.#pos).join(""), pos: start });
    if (start >= c.length) return take("eof");
    const ch = c[this.#pos++];
    if (QUOTES.has(ch)) {
      for (;;) {
        if (this.#pos >= c.length || c[this.#pos] === "\n") return take("illegal");
        const q = c[this.#pos++];
        if (q === ch) return take("quoted");
        if (q === "\\") this.#pos++; // the escape's validity is checked when unquoting
      }
    }
    if (SEPARATORS.has(ch)) {
      this.#afterOperator = false;
      return take("separator");
    }
    if (OPERATOR_CHARS.has(ch)) {
      while (this.#pos < c.length && OPERATOR_CHARS.has(c[this.#pos])) this.#pos++;
      this.#afterOperator = true;
      return take("operator");
    }
    if (this.#afterOperator) {
      while (this.#pos < c.length && isValue(c[this.#pos])) this.#pos++;
      this.#afterOperator = false;
      return take("value");
    }
    if (isField(ch)) {
      while (this.#pos < c.length && isField(c[this.#pos])) this.#pos++;
      return take("field");
    }
    return take("illegal");
  }
}

/** Parses List's filters. @throws SnapshotError INVALID_ARGUMENT naming the filter and the position */
export function parseFilters(filters: readonly string[]): Filter {
  return filters.map(parseFilter);
}

function parseFilter(input: string): Selector[] {
  if (input === "") return [];
  const s = new Scanner(input);
  const fail = (t: Token, why: string): never => {
    throw new SnapshotError("INVALID_ARGUMENT", `Bad filter ${JSON.stringify(input)} at character ${t.pos + 1}: ${why}`);
  };
  const field = (): string => {
    const t = s.scan();
    if (t.kind === "field") return t.text;
    if (t.kind === "quoted") return unquote(t, false, fail);
    return fail(t, "expected a field name or a quoted string");
  };
  const selector = (): Selector => {
    const fieldpath = [field()];
    while (s.peek().kind === "separator" && s.peek().text === ".") {
      s.scan();
      fieldpath.push(field());
    }
    const next = s.peek();
    if (next.kind === "eof" || (next.kind === "separator" && next.text === ",")) return { fieldpath, op: "present", value: "" };
    const op = s.scan();
    if (op.kind !== "operator") return fail(op, 'expected an operator ("==", "!=" or "~=")');
    if (op.text !== "==" && op.text !== "!=" && op.text !== "~=") return fail(op, `unsupported operator ${JSON.stringify(op.text)}`);
    const v = s.scan();
    const value = v.kind === "value" || v.kind === "field" ? v.text : v.kind === "quoted" ? unquote(v, op.text === "~=", fail) : fail(v, "expected a value or a quoted string");
    if (op.text !== "~=") return { fieldpath, op: op.text, value };
    try {
      return { fieldpath, op: op.text, value, re: new RegExp(value) };
    } catch (err) {
      return fail(v, `bad regular expression: ${(err as Error).message}`);
    }
  };
  const out = [selector()];
  for (;;) {
    const t = s.scan();
    if (t.kind === "eof") return out;
    if (t.kind !== "separator" || t.text !== ",") fail(t, `unexpected ${JSON.stringify(t.text)}`);
    out.push(selector());
  }
}

const ESCAPES: Record<string, string> = { a: "\x07", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t", v: "\v", "\\": "\\" };
const HEX_DIGITS: Record<string, number> = { x: 2, u: 4, U: 8 };

/** A quoted token's text: "…" anywhere, /…/ and |…| only as a ~= value; Go's escapes (\n, \x41, \u00e9, \101, \"). */
function unquote(t: Token, regexQuotes: boolean, fail: (t: Token, why: string) => never): string {
  const quote = t.text[0];
  if (!regexQuotes && quote !== '"') fail(t, "invalid quote encountered");
  const body = [...t.text.slice(1, -1)];
  let out = "";
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c === quote) fail(t, "unescaped quote inside a quoted string");
    if (c !== "\\") { out += c; continue; }
    const e = body[++i] ?? "";
    if (e in ESCAPES) out += ESCAPES[e];
    else if (e === quote) out += e;
    else if (e in HEX_DIGITS) {
      const hex = body.slice(i + 1, i + 1 + HEX_DIGITS[e]).join("");
      if (hex.length !== HEX_DIGITS[e] || !/^[0-9a-fA-F]+$/.test(hex) || parseInt(hex, 16) > 0x10ffff) fail(t, `bad escape \\${e}${hex}`);
      out += String.fromCodePoint(parseInt(hex, 16));
      i += HEX_DIGITS[e];
    } else if (/^[0-7]$/.test(e)) {
      const oct = e + body.slice(i + 1, i + 3).join("");
      if (!/^[0-7]{3}$/.test(oct) || parseInt(oct, 8) > 255) fail(t, `bad escape \\${oct}`);
      out += String.fromCodePoint(parseInt(oct, 8));
      i += 2;
    } else fail(t, `illegal escape sequence \\${e}`);
  }
  return out;
}

/** Whether the object whose fields `fields` names passes the filter (containerd's selector semantics). */
export function matchFilter(filter: Filter, fields: Fields): boolean {
  if (filter.length === 0) return true;
  return filter.some((all) => all.every((sel) => {
    const v = fields(sel.fieldpath);
    switch (sel.op) {
      case "present": return v !== undefined;
      case "==": return v !== undefined && v === sel.value;
      case "!=": return (v ?? "") !== sel.value;
      case "~=": return sel.re!.test(v ?? "");
    }
  }));
}

/** A snapshot's fields as containerd's snapshot storage adapts them: kind, name, parent, labels.<key>. */
export function snapshotFields(row: SnapshotRow): Fields {
  return ([first, ...rest]) => {
    switch (first) {
      case "kind": return row.kind;
      case "name": return row.name;
      case "parent": return row.parent;
      case "labels": return Object.hasOwn(row.labels, rest.join(".")) ? row.labels[rest.join(".")] : undefined;
      default: return undefined;
    }
  };
}
