// The fanotify frontend: one pre-content group; every blob cache file of a mounted image is marked with
// FAN_PRE_ACCESS; each event is parsed, decided (decide.ts), filled through the cache core, and answered
// exactly once (allow, or deny with EIO when the bytes cannot be had); its fd is closed.
//
// Writes must not raise events of their own, so a blob's storage writes through the fd of the first event
// about it (event fds are opened FMODE_NONOTIFY, O_RDWR by our fanotify_init). Once a blob is complete its
// mark is removed, so reads stop waking us (a marked file also runs without readahead).
// Closing the group answers every pending event with ALLOW (fail-open): see docs/lazy-mount.md.
//
// Held group (a holder process made it and passes it as an inherited fd, src/daemon/holder.ts): the group and
// its marks outlive this daemon, so a killed daemon leaves readers blocked, not fail-open. Each batch of events
// is journaled before any is answered (journal.ts); a restarted daemon first holds the fd numbers of the events
// its predecessor left unanswered (so none of its own events can get one: responses are matched by number
// only), re-attaches its blobs, fills those events' ranges and answers them.
import fs from "node:fs";
import type { BlobCache } from "../../cache/blob-cache.ts";
import type { Log } from "../../util/log.ts";
import {
  AT_FDCWD, FAN_CLASS_PRE_CONTENT, FAN_CLOEXEC, FAN_MARK_ADD, FAN_MARK_REMOVE, FAN_NOFD, FAN_NONBLOCK,
  FAN_PRE_ACCESS, FAN_UNLIMITED_QUEUE, fanotifyInit, fanotifyMark,
} from "../../sys/fanotify.ts";
import { pollReadable, type PollHandle } from "../../sys/poll.ts";
import { SysError } from "../../errors.ts";
import type { CacheCore } from "../../cache/core.ts";
import { failFrontend, type Frontend, type MountArgs, type PreparedImage } from "../frontend.ts";
import { LatencyWindow } from "../../util/latency.ts";
import { decide } from "./decide.ts";
import { EventJournal, type JournalRecord } from "./journal.ts";
import { holdFdNumbers } from "../../sys/fds.ts";
import path from "node:path";
import { encodeResponse, FanotifyParseError, parseEvents, type PreAccessEvent } from "./protocol.ts";

interface Served {
  blob: BlobCache;
  /** dev:ino of the cache file, the key events are matched by. */
  key: string;
  marked: boolean;
  /** An event fd kept open as the storage's (event-free) write descriptor. */
  writeFd: number | null;
}

const EIO = 5;

export interface FanotifyOptions {
  /** A pre-content group made by the holder (EOD_FANOTIFY_FD): it outlives this daemon. */
  inheritedFd?: number;
  /** Where the event journal lives (needed with inheritedFd). */
  cacheDir?: string;
}

export class FanotifyFrontend implements Frontend {
  readonly name = "fanotify";
  readonly fileBackedOnly = true;
  readonly #log: Log;
  readonly #fd: number;
  #poll: PollHandle | null = null;
  /** Held group only: the journal of taken events, and what a dead daemon left unanswered. */
  readonly #journal: EventJournal | null = null;
  #left: JournalRecord[] = [];
  /** fd numbers of left events this process holds open (on /dev/null) until they are answered. */
  #heldNumbers = new Set<number>();
  readonly #byKey = new Map<string, Served>();
  readonly #byId = new Map<string, Served>();
  readonly #buf = Buffer.allocUnsafe(64 * 1024);
  readonly #pending = new Set<Promise<void>>();
  readonly #stats = { events: 0, allowed: 0, denied: 0, fills: 0, inFlight: 0, markedBlobs: 0, heldGroup: false, recovered: 0 };
  #closed = false;
  #closing: Promise<void> | null = null;
  onFatal: ((err: unknown) => void) | null = null;
  /** Event read → answer written, for events that needed a fill (ms). */
  readonly #fillLatency = new LatencyWindow();
  /** The same for events answered at once (the range was present). */
  readonly #hitLatency = new LatencyWindow();

  constructor(log: Log, opts: FanotifyOptions = {}) {
    this.#log = log;
    if (opts.inheritedFd === undefined) {
      this.#fd = openPreContentGroup();
      this.#startPolling();
      return;
    }
    // Before anything else opens an fd: the numbers of the events left pending must stay ours.
    this.#fd = opts.inheritedFd;
    this.#stats.heldGroup = true;
    const { journal, left } = EventJournal.open(path.join(opts.cacheDir ?? ".", "fanotify.journal"));
    this.#journal = journal;
    this.#left = left;
    this.#heldNumbers = holdFdNumbers(left.map((r) => r.fd));
    if (left.length) this.#log("info", "events left unanswered by the previous daemon", { count: left.length, held: this.#heldNumbers.size });
  }

