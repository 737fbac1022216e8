// Which chunks of a blob are in its cache file: one bit per chunk-table entry. Persisted as
// <id>.present = "EODPMAP1" | u32le chunk count | 32-byte sha256 of the chunk table | bitmap, replaced
// atomically (temp file + rename). A bit is persisted only after an fdatasync of the cache file that
// followed the chunk's write, so after a crash a set bit always means durable, verified bytes.
import fs from "node:fs";

const MAGIC = "EODPMAP1";
const HEADER = 8 + 4 + 32;

export class PresenceMap {
  readonly count: number;
  readonly #bits: Uint8Array;
  #present = 0;

  constructor(count: number, bits?: Uint8Array) {
    this.count = count;
    this.#bits = bits ?? new Uint8Array(Math.ceil(count / 8));
    for (let i = 0; i < count; i++) if (this.has(i)) this.#present++;
  }

  has(i: number): boolean {
    return (this.#bits[i >> 3] & (1 << (i & 7))) !== 0;
  }

  set(i: number): void {
    if (this.has(i)) return;
    this.#bits[i >> 3] |= 1 << (i & 7);
    this.#present++;
  }

  clear(i: number): void {
    if (!this.has(i)) return;
    this.#bits[i >> 3] &= ~(1 << (i & 7));
    this.#present--;
  }

  get present(): number {
    return this.#present;
  }

  get complete(): boolean {
    return this.#present === this.count;
  }

  copy(): PresenceMap {
    return new PresenceMap(this.count, Uint8Array.from(this.#bits));
  }

  /** Writes the map for a chunk table with digest `tableDigest` (32 bytes) to `path`, atomically. */
  save(path: string, tableDigest: Uint8Array): void {
    const out = Buffer.alloc(HEADER + this.#bits.length);
    out.write(MAGIC, 0, "latin1");
    out.writeUInt32LE(this.count, 8);
    out.set(tableDigest, 12);
    out.set(this.#bits, HEADER);
    const tmp = `${path}.tmp`;
    const fd = fs.openSync(tmp, "w", 0o600);
    try {
      fs.writeSync(fd, out);
      fs.fdatasyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, path);
  }

  /** Loads a saved map; null when missing, malformed, or written for another chunk table. */
  static load(path: string, count: number, tableDigest: Uint8Array): PresenceMap | null {
    let buf: Buffer;
    try {
      buf = fs.readFileSync(path);
    } catch {
      return null;
    }
    if (buf.length !== HEADER + Math.ceil(count / 8) || buf.toString("latin1", 0, 8) !== MAGIC) return null;
    if (buf.readUInt32LE(8) !== count || !buf.subarray(12, HEADER).equals(tableDigest)) return null;
    return new PresenceMap(count, Uint8Array.from(buf.subarray(HEADER)));
  }
}
