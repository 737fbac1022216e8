// A journal of the kernel requests a daemon has taken but not yet answered, for a frontend whose kernel end a
// holder keeps open across the daemon's death (src/daemon/holder.ts): the requests stay pending in the kernel,
// their readers blocked, and a restarted daemon answers them from what the journal says they asked. Each request
// is recorded under the key the kernel matches its answer by (a fanotify event's fd number, a FUSE request's
// unique), with an opaque payload (what the frontend needs to handle it again). Writes are batched by the caller (flush()); no fsync: the page cache survives the death of
// the process (not of the machine, and then no reader survives either).
//
// Record (little-endian, 8-byte aligned):  0 u32 magic "EODR"   4 u32 payload length   8 u64 key   16 u64 seq
//   24 u32 kind (0 taken, 1 answered, 2 end)   28 u32 crc32 of bytes 0..28 and the payload   32 payload, zero-padded
// An "answered" record carries the seq of the taken record it answers. An end record ends the journal (a
// compaction rewrites it from the start, so stale records may follow). For a key, only the taken record with
// the highest seq can still be pending.
import fs from "node:fs";
import zlib from "node:zlib";

const MAGIC = 0x52444f45; // "EODR"
export const RECORD_HEADER_LEN = 32;
const KINDS = { taken: 0, answered: 1, end: 2 } as const;
export type RecordKind = keyof typeof KINDS;
/** Rewrite the journal from the start once it grows beyond this while requests are pending. */
const COMPACT_AT = 1 << 20;

export interface TakenRecord {
  key: bigint;
  seq: bigint;
  payload: Buffer;
}

function recordLen(payloadLen: number): number {
  return RECORD_HEADER_LEN + ((payloadLen + 7) & ~7);
}

/** One record; `payload` empty for answered and end records. */
export function encodeRecord(kind: RecordKind, key: bigint, seq: bigint, payload: Uint8Array = Buffer.alloc(0)): Buffer {
  const out = Buffer.alloc(recordLen(payload.length));
  out.writeUInt32LE(MAGIC, 0);
  out.writeUInt32LE(payload.length, 4);
  out.writeBigUInt64LE(key, 8);
  out.writeBigUInt64LE(seq, 16);
  out.writeUInt32LE(KINDS[kind], 24);
  out.set(payload, RECORD_HEADER_LEN);
  out.writeUInt32LE(zlib.crc32(out.subarray(RECORD_HEADER_LEN, RECORD_HEADER_LEN + payload.length), zlib.crc32(out.subarray(0, 28))), 28);
  return out;
}

/**
 * The requests a journal says may still be pending, oldest first: per key, the taken record with the highest
 * seq that no answered record names. Reading stops at an end record, a bad magic, length or checksum, or the
 * end of the file.
 */
export function pendingRecords(buf: Buffer): { records: TakenRecord[]; maxSeq: bigint } {
  const latest = new Map<bigint, TakenRecord>();
  const answered = new Set<bigint>();
  let maxSeq = 0n;
  for (let at = 0; at + RECORD_HEADER_LEN <= buf.length;) {
    if (buf.readUInt32LE(at) !== MAGIC) break;
    const len = buf.readUInt32LE(at + 4);
    if (at + RECORD_HEADER_LEN + len > buf.length) break;
    const payload = buf.subarray(at + RECORD_HEADER_LEN, at + RECORD_HEADER_LEN + len);
    if (buf.readUInt32LE(at + 28) !== zlib.crc32(payload, zlib.crc32(buf.subarray(at, at + 28)))) break;
    const kind = buf.readUInt32LE(at + 24);
    if (kind === KINDS.end) break;
    const key = buf.readBigUInt64LE(at + 8);
    const seq = buf.readBigUInt64LE(at + 16);
    if (seq > maxSeq) maxSeq = seq;
    if (kind === KINDS.answered) answered.add(seq);
    else if (kind === KINDS.taken && !((latest.get(key)?.seq ?? -1n) > seq)) latest.set(key, { key, seq, payload: Buffer.from(payload) });
    at += recordLen(len);
  }
  const records = [...latest.values()].filter((r) => !answered.has(r.seq)).sort((a, b) => (a.seq < b.seq ? -1 : 1));
  return { records, maxSeq };
}

/** The open journal of one daemon: records taken requests, forgets answered ones. */
export class RequestJournal {
  readonly #fd: number;
  readonly #taken = new Map<bigint, TakenRecord>();
  readonly #unwritten: Buffer[] = [];
  #seq: bigint;
  #pos = 0;

  /** Opens (creating) the journal and returns it with the requests a dead daemon left pending. */
  static open(file: string): { journal: RequestJournal; left: TakenRecord[] } {
    const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    const { records, maxSeq } = pendingRecords(fs.readFileSync(fd));
    const journal = new RequestJournal(fd, maxSeq + 1n);
    for (const r of records) journal.#taken.set(r.key, r); // until answered, they stay in every rewrite
    journal.#rewrite();
    return { journal, left: records };
  }

  private constructor(fd: number, seq: bigint) {
    this.#fd = fd;
    this.#seq = seq;
  }

  get pending(): number {
    return this.#taken.size;
  }

  /** Records a request just taken (written at the next flush(): call it before answering asynchronously). */
  take(key: bigint, payload: Uint8Array): void {
    const r = { key, seq: this.#seq++, payload: Buffer.from(payload) };
    this.#taken.set(key, r);
    this.#unwritten.push(encodeRecord("taken", key, r.seq, r.payload));
  }

  /** The request under `key` got its answer (written at the next flush()). */
  answered(key: bigint): void {
    const r = this.#taken.get(key);
    if (!r) return;
    this.#taken.delete(key);
    this.#unwritten.push(encodeRecord("answered", key, r.seq));
  }

  /** Writes what was taken and answered since the last flush, in one write. */
  flush(): void {
    if (this.#unwritten.length === 0) return;
    if (this.#taken.size === 0) { this.#unwritten.length = 0; return this.#rewrite(); } // nothing pending: start over
    const buf = Buffer.concat([...this.#unwritten.splice(0), encodeRecord("end", 0n, 0n)]);
    if (this.#pos + buf.length > COMPACT_AT) return this.#rewrite();
    fs.writeSync(this.#fd, buf, 0, buf.length, this.#pos);
    this.#pos += buf.length - RECORD_HEADER_LEN; // the next write overwrites this one's end record
  }

  /** Writes the pending records from the start, then an end record. */
  #rewrite(): void {
    const buf = Buffer.concat([...[...this.#taken.values()].map((r) => encodeRecord("taken", r.key, r.seq, r.payload)), encodeRecord("end", 0n, 0n)]);
    fs.writeSync(this.#fd, buf, 0, buf.length, 0);
    this.#pos = buf.length - RECORD_HEADER_LEN;
  }

  close(): void {
    fs.closeSync(this.#fd);
  }
}
