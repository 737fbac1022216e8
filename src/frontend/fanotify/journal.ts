// The journal of permission events a daemon has taken from a held fanotify group (<cache-dir>/fanotify.journal),
// kept by the frontends' request journal (../request-journal.ts) under each event's fd number.
// With a holder the group outlives the daemon, and so do the events the daemon had read but not answered: their
// readers stay blocked. The kernel matches a response to a pending event only by the event's fd number
// (process_access_response walks the group's access_list comparing event->fd, whoever writes), so a restarted
// daemon holding the same group can answer them, if it knows their numbers and what they asked for: that is
// this journal. One write(2) per read() batch.
//
// Payload of a taken record (40 bytes, little-endian):  0 u64 dev   8 u64 ino   16 u64 offset   24 u64 count
//   32 s32 pid   36 u32 0
// For a given fd number only the taken record with the highest seq can still be pending: no event gets a number
// while an earlier event with that number is pending (an event's fd is closed only after its answer). An
// "answered" record names the seq it answers; it is written before the next read() of the group, the only
// place a closed event fd number can come back as another event's, so a stale "taken" record is never
// mistaken for a newer event that got its number but died before it was journaled (that reader just waits).
import {
  encodeRecord as encodeJournalRecord, pendingRecords as pendingJournalRecords, RECORD_HEADER_LEN, RequestJournal,
  type TakenRecord,
} from "../request-journal.ts";

const PAYLOAD_LEN = 40;
/** The length of a taken event's record. */
export const JOURNAL_RECORD_LEN = RECORD_HEADER_LEN + PAYLOAD_LEN;

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

function encodePayload(r: Omit<JournalRecord, "seq">): Buffer {
  const b = Buffer.alloc(PAYLOAD_LEN);
  b.writeBigUInt64LE(r.dev, 0);
  b.writeBigUInt64LE(r.ino, 8);
  b.writeBigUInt64LE(BigInt(r.offset), 16);
  b.writeBigUInt64LE(BigInt(r.count), 24);
  b.writeInt32LE(r.pid, 32);
  return b;
}

function decodeRecord(r: TakenRecord): JournalRecord {
  const p = r.payload;
  return { fd: Number(r.key), seq: r.seq, dev: p.readBigUInt64LE(0), ino: p.readBigUInt64LE(8), offset: Number(p.readBigUInt64LE(16)), count: Number(p.readBigUInt64LE(24)), pid: p.readInt32LE(32) };
}

/** One record: a taken event, or (answered) the answer to the event `seq`. */
export function encodeRecord(r: JournalRecord): Buffer {
  return r.answered ? encodeJournalRecord("answered", BigInt(r.fd), r.seq) : encodeJournalRecord("taken", BigInt(r.fd), r.seq, encodePayload(r));
}

/** The events a journal says may still be pending (see ../request-journal.ts pendingRecords). */
export function pendingRecords(buf: Buffer): { records: JournalRecord[]; maxSeq: bigint } {
  const { records, maxSeq } = pendingJournalRecords(buf);
  return { records: records.map(decodeRecord), maxSeq };
}

/** The open journal of one daemon: records taken events, forgets answered ones. */
export class EventJournal {
  readonly #journal: RequestJournal;

  /** Opens (creating) the journal and returns it with the records a dead daemon left pending. */
  static open(file: string): { journal: EventJournal; left: JournalRecord[] } {
    const { journal, left } = RequestJournal.open(file);
    return { journal: new EventJournal(journal), left: left.map(decodeRecord) };
  }

  private constructor(journal: RequestJournal) {
    this.#journal = journal;
  }

  get pending(): number {
    return this.#journal.pending;
  }

  /** Records events just read, in one write (call it before answering any of them). */
  take(events: ReadonlyArray<Omit<JournalRecord, "seq">>): void {
    for (const e of events) this.#journal.take(BigInt(e.fd), encodePayload(e));
    this.#journal.flush();
  }

  /** The event with this fd number got its answer; written at the next flush(). */
  answered(fd: number): void {
    this.#journal.answered(BigInt(fd));
  }

  /** Writes the "answered" records; must run before the group is read again. */
  flush(): void {
    this.#journal.flush();
  }

  close(): void {
    this.#journal.close();
  }
}
