// Names in an image are bytes, not text. To print one so a user can type it back, printable UTF-8 stays as it
// is and every other byte (invalid UTF-8, control characters) becomes \xNN, a backslash \\: the escapes of
// GNU ls/find, and what `eod inspect --stat` parses back.

const HEX = (b: number) => `\\x${b.toString(16).padStart(2, "0")}`;

/** One name, escaped. */
export function escapeName(name: Uint8Array): string {
  let out = "";
  for (let i = 0; i < name.length;) {
    const n = utf8Length(name, i);
    if (n === 0) {
      out += HEX(name[i++]);
      continue;
    }
    const ch = Buffer.from(name.subarray(i, i + n)).toString("utf8");
    const code = ch.codePointAt(0)!;
    if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) for (let k = 0; k < n; k++) out += HEX(name[i + k]);
    else out += code === 0x5c ? "\\\\" : ch;
    i += n;
  }
  return out;
}

/** A path ("/a/b") of names, escaped; the root is "/". */
export function escapePath(names: readonly Uint8Array[]): string {
  return "/" + names.map(escapeName).join("/");
}

/** Parses an escaped path back into names ("" and "." components are dropped); an unknown escape is literal. */
export function parsePath(text: string): Uint8Array[] {
  return text.split("/").filter((p) => p !== "" && p !== ".").map(parseName);
}

function parseName(text: string): Uint8Array {
  const parts: Buffer[] = [];
  let plain = "";
  for (let i = 0; i < text.length; i++) {
    const hex = text[i] === "\\" && text[i + 1] === "x" ? /^[0-9a-fA-F]{2}$/.exec(text.slice(i + 2, i + 4)) : null;
    if (hex || (text[i] === "\\" && text[i + 1] === "\\")) {
      parts.push(Buffer.from(plain), Buffer.from([hex ? Number.parseInt(hex[0], 16) : 0x5c]));
      plain = "";
      i += hex ? 3 : 1;
    } else {
      plain += text[i];
    }
  }
  parts.push(Buffer.from(plain));
  return Buffer.concat(parts);
}

/** The length of the well-formed UTF-8 sequence at `i` (no overlongs, surrogates or code points past U+10FFFF), or 0. */
function utf8Length(b: Uint8Array, i: number): number {
  const c = b[i];
  if (c < 0x80) return 1;
  const n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
  if (n === 0 || i + n > b.length) return 0;
  const lo = c === 0xe0 ? 0xa0 : c === 0xf0 ? 0x90 : 0x80;
  const hi = c === 0xed ? 0x9f : c === 0xf4 ? 0x8f : 0xbf;
  if (b[i + 1] < lo || b[i + 1] > hi) return 0;
  for (let k = 2; k < n; k++) if (b[i + k] < 0x80 || b[i + k] > 0xbf) return 0;
  return n;
}
