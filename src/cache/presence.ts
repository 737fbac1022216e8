// Which chunks of a blob are in its cache file: one bit per chunk-table entry. Persisted as
// <id>.present = "EODPMAP1" | u32le chunk count | 32-byte sha256 of the chunk table | bitmap, replaced
// atomically (temp file + rename). A bit is persisted only after an fdatasync of the cache file that
// followed the chunk's write, so after a crash a set bit always means durable, verified bytes.
// "EODPMAP2" adds the chunks' LRU ticks (lru.ts) after the bitmap, u32le each, so culling order survives a
// restart; an EODPMAP1 map still loads (without ticks).
import fs from "node:fs";

const MAGIC = "EODPMAP1";
const MAGIC_LRU = "EODPMAP2";
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

  /** Writes the map for a chunk table with digest `tableDigest` (32 bytes) to `path`, atomically, with the chunks' LRU ticks if given. */
  save(path: string, tableDigest: Uint8Array, ticks?: Uint32Array): void {
    const out = this.#encode(tableDigest, ticks);
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

  /**
   * save() off the main thread: the flusher's way, so that a second that filled 1,000 blobs does not stall the
   * event loop for 1,000 synchronous fdatasyncs (bench:many: ~200 ms).
   */
  async saveAsync(path: string, tableDigest: Uint8Array, ticks?: Uint32Array): Promise<void> {
    const out = this.#encode(tableDigest, ticks);
    const tmp = `${path}.tmp`;
    const fh = await fs.promises.open(tmp, "w", 0o600);
    try {
      await fh.writeFile(out);
      await fh.datasync();
    } finally {
      await fh.close();
    }
    await fs.promises.rename(tmp, path);
  }

  #encode(tableDigest: Uint8Array, ticks?: Uint32Array): Buffer {
    const lru = ticks && ticks.length === this.count ? ticks : null;
    const out = Buffer.alloc(HEADER + this.#bits.length + (lru ? 4 * this.count : 0));
    out.write(lru ? MAGIC_LRU : MAGIC, 0, "latin1");
    out.writeUInt32LE(this.count, 8);
    out.set(tableDigest, 12);
    out.set(this.#bits, HEADER);
    if (lru) for (let i = 0; i < lru.length; i++) out.writeUInt32LE(lru[i], HEADER + this.#bits.length + 4 * i);
    return out;
  }

  /** Loads a saved map; null when missing, malformed, or written for another chunk table. */
  static load(path: string, count: number, tableDigest: Uint8Array): PresenceMap | null {
    return PresenceMap.loadWithTicks(path, count, tableDigest)?.presence ?? null;
  }

  /** load(), and the chunks' LRU ticks when the map has them (else null). */
  static loadWithTicks(path: string, count: number, tableDigest: Uint8Array): { presence: PresenceMap; ticks: Uint32Array | null } | null {
    let buf: Buffer;
    try {
      buf = fs.readFileSync(path);
    } catch {
      return null;
    }
    const bitmap = Math.ceil(count / 8);
    const magic = buf.toString("latin1", 0, 8);
    const withTicks = magic === MAGIC_LRU;
    if ((magic !== MAGIC && !withTicks) || buf.length !== HEADER + bitmap + (withTicks ? 4 * count : 0)) return null;
    if (buf.readUInt32LE(8) !== count || !buf.subarray(12, HEADER).equals(tableDigest)) return null;
    const presence = new PresenceMap(count, Uint8Array.from(buf.subarray(HEADER, HEADER + bitmap)));
    let ticks: Uint32Array | null = null;
    if (withTicks) {
      ticks = new Uint32Array(count);
      for (let i = 0; i < count; i++) ticks[i] = buf.readUInt32LE(HEADER + bitmap + 4 * i);
    }
    return { presence, ticks };
  }
}