  /** Held group: events are read only once the mounts are re-attached (else they would name unknown files). */
  ready(): void {
    if (this.#poll) return;
    this.#startPolling(); // our own fills below write through fds that raise events: we must be reading
    for (const r of this.#left.splice(0)) this.#recover(r);
  }

  #startPolling(): void {
    this.#poll = pollReadable(this.#fd, () => this.#drain(), (err) => failFrontend(this, this.#log, "polling the fanotify group failed", err, () => this.#poll?.stop()));
  }

  /** Answers an event the previous daemon took, as it would have: after its range is in the file. */
  #recover(r: JournalRecord): void {
    this.#stats.recovered++;
    const s = this.#byKey.get(`${r.dev}:${r.ino}`);
    const ev: PreAccessEvent = { fd: r.fd, pid: r.pid, mask: FAN_PRE_ACCESS, range: { offset: r.offset, count: r.count } };
    this.#handleKnown(ev, s, true);
  }

  /** Opens each blob's sparse cache file in the core and marks it; mounts with device= those files. */
  async prepare(image: PreparedImage, core: CacheCore): Promise<MountArgs> {
    const paths: string[] = [];
    for (const b of image.blobs) {
      const blob = core.openBlob(b.id, b.table, b.source);
      this.#attach(blob);
      paths.push(blob.storage.path);
    }
    return { source: image.bootstrapPath, data: paths.map((p) => `device=${p}`).join(",") || null };
  }

