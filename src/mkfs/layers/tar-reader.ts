// Streaming tar reader for layer tarballs (ustar, GNU and PAX). Header numbers and checksums are decoded by
// tar-header.ts (octal and base-256); names come from the raw header bytes, and
// PAX and GNU long-name bodies are parsed as bytes (pax.ts), so non-UTF-8 names, binary xattrs and
// nanosecond times survive. Bodies are handed out as the input's own buffers, never collected: memory
// stays at one input chunk plus metadata, whatever the entry sizes.
import { EodError } from "../../errors.ts";
import type { Xattr } from "../../erofs/xattr.ts";
import { parsePax, parsePaxInt, parsePaxTime, type PaxRecords } from "./pax.ts";
import { BLOCK, decodeTarHeader, tarNumber, type TarHeaderNumbers } from "./tar-header.ts";

/** Largest PAX or GNU long-name body accepted, and the most metadata pending for one entry (as node-tar's default). */
export const DEFAULT_MAX_META_SIZE = 1 << 20;

export type TarEntryType = "file" | "link" | "symlink" | "chardev" | "blockdev" | "dir" | "fifo";

export interface TarEntry {
  /** The stored path bytes (after PAX / GNU long-name overrides), not normalised. */
  path: Buffer;
  /** Hard and symbolic links: the target bytes. */
  linkpath: Buffer;
  type: TarEntryType;
  /** Permission bits (07777). */
  mode: number;
  uid: number;
  gid: number;
  /** Bytes of the body (regular files; 0 for the others). */
  size: number;
  mtimeSec: number;
  mtimeNsec: number;
  devMajor: number;
  devMinor: number;
  /** From SCHILY.xattr.* (or LIBARCHIVE.xattr.*) PAX records. */
  xattrs: Xattr[];
  /** Byte position of the entry's first header in the tar stream. */
  offset: number;
  /** Byte position of the body in the tar stream: right after the entry's own header, past any PAX / GNU headers. */
  dataOffset: number;
}

type Classified =
  | { kind: "eof" }
  | { kind: "meta"; type: "x" | "g" | "L" | "K"; size: number }
  | { kind: "entry"; entry: TarEntry; bodySize: number };

/**
 * Interprets header blocks one at a time and keeps the pending PAX / GNU records between them; shared by the
 * streaming reader below and the `docker save` archive indexer, which seeks instead of reading bodies.
 */
export class TarHeaders {
  readonly #where: string;
  readonly #maxMeta: number;
  #pax: PaxRecords = new Map();
  #global: PaxRecords = new Map();
  #globalBytes = 0;
  #pendingBytes = 0;
  #longPath: Buffer | null = null;
  #longLink: Buffer | null = null;
  #first = -1;
  readonly #sparseHint: string;

  /** `sparseHint` is added to the refusal of a sparse entry (what the caller's user can do instead). */
  constructor(where: string, maxMetaSize = DEFAULT_MAX_META_SIZE, sparseHint = "") {
    this.#where = where;
    this.#maxMeta = maxMetaSize;
    this.#sparseHint = sparseHint && ` (${sparseHint})`;
  }

