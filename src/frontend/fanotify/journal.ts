// The journal of permission events a daemon has taken from a held fanotify group (<cache-dir>/fanotify.journal).
// With a holder the group outlives the daemon, and so do the events the daemon had read but not answered: their
// readers stay blocked. The kernel matches a response to a pending event only by the event's fd number
// (process_access_response walks the group's access_list comparing event->fd, whoever writes), so a restarted
// daemon holding the same group can answer them, if it knows their numbers and what they asked for: that is
// this journal. One write(2) per read() batch, no fsync: the page cache survives the death of the process
// (not of the machine, and then no reader survives either).
//
// Record (64 bytes, little-endian):  0 u32 magic "EODJ"   4 s32 fd   8 u64 seq   16 u64 dev   24 u64 ino
//   32 u64 offset   40 u64 count   48 s32 pid   52 u32 kind (0 taken, 1 answered)   56 u32 crc32 of 0..56   60 u32 0
// A record with fd -1 ends the journal (a compaction rewrites it from the start, so stale records may follow).
// For a given fd number only the taken record with the highest seq can still be pending: no event gets a number
// while an earlier event with that number is pending (an event's fd is closed only after its answer). An
// "answered" record names the seq it answers; it is written before the next read() of the group, the only
// place a closed event fd number can come back as another event's, so a stale "taken" record is never
// mistaken for a newer event that got its number but died before it was journaled (that reader just waits).
import fs from "node:fs";
import zlib from "node:zlib";

export const JOURNAL_RECORD_LEN = 64;
const MAGIC = 0x4a444f45; // "EODJ"
/** Rewrite the journal from the start once it grows beyond this while events are pending. */
const COMPACT_AT = 1 << 20;

export interface JournalRecord {
  fd: number;
  seq: bigint;
  /** dev:ino of the file the event is about, as `fs.fstatSync(fd, { bigint: true })` gives them. */
  dev: bigint;
  ino: bigint;
  offset: number;
  count: number;
  pid: number;
  /** An "answered" record: the event `seq` got its answer (dev, ino, offset, count unused). */
  answered?: boolean;
}

export function encodeRecord(r: JournalRecord, out: Buffer = Buffer.alloc(JOURNAL_RECORD_LEN), at = 0): Buffer {
  out.fill(0, at, at + JOURNAL_RECORD_LEN);
  out.writeUInt32LE(MAGIC, at);
  out.writeInt32LE(r.fd, at + 4);
  out.writeBigUInt64LE(r.seq, at + 8);
  out.writeBigUInt64LE(r.dev, at + 16);
  out.writeBigUInt64LE(r.ino, at + 24);
  out.writeBigUInt64LE(BigInt(r.offset), at + 32);
  out.writeBigUInt64LE(BigInt(r.count), at + 40);
  out.writeInt32LE(r.pid, at + 48);
  out.writeUInt32LE(r.answered ? 1 : 0, at + 52);
  out.writeUInt32LE(zlib.crc32(out.subarray(at, at + 56)), at + 56);
  return out;
}

/**
 * The events a journal says may still be pending: per fd number, the record with the highest seq. Reading
 * stops at the end record, a bad magic or checksum, or the end of the file.
 */
export function pendingRecords(buf: Buffer): { records: JournalRecord[]; maxSeq: bigint } {
  const latest = new Map<number, JournalRecord>();
  const answered = new Set<bigint>();
  let maxSeq = 0n;
  for (let at = 0; at + JOURNAL_RECORD_LEN <= buf.length; at += JOURNAL_RECORD_LEN) {
    if (buf.readUInt32LE(at) !== MAGIC || buf.readUInt32LE(at + 56) !== zlib.crc32(buf.subarray(at, at + 56))) break;
    const fd = buf.readInt32LE(at + 4);
    if (fd < 0) break;
    const r: JournalRecord = {
      fd, seq: buf.readBigUInt64LE(at + 8), dev: buf.readBigUInt64LE(at + 16), ino: buf.readBigUInt64LE(at + 24),
      offset: Number(buf.readBigUInt64LE(at + 32)), count: Number(buf.readBigUInt64LE(at + 40)), pid: buf.readInt32LE(at + 48),
    };
    if (r.seq > maxSeq) maxSeq = r.seq;
    if (buf.readUInt32LE(at + 52) === 1) { answered.add(r.seq); continue; }
    const prev = latest.get(fd);
    if (!prev || r.seq > prev.seq) latest.set(fd, r);
  }
  return { records: [...latest.values()].filter((r) => !answered.has(r.seq)).sort((a, b) => (a.seq < b.seq ? -1 : 1)), maxSeq };
}

/** The open journal of one daemon: records taken events, forgets answered ones. */
export class EventJournal {
  readonly #fd: number;
  readonly #taken = new Map<number, JournalRecord>();
  readonly #unwritten: JournalRecord[] = [];
  #seq: bigint;
  #pos = 0;

  /** Opens (creating) the journal and returns it with the records a dead daemon left pending. */
  static open(file: string): { journal: EventJournal; left: JournalRecord[] } {
    const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    const { records, maxSeq } = pendingRecords(fs.readFileSync(fd));
    const journal = new EventJournal(fd, maxSeq + 1n);
    for (const r of records) journal.#taken.set(r.fd, r); // until answered, they stay in every rewrite
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

  /** Records events just read, in one write (call it before answering any of them). */
  take(events: ReadonlyArray<Omit<JournalRecord, "seq">>): void {
    for (const e of events) {
      const r = { ...e, seq: this.#seq++ };
      this.#taken.set(r.fd, r);
      this.#unwritten.push(r);
    }
    this.#flush(false);
  }

  /** The event with this fd number got its answer; written at the next flush(). */
  answered(fd: number): void {
    const r = this.#taken.get(fd);
    if (!r) return;
    this.#taken.delete(fd);
    this.#unwritten.push({ ...r, answered: true });
  }

  /** Writes the "answered" records; must run before the group is read again. */
  flush(): void {
    this.#flush(true);
  }

  #flush(answers: boolean): void {
    const list = this.#unwritten.splice(0);
    if (list.length === 0) return;
    if (answers && this.#taken.size === 0) return this.#rewrite(); // nothing pending: start the file over
    const buf = Buffer.alloc((list.length + 1) * JOURNAL_RECORD_LEN);
    list.forEach((r, k) => encodeRecord(r, buf, k * JOURNAL_RECORD_LEN));
    this.#end(buf, list.length * JOURNAL_RECORD_LEN);
    if (this.#pos + buf.length > COMPACT_AT) return this.#rewrite();
    fs.writeSync(this.#fd, buf, 0, buf.length, this.#pos);
    this.#pos += buf.length - JOURNAL_RECORD_LEN; // the next write overwrites this one's end record
  }

  /** Writes the pending records from the start, then an end record. */
  #rewrite(): void {
    const list = [...this.#taken.values()];
    const buf = Buffer.alloc((list.length + 1) * JOURNAL_RECORD_LEN);
    list.forEach((r, k) => encodeRecord(r, buf, k * JOURNAL_RECORD_LEN));
    this.#end(buf, list.length * JOURNAL_RECORD_LEN);
    fs.writeSync(this.#fd, buf, 0, buf.length, 0);
    this.#pos = buf.length - JOURNAL_RECORD_LEN;
  }

  #end(buf: Buffer, at: number): void {
    encodeRecord({ fd: -1, seq: 0n, dev: 0n, ino: 0n, offset: 0, count: 0, pid: 0 }, buf, at);
  }

  close(): void {
    fs.closeSync(this.#fd);
  }
}
