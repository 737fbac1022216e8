// The fanotify frontend: one pre-content group; every blob cache file of a mounted image is marked with
// FAN_PRE_ACCESS; each event is parsed, decided (decide.ts), filled through the cache core, and answered
// exactly once (allow, or deny with EIO when the bytes cannot be had); its fd is closed.
//
// Writes must not raise events of their own, so a blob's storage writes through the fd of the first event
// about it (event fds are opened FMODE_NONOTIFY, O_RDWR by our fanotify_init). Once a blob is complete its
// mark is removed, so reads stop waking us (a marked file also runs without readahead).
// Closing the group answers every pending event with ALLOW (fail-open): see docs/lazy-mount.md.
import fs from "node:fs";
import type { BlobCache } from "../../cache/blob-cache.ts";
import type { Log } from "../../daemon/log.ts";
import {
  AT_FDCWD, FAN_CLASS_PRE_CONTENT, FAN_CLOEXEC, FAN_MARK_ADD, FAN_MARK_REMOVE, FAN_NOFD, FAN_NONBLOCK,
  FAN_PRE_ACCESS, FAN_UNLIMITED_QUEUE, fanotifyInit, fanotifyMark, pollReadable, type PollHandle,
} from "../../sys/fanotify.ts";
import { SysError } from "../../errors.ts";
import type { CacheCore } from "../../cache/core.ts";
import type { Frontend, MountArgs, PreparedImage } from "../frontend.ts";
import { LatencyWindow } from "../../daemon/latency.ts";
import { decide } from "./decide.ts";
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

export class FanotifyFrontend implements Frontend {
  readonly name = "fanotify";
  readonly #log: Log;
  readonly #fd: number;
  readonly #poll: PollHandle;
  readonly #byKey = new Map<string, Served>();
  readonly #byId = new Map<string, Served>();
  readonly #buf = Buffer.allocUnsafe(64 * 1024);
  readonly #pending = new Set<Promise<void>>();
  readonly #stats = { events: 0, allowed: 0, denied: 0, fills: 0, inFlight: 0, markedBlobs: 0 };
  #closed = false;
  #closing: Promise<void> | null = null;
  /** Event read → answer written, for events that needed a fill (ms). */
  readonly #fillLatency = new LatencyWindow();
  /** The same for events answered at once (the range was present). */
  readonly #hitLatency = new LatencyWindow();

  constructor(log: Log) {
    this.#log = log;
    this.#fd = fanotifyInit(FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK | FAN_UNLIMITED_QUEUE, fs.constants.O_RDWR); // O_RDWR: we write through event fds; 64-bit kernels add O_LARGEFILE
    this.#poll = pollReadable(this.#fd, () => this.#drain(), (err) => this.#log("error", "fanotify poll failed", { err }));
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
    if (!blob.complete) {
      fanotifyMark(this.#fd, FAN_MARK_ADD, FAN_PRE_ACCESS, AT_FDCWD, blob.storage.path);
      s.marked = true;
      this.#stats.markedBlobs++;
    }
  }

  /** Stops serving a blob (its write fd is the caller's to close once the blob's writes are over). */
  #detach(blobId: string): Served | undefined {
    const s = this.#byId.get(blobId);
    if (!s) return undefined;
    this.#unmark(s);
    this.#byId.delete(blobId);
    this.#byKey.delete(s.key);
    return s;
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
      for (const ev of events) this.#handle(ev);
    }
  }

  #handle(ev: PreAccessEvent): void {
    this.#stats.events++;
    if (ev.fd === FAN_NOFD) { this.#log("warn", "fanotify queue overflow"); return; }
    let s: Served | undefined;
    try {
      const st = fs.fstatSync(ev.fd, { bigint: true });
      s = this.#byKey.get(`${st.dev}:${st.ino}`);
    } catch (err) {
      this.#log("warn", "fstat of an event fd failed", { err });
    }
    const started = performance.now();
    const d = decide(ev, s?.blob, process.pid);
    if (d.kind !== "fill") {
      if (d.kind === "allow" && d.reason === "present") s!.blob.onAccess?.(ev.range!.offset, ev.range!.count); // a hit, for eod trace
      this.#hitLatency.add(performance.now() - started);
      if (d.kind === "deny") this.#log("warn", "event on a file we do not serve", { pid: ev.pid });
      this.#answer(ev.fd, d.kind === "allow");
      return;
    }
    const served = s!;
    let keep = false;
    if (served.writeFd === null) { // this event's fd becomes the blob's write descriptor
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
    ).finally(() => { this.#stats.inFlight--; this.#pending.delete(p); });
    this.#pending.add(p);
  }

  /** Writes the one answer an event gets and closes its fd (unless it serves as a write descriptor). */
  #answer(fd: number, allow: boolean, keepFd = false): void {
    if (allow) this.#stats.allowed++;
    else this.#stats.denied++;
    try {
      if (!this.#closed) fs.writeSync(this.#fd, encodeResponse(fd, allow ? "allow" : { denyErrno: EIO }));
    } catch (err) {
      this.#log("error", "answering a fanotify event failed", { err });
    }
    if (!keepFd) {
      try { fs.closeSync(fd); } catch { /* already closed */ }
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#poll.stop();
    await Promise.allSettled([...this.#pending]); // every event in flight still gets its answer
    this.#closed = true;
    const served = [...this.#byId.keys()].map((id) => this.#detach(id)!);
    await Promise.allSettled(served.map((s) => s.blob.close())); // prefetch and read-ahead write too
    for (const s of served) if (s.writeFd !== null) fs.closeSync(s.writeFd);
    fs.closeSync(this.#fd); // any event still queued is allowed by the kernel (fail-open)
  }

  stats(): Record<string, unknown> {
    return { ...this.#stats, fillLatencyMs: this.#fillLatency.summary(), hitLatencyMs: this.#hitLatency.summary() };
  }
}