  release(blobIds: readonly string[], core: CacheCore): void {
    for (const id of blobIds) {
      const s = this.#detach(id);
      core.closeBlob(id) // writes in flight go through the write fd: close it only after them
        .catch((err) => this.#log("warn", "closing a blob failed", { blob: id, err }))
        .finally(() => { if (s?.writeFd != null) fs.closeSync(s.writeFd); });
    }
  }

  #attach(blob: BlobCache): void {
    if (this.#byId.has(blob.id)) return;
    const st = fs.statSync(blob.storage.path, { bigint: true });
    const s: Served = { blob, key: `${st.dev}:${st.ino}`, marked: false, writeFd: null };
    this.#byId.set(blob.id, s);
    this.#byKey.set(s.key, s);
    // Opened after marks exist on its filesystem (another blob's, or a held group's), the storage's own fd
    // raises events: until an event fd takes over, its writes must not block the thread that answers them.
    blob.storage.ownWritesRaiseEvents?.();
    blob.onIncomplete = () => this.#remark(s); // culling (cache budget) is about to punch a hole in it
    blob.onComplete = () => this.#unmark(s); // reads stop waking us, also when a read-ahead brought the last chunk
    if (!blob.complete) {
      fanotifyMark(this.#fd, FAN_MARK_ADD, FAN_PRE_ACCESS, AT_FDCWD, blob.storage.path);
      s.marked = true;
      this.#stats.markedBlobs++;
    } else if (this.#journal) {
      s.marked = true; // a held group may still carry the mark of a blob completed meanwhile
      this.#stats.markedBlobs++;
      this.#unmark(s);
    }
  }

  /** Stops serving a blob (its write fd is the caller's to close once the blob's writes are over). */
  #detach(blobId: string, unmark = true): Served | undefined {
    const s = this.#byId.get(blobId);
    if (!s) return undefined;
    if (unmark) this.#unmark(s);
    this.#byId.delete(blobId);
    this.#byKey.delete(s.key);
    return s;
  }

  /** Watches a complete blob's file again (its mark was removed), before culling makes holes in it. */
  #remark(s: Served): void {
    if (s.marked || this.#byId.get(s.blob.id) !== s) return;
    fanotifyMark(this.#fd, FAN_MARK_ADD, FAN_PRE_ACCESS, AT_FDCWD, s.blob.storage.path);
    s.marked = true;
    this.#stats.markedBlobs++;
  }

  #unmark(s: Served): void {
    if (!s.marked) return;
    s.marked = false;
    this.#stats.markedBlobs--;
    try {
      fanotifyMark(this.#fd, FAN_MARK_REMOVE, FAN_PRE_ACCESS, AT_FDCWD, s.blob.storage.path);
    } catch (err) {
      if (!(err instanceof SysError && err.errno === "ENOENT")) this.#log("warn", "removing a fanotify mark failed", { blob: s.blob.id, err });
    }
  }

  /** Reads every queued event (the fd is non-blocking) and starts handling each. */
  #drain(): void {
    for (;;) {
      let n: number;
      try {
        n = fs.readSync(this.#fd, this.#buf, 0, this.#buf.length, null);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "EAGAIN") return;
        this.#log("error", "reading fanotify events failed", { err });
        return;
      }
      if (n <= 0) return;
      let events: PreAccessEvent[];
      try {
        events = parseEvents(this.#buf, n);
      } catch (err) {
        if (!(err instanceof FanotifyParseError)) throw err;
        this.#log("error", "malformed fanotify events", { err });
        events = err.parsed;
        if (err.badFd !== null && err.badFd !== FAN_NOFD) this.#answer(err.badFd, false);
      }
      const known: Array<[PreAccessEvent, Served | undefined]> = [];
      const taken: Array<Omit<JournalRecord, "seq">> = [];
      for (const ev of events) {
        this.#stats.events++;
        if (ev.fd === FAN_NOFD) { this.#log("warn", "fanotify queue overflow"); continue; }
        let s: Served | undefined;
        try {
          const st = fs.fstatSync(ev.fd, { bigint: true });
          s = this.#byKey.get(`${st.dev}:${st.ino}`);
          taken.push({ fd: ev.fd, dev: st.dev, ino: st.ino, offset: ev.range?.offset ?? 0, count: ev.range?.count ?? 0, pid: ev.pid });
        } catch (err) {
          this.#log("warn", "fstat of an event fd failed", { err });
        }
        known.push([ev, s]);
      }
      this.#journal?.take(taken); // before any answer: a daemon killed from here on leaves them to the next
      for (const [ev, s] of known) this.#handleKnown(ev, s, false);
      this.#journal?.flush(); // before the next read() can hand out a number we just closed
    }
  }

  /** @param recovered an event the previous daemon took: its fd number is held open here (or was never ours) */
  #handleKnown(ev: PreAccessEvent, s: Served | undefined, recovered: boolean): void {
    const started = performance.now();
    const d = decide(ev, s?.blob, process.pid);
    if (d.kind !== "fill") {
      if (d.kind === "allow" && d.reason === "present") s!.blob.onAccess?.(ev.range!.offset, ev.range!.count); // a hit, for eod trace
      this.#hitLatency.add(performance.now() - started);
      if (d.kind === "deny") this.#log("warn", "event on a file we do not serve", { pid: ev.pid, recovered });
      this.#answer(ev.fd, d.kind === "allow", recovered);
      if (recovered) this.#release(ev.fd);
      return;
    }
    const served = s!;
    let keep = recovered;
    if (served.writeFd === null && !recovered) { // this event's fd becomes the blob's write descriptor
      served.writeFd = ev.fd;
      served.blob.storage.useWriteFd?.(ev.fd);
      keep = true;
    }
    this.#stats.fills++;
    this.#stats.inFlight++;
    const p = served.blob.ensure(d.offset, d.count).then(
      () => {
        this.#answer(ev.fd, true, keep);
        this.#fillLatency.add(performance.now() - started);
        if (served.blob.complete) this.#unmark(served);
      },
      (err: unknown) => {
        this.#log("warn", "fill failed, denying with EIO", { blob: served.blob.id, offset: d.offset, count: d.count, pid: ev.pid, err });
        this.#answer(ev.fd, false, keep);
      },
    ).finally(() => {
      if (recovered) this.#release(ev.fd);
      else this.#journal?.flush();
 this.#stats.inFlight--; this.#pending.delete(p); });
    this.#pending.add(p);
  }

  /** After a left event's answer: its "answered" record is written, then its number is given back. */
  #release(fd: number): void {
    this.#journal?.flush();
    if (this.#heldNumbers.delete(fd)) fs.closeSync(fd);
  }

  /** Writes the one answer an event gets and closes its fd (unless it serves as a write descriptor). */
  #answer(fd: number, allow: boolean, keepFd = false): void {
    if (allow) this.#stats.allowed++;
    else this.#stats.denied++;
    try {
      if (!this.#closed) fs.writeSync(this.#fd, encodeResponse(fd, allow ? "allow" : { denyErrno: EIO }));
    } catch (err) {
      // ENOENT for a left event: the previous daemon had answered it after all (its record was not yet written).
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") this.#log("error", "answering a fanotify event failed", { err });
    }
    this.#journal?.answered(fd);
    if (!keepFd) {
      try { fs.closeSync(fd); } catch { /* already closed */ }
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    // Every event in flight still gets its answer. We keep reading meanwhile: a fill may write through a
    // descriptor that raises events of our own (see #attach), and a held group's next events would wait anyway.
    while (this.#pending.size) await Promise.allSettled([...this.#pending]);
    this.#poll?.stop();
    this.#closed = true;
    // Marks stay: they belong to the group. A held group keeps them for the next daemon, whose readers would
    // otherwise read the holes of unmarked files (zeros) until it marks them again; our own group takes them
    // along when it closes.
    const served = [...this.#byId.keys()].map((id) => this.#detach(id, false)!);
    await Promise.allSettled(served.map((s) => s.blob.close())); // prefetch and read-ahead write too
    for (const s of served) if (s.writeFd !== null) fs.closeSync(s.writeFd);
    this.#journal?.flush();
    this.#journal?.close();
    // Our own group: any event still queued is allowed by the kernel (fail-open). A held group stays open in
    // the holder, and queued events wait for the next daemon.
    fs.closeSync(this.#fd);
  }

  stats(): Record<string, unknown> {
    return { ...this.#stats, fillLatencyMs: this.#fillLatency.summary(), hitLatencyMs: this.#hitLatency.summary() };
  }
}

function openPreContentGroup(): number {
  return fanotifyInit(FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK | FAN_UNLIMITED_QUEUE, fs.constants.O_RDWR); // O_RDWR: we write through event fds; 64-bit kernels add O_LARGEFILE
}