  header(block: Buffer, pos: number): Classified {
    if (isZeroBlock(block)) return { kind: "eof" };
    let h: TarHeaderNumbers;
    try {
      h = decodeTarHeader(block);
    } catch (err) {
      throw this.#bad(pos, `unreadable header (${(err as Error).message})`);
    }
    if (!h.checksumOk) throw this.#bad(pos, pos === 0 ? "not a tar archive (bad header checksum)" : "bad header checksum");
    if (this.#first < 0) this.#first = pos;
    const code = String.fromCharCode(block[156] || 0x30);
    const size = h.size;
    if (!Number.isSafeInteger(size) || size < 0) throw this.#bad(pos, "invalid size field");
    if (code === "x" || code === "X" || code === "g" || code === "L" || code === "K") {
      if (size > this.#maxMeta || this.#pendingBytes + size > this.#maxMeta || (code === "g" && this.#globalBytes + size > this.#maxMeta)) {
        throw this.#bad(pos, `${code === "L" || code === "K" ? "GNU long-name" : "PAX"} header of ${size} bytes exceeds the ${this.#maxMeta}-byte limit`);
      }
      if (code === "g") this.#globalBytes += size;
      else this.#pendingBytes += size;
      return { kind: "meta", type: code === "X" ? "x" : code, size };
    }
    const entryAt = this.#first;
    this.#first = -1;
    const where = `${this.#where}: entry at byte ${entryAt}`;
    const rec = (k: string) => this.#pax.get(k) ?? this.#global.get(k);
    const path = this.#longPath ?? rec("path") ?? ustarPath(block);
    const linkpath = this.#longLink ?? rec("linkpath") ?? cString(block, 157, 100);
    const named = `${this.#where}: entry ${JSON.stringify(path.toString())}`;
    let type: TarEntryType;
    switch (code) {
      case "0": case "7": type = path[path.length - 1] === 0x2f ? "dir" : "file"; break;
      case "1": type = "link"; break;
      case "2": type = "symlink"; break;
      case "3": type = "chardev"; break;
      case "4": type = "blockdev"; break;
      case "5": case "D": type = "dir"; break;
      case "6": type = "fifo"; break;
      case "S": throw new EodError("SOURCE_UNSUPPORTED", `${named}: GNU sparse files are not supported${this.#sparseHint}`);
      default: throw new EodError("SOURCE_UNSUPPORTED", `${named}: unsupported tar entry type ${JSON.stringify(code)}`);
    }
    for (const k of [...this.#pax.keys(), ...this.#global.keys()]) {
      if (k.startsWith("GNU.sparse.")) throw new EodError("SOURCE_UNSUPPORTED", `${named}: PAX sparse files are not supported${this.#sparseHint}`);
    }
    const num = (k: string, fallback: number | undefined): number => {
      const v = rec(k);
      if (v) return parsePaxInt(v, k, where);
      if (fallback === undefined || !Number.isSafeInteger(fallback) || fallback < 0) throw this.#bad(pos, `invalid ${k} field`);
      return fallback;
    };
    const paxSize = num("size", size);
    const mtimeRec = rec("mtime");
    const headerMtime = Number.isNaN(h.mtime) ? 0 : h.mtime;
    const mtime = mtimeRec ? parsePaxTime(mtimeRec, where) : { sec: headerMtime, nsec: 0 };
    const entry: TarEntry = {
      path, linkpath, type,
      mode: (Number.isNaN(h.mode) ? 0 : h.mode) & 0o7777,
      uid: num("uid", h.uid), gid: num("gid", h.gid),
      size: type === "file" ? paxSize : 0,
      mtimeSec: mtime.sec, mtimeNsec: mtime.nsec,
      devMajor: type === "chardev" || type === "blockdev" ? deviceNumber(block, 329) : 0,
      devMinor: type === "chardev" || type === "blockdev" ? deviceNumber(block, 337) : 0,
      xattrs: xattrsOf(this.#pax, this.#global),
      offset: entryAt,
      dataOffset: pos + BLOCK,
    };
    this.#pax = new Map();
    this.#pendingBytes = 0;
    this.#longPath = null;
    this.#longLink = null;
    // Links, devices, fifos and directories have no body whatever the size field says (as Go's archive/tar,
    // which wrote most layers); a GNU dump dir's body (a name list) is skipped.
    return { kind: "entry", entry, bodySize: type === "file" || code === "D" ? paxSize : 0 };
  }

  meta(type: "x" | "g" | "L" | "K", body: Buffer): void {
    const where = `${this.#where}: extended header`;
    if (type === "x") parsePax(body, this.#pax, where);
    else if (type === "g") parsePax(body, this.#global, where);
    else {
      const nul = body.indexOf(0);
      const name = Buffer.from(nul < 0 ? body : body.subarray(0, nul));
      if (type === "L") this.#longPath = name;
      else this.#longLink = name;
    }
  }

  #bad(pos: number, why: string): EodError {
    return new EodError("SOURCE_INVALID", `${this.#where}: ${why} at byte ${pos}`);
  }
}

/**
 * Reads a tar stream entry by entry. Each `body` yields exactly `entry.size` bytes as slices of the input;
 * whatever a consumer leaves unread is skipped when it asks for the next entry. After the end-of-archive
 * block the rest of the input is read and dropped (so digests over the whole stream can be checked).
 */
export async function* readTar(
  source: AsyncIterable<Buffer>, opts: { where: string; maxMetaSize?: number; sparseHint?: string },
): AsyncGenerator<{ entry: TarEntry; body: AsyncIterable<Buffer> }> {
  const r = new ByteReader(source, opts.where);
  const headers = new TarHeaders(opts.where, opts.maxMetaSize, opts.sparseHint);
  try {
    yield* entries(r, headers);
  } finally {
    await r.close(); // on an early exit too: closes the source (file, decompressor)
  }
}

async function* entries(r: ByteReader, headers: TarHeaders): AsyncGenerator<{ entry: TarEntry; body: AsyncIterable<Buffer> }> {
  for (;;) {
    const pos = r.pos;
    const block = await r.read(BLOCK, "a header");
    // The input ends where a header would start: the end of the archive, as Go's archive/tar (docker, containerd)
    // reads it, also with no bytes at all (an empty layer). Some tools write no end-of-archive blocks; a layer
    // cut there is caught by its digests (layer digest, diff_id, gzip's own length and CRC), not by the tar.
    if (!block) break;
    const c = headers.header(block, pos);
    if (c.kind === "eof") break;
    if (c.kind === "meta") {
      const body = await r.read(c.size, "an extended header");
      if (!body && c.size) throw r.truncated("an extended header");
      headers.meta(c.type, body ?? Buffer.alloc(0));
      await r.skip(pad(c.size), "padding");
      continue;
    }
    const state = { left: c.bodySize };
    const what = `entry ${JSON.stringify(c.entry.path.toString())}`;
    yield { entry: c.entry, body: r.take(state, what) };
    await r.skip(state.left, what); // the unread rest of the body
    await r.skip(pad(c.bodySize), what);
  }
  await r.drain();
}

function pad(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/** Exact reads over an async stream of buffers; `pos` counts the bytes consumed. */
class ByteReader {
  readonly #it: AsyncIterator<Buffer>;
  readonly #where: string;
  #buf: Buffer = Buffer.alloc(0);
  #ended = false;
  pos = 0;

  constructor(source: AsyncIterable<Buffer>, where: string) {
    this.#it = source[Symbol.asyncIterator]();
    this.#where = where;
  }

  async #fill(): Promise<boolean> {
    while (!this.#buf.length) {
      if (this.#ended) return false;
      const next = await this.#it.next();
      if (next.done) { this.#ended = true; return false; }
      this.#buf = next.value;
    }
    return true;
  }

  #advance(n: number): Buffer {
    const out = this.#buf.subarray(0, n);
    this.#buf = this.#buf.subarray(n);
    this.pos += n;
    return out;
  }

  truncated(what: string): EodError {
    return new EodError("SOURCE_INVALID", `${this.#where}: truncated: the tar stream ends after ${this.pos} bytes, inside ${what}`);
  }

  /** `n` bytes (a view into the input when they sit in one chunk), or null at a clean end before any byte. */
  async read(n: number, what: string): Promise<Buffer | null> {
    if (!(await this.#fill())) return null;
    if (this.#buf.length >= n) return this.#advance(n);
    const parts: Buffer[] = [];
    let got = 0;
    while (got < n) {
      if (!(await this.#fill())) throw this.truncated(what);
      const part = this.#advance(Math.min(n - got, this.#buf.length));
      parts.push(part);
      got += part.length;
    }
    return Buffer.concat(parts, n);
  }

  async *take(state: { left: number }, what: string): AsyncGenerator<Buffer> {
    while (state.left > 0) {
      if (!(await this.#fill())) throw this.truncated(what);
      const part = this.#advance(Math.min(state.left, this.#buf.length));
      state.left -= part.length;
      yield part;
    }
  }

  async skip(n: number, what: string): Promise<void> {
    while (n > 0) {
      if (!(await this.#fill())) throw this.truncated(what);
      n -= this.#advance(Math.min(n, this.#buf.length)).length;
    }
  }

  async drain(): Promise<void> {
    while (await this.#fill()) this.#advance(this.#buf.length);
  }

  async close(): Promise<void> {
    this.#buf = Buffer.alloc(0);
    if (!this.#ended) {
      this.#ended = true;
      await this.#it.return?.();
    }
  }
}

function isZeroBlock(b: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (b[i] !== 0) return false;
  return true;
}

function cString(b: Buffer, at: number, len: number): Buffer {
  const field = b.subarray(at, at + len);
  const nul = field.indexOf(0);
  return Buffer.from(nul < 0 ? field : field.subarray(0, nul));
}

/** name, with the ustar prefix (POSIX "ustar\0" "00" only; GNU tars use that area for other fields). */
function ustarPath(b: Buffer): Buffer {
  const name = cString(b, 0, 100);
  if (b.toString("latin1", 257, 265) !== "ustar\u000000") return name;
  // star puts times after a 130-byte prefix; node-tar tells them apart the same way.
  const prefix = cString(b, 345, b[475] !== 0 ? 155 : 130);
  return prefix.length ? Buffer.concat([prefix, Buffer.from("/"), name]) : name;
}

/** devmajor or devminor (8 bytes at `at`); an empty or unreadable field is 0. */
function deviceNumber(b: Buffer, at: number): number {
  const n = tarNumber(b, at, 8);
  return n >= 0 ? n : 0;
}

function xattrsOf(pax: PaxRecords, global: PaxRecords): Xattr[] {
  const out = new Map<string, Buffer>();
  for (const recs of [global, pax]) {
    for (const [k, v] of recs) {
      if (k.startsWith("LIBARCHIVE.xattr.")) {
        // libarchive: URL-encoded name, base64 value; SCHILY.xattr of the same name wins.
        let name: string;
        try { name = decodeURIComponent(k.slice("LIBARCHIVE.xattr.".length)); } catch { continue; }
        if (!recs.has(`SCHILY.xattr.${name}`)) out.set(name, Buffer.from(v.toString("latin1"), "base64"));
      } else if (k.startsWith("SCHILY.xattr.")) {
        out.set(k.slice("SCHILY.xattr.".length), v);
      }
    }
  }
  return [...out].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([name, value]) => ({ name, value }));
}
