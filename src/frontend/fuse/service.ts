// The FUSE frontend (any kernel with FUSE and erofs): our own /dev/fuse server exposes each blob's kernel form
// as a read-only file `<cache-dir>/fuse/<blob id>` of its exact size, and erofs is mounted over those files
// (`device=`, or loop devices where the kernel has no file-backed erofs). A READ of present chunks is answered
// from the blob's sparse cache file; a READ of missing chunks waits for the cache core's ensure() first, and a
// failed fill answers EIO, never zeros. Requests are handled as they come: a READ waiting on the remote never
// holds up the next request. A READ whose reader is killed is answered EINTR on its INTERRUPT (the reader
// exits; the fill goes on in the core) and its own reply is dropped (./interrupts.ts). Every other request is
// answered by ./namespace.ts from what is served; blobs never change, so names and attributes are cached by
// the kernel for a day and pages across opens (FOPEN_KEEP_CACHE).
//
// Held connection (a holder opened /dev/fuse, src/daemon/holder.ts, and passes it on): the connection and the
// requests a killed daemon had read but not answered live on in that open file. A restarted daemon finds the
// filesystem still mounted (no INIT comes again), re-attaches its blobs (node IDs are derived from blob ids,
// ./nodes.ts, so the kernel's nodes stay valid), and then asks the kernel to send the unanswered requests again
// (FUSE_NOTIFY_RESEND, Linux 6.9+: nothing to record, and no window between taking a request and recording
// it). Kernels before 6.9 cannot resend, and there a blocked reader may be a loop device's worker that no signal
// ends: the daemon then journals every request it takes (../request-journal.ts, <cache-dir>/fuse.journal), and
// its successor handles the ones left unanswered again and answers them under their original `unique`, which
// the kernel still holds on the processing list of the held file.
import fs from "node:fs";
import path from "node:path";
import type { BlobCache } from "../../cache/blob-cache.ts";
import { BufferPool } from "../../util/buffer-pool.ts";
import type { CacheCore } from "../../cache/core.ts";
import { EodError, SysError } from "../../errors.ts";
import { pollReadable, type PollHandle } from "../../sys/poll.ts";
import { killPending } from "../../sys/signal-pending.ts";
import {
  abortFuseConnection, fuseMountAt, mountFuse, openFuseDevice, readFuseRequest, setFuseReadahead, unmountFuse, writeFuseReply,
} from "../../sys/fuse.ts";
import { MNT_DETACH, umount } from "../../sys/mount.ts";
import { LatencyWindow } from "../../util/latency.ts";
import type { Log } from "../../util/log.ts";
import { failFrontend, type Frontend, type MountArgs, type PreparedImage } from "../frontend.ts";
import { RequestJournal, type TakenRecord } from "../request-journal.ts";
import { fuseBlobPath, fuseMountDir, NodeTable, nodeIdOf } from "./nodes.ts";
import { OpenReads } from "./interrupts.ts";
import { answerRequest, type ServedFile, type ServedView } from "./namespace.ts";
import {
  decodeRequest, encodeInitOut, encodeNotify, encodeOutHeader, FUSE_BATCH_FORGET, FUSE_FORGET, FUSE_HAS_RESEND_FLAGS2,
  FUSE_IN_HEADER_LEN, FUSE_INTERRUPT, FUSE_MAX_PAGES, FUSE_NOTIFY_RESEND, FuseProtocolError, negotiateInit, OPCODE_NAMES, type Request,
} from "./protocol.ts";

export { fuseBlobPath, fuseMountDir } from "./nodes.ts";

const EINTR = 4;
const EIO = 5;
const EAGAIN = 11;
const PAGE_SIZE = 4096;

/** Largest READ we ask for (the kernel caps it at max_pages_limit pages: 1 MiB by default). */
const MAX_READ = 1 << 20;
/** max_write we announce; the read buffer must hold it plus the headers (and never a WRITE comes). */
const MAX_WRITE = 128 << 10;
/** Headroom of the read buffer for in_header + write_in (and any future extension headers). */
const REQUEST_HEADROOM = 4096;
/** Background requests (readahead, RELEASE) the kernel may have outstanding. */
const MAX_BACKGROUND = 64;
/** How often a READ interrupted by a signal that was not fatal asks whether its reader is dying now. */
const DYING_POLL_MS = 100;
/** Idle READ buffers kept for the next READs (a sequential reader has a few in flight). */
const IDLE_READ_BUFFERS = 8 * MAX_READ;

interface Served {
  blob: BlobCache;
  node: bigint;
  /** Our own read-only fd on the blob's sparse cache file: READs are answered from it. */
  readFd: number;
  /** READs of this blob in flight: its fd is closed after them. */
  reads: Set<Promise<void>>;
}

export interface FuseOptions {
  cacheDir: string;
  /** An open /dev/fuse fd a holder passed on (fd 3): served instead of opening our own. */
  inheritedFd?: number;
  /**
   * Ask the kernel to resend the requests a dead predecessor took (default true). False: journal them, as on
   * a kernel before 6.9 (tests exercise that path here).
   */
  resend?: boolean;
}

export class FuseFrontend implements Frontend {
  readonly name = "fuse";
  readonly #log: Log;
  readonly #dir: string;
  readonly #cacheDir: string;
  readonly #fd: number;
  readonly #held: boolean;
  /** The connection was mounted already when we got it (a restarted daemon on the holder's connection). */
  #live = false;
  /** A request the start-up probe of a live connection read (answered at ready(), or sent again by RESEND). */
  #early: Buffer | null = null;
  #mounting: Promise<void> | null = null;
  /** ready() came: prepare() is for new mounts from now on, not re-attaches. */
  #ready = false;
  readonly #resend: boolean;
  /** Held connection only: the journal of taken requests, and what a dead predecessor left in it. */
  readonly #journal: RequestJournal | null = null;
  #left: TakenRecord[] = [];
  /** Whether taken requests are journaled (the kernel cannot resend them). */
  #journaling = false;
  #poll: PollHandle | null = null;
  readonly #nodes = new NodeTable();
  readonly #served = new Map<string, Served>();
  readonly #pending = new Set<Promise<void>>();
  /** READs taken and not yet answered: an INTERRUPT may end one first (./interrupts.ts). */
  readonly #openReads = new OpenReads(killPending);
  /** Runs while interrupted READs wait for their reader to die (or their fill to end). */
  #dyingPoll: NodeJS.Timeout | null = null;
  readonly #buf = Buffer.allocUnsafe(MAX_WRITE + REQUEST_HEADROOM);
  /** What READs are answered from, recycled: a fresh buffer per READ faults its every page at the pread. */
  readonly #readBuffers = new BufferPool(IDLE_READ_BUFFERS);
  readonly #byOp: Record<string, number> = {};
  readonly #stats = {
    requests: 0, reads: 0, readBytes: 0, fills: 0, failedReads: 0, inFlight: 0, lateReplies: 0, interrupted: 0, interruptsRequeued: 0,
    heldConnection: false, resent: false, journaling: false, recovered: 0, kernelMinor: 0, maxPages: 0, readaheadBytes: 0,
  };
  readonly #fillLatency = new LatencyWindow();
  readonly #hitLatency = new LatencyWindow();
  /** The connection ended (ENODEV): the filesystem was unmounted or aborted. */
  #ended = false;
  #closed = false;
  #closing: Promise<void> | null = null;
  onFatal: ((err: unknown) => void) | null = null;

  constructor(log: Log, opts: FuseOptions) {
    this.#log = log;
    this.#cacheDir = opts.cacheDir;
    this.#dir = fuseMountDir(opts.cacheDir);
    this.#held = opts.inheritedFd !== undefined;
    this.#stats.heldConnection = this.#held;
    this.#resend = opts.resend ?? true;
    this.#fd = opts.inheritedFd ?? openFuseDevice();
    if (!this.#held) return;
    ({ journal: this.#journal, left: this.#left } = RequestJournal.open(path.join(opts.cacheDir, "fuse.journal")));
    this.#probe();
  }

  /** Is the holder's connection mounted already? A fresh fd fails a read with EPERM; a live one gives EAGAIN or a request. */
  #probe(): void {
    try {
      const n = readFuseRequest(this.#fd, this.#buf);
      this.#live = true;
      if (n > 0) this.#early = Buffer.from(this.#buf.subarray(0, n));
    } catch (err) {
      if (err instanceof SysError && err.errno === "EPERM") return; // not mounted yet: prepare() mounts it
      if (err instanceof SysError && err.errno === "ENODEV") {
        throw new EodError("DAEMON", `The FUSE connection the holder passed on has ended (${this.#dir} was unmounted or aborted): the holder must open a new one`, { cause: err });
      }
      throw err;
    }
    if (!fuseMountAt(this.#dir)) throw new EodError("DAEMON", `The FUSE connection the holder passed on is mounted, but not at ${this.#dir}`);
    this.#log("info", "fuse: serving the holder's mounted connection", { dir: this.#dir, early: this.#early !== null });
  }

  /** Mounts our filesystem once, unless the holder's connection is mounted already. */
  #ensureMounted(): Promise<void> {
    if (this.#live) return Promise.resolve();
    this.#mounting ??= (async () => {
      if (fuseMountAt(this.#dir)) { // a dead predecessor's, whose fd nobody holds: nothing can be served through it
        this.#log("warn", "fuse: a stale FUSE mount is in the way: aborting and detaching it", { dir: this.#dir });
        try { abortFuseConnection(this.#dir); } catch (err) { this.#log("warn", "fuse: cannot abort the stale connection", { err }); }
        umount(this.#dir, MNT_DETACH);
      }
      for (const r of this.#left.splice(0)) this.#journal?.answered(r.key); // requests of a connection that is gone
      fs.mkdirSync(this.#dir, { recursive: true, mode: 0o755 });
      await mountFuse(this.#fd, this.#dir, { fsname: "eod", subtype: "eod", allowOther: true });
      this.#startPolling(); // INIT comes next
      this.#log("info", "fuse: mounted", { dir: this.#dir });
    })();
    this.#mounting.catch(() => { this.#mounting = null; }); // a later prepare() tries again
    return this.#mounting;
  }

  /**
   * The daemon has re-attached its blobs: a live connection's requests can be answered now. What a dead
   * predecessor had taken is sent again by the kernel (6.9+), or else handled again from the journal.
   */
  ready(): void {
    this.#ready = true;
    if (!this.#live || this.#poll) return;
    this.#startPolling();
    const resent = this.#resend && this.#askResend();
    const left = this.#left.splice(0);
    if (resent) {
      for (const r of left) this.#journal?.answered(r.key); // they come again, each under a new unique
      this.#early = null; // it was on our processing list: it comes again too
    } else {
      this.#journaling = this.#stats.journaling = this.#journal !== null;
      if (left.length) this.#log("info", "fuse: answering the requests the previous daemon left in its journal", { count: left.length });
      for (const r of left) { this.#stats.recovered++; this.#handle(r.payload, r.payload.length); }
    }
    const early = this.#early;
    this.#early = null;
    if (early) this.#take(early, early.length);
    this.#journal?.flush();
  }

  /** FUSE_NOTIFY_RESEND: whether the kernel took it. */
  #askResend(): boolean {
    try {
      writeFuseReply(this.#fd, [encodeNotify(FUSE_NOTIFY_RESEND)]);
      this.#stats.resent = true;
      this.#log("info", "fuse: asked the kernel to resend the requests the previous daemon had taken");
      return true;
    } catch (err) {
      this.#log("info", "fuse: the kernel cannot resend requests (FUSE_NOTIFY_RESEND is Linux 6.9+): the journal stands in", { err });
      return false;
    }
  }

  #startPolling(): void {
    this.#poll = pollReadable(this.#fd, () => this.#drain(), (err) => failFrontend(this, this.#log, "polling /dev/fuse failed", err, () => this.#poll?.stop()));
  }

  async prepare(image: PreparedImage, core: CacheCore, mountPoint: string): Promise<MountArgs> {
    if (!this.#ready && !this.#live) {
      // A re-attach, but our FUSE filesystem is not the one that erofs mount reads (that connection died with
      // its last holder): its files will never answer again, so it cannot be served.
      throw new EodError("DAEMON", `${mountPoint} reads FUSE files of a connection that is gone (no holder kept it): unmount it and mount again`);
    }
    await this.#ensureMounted();
    for (const b of image.blobs) {
      if (this.#served.has(b.id)) continue;
      const node = this.#nodes.add(b.id);
      try {
        const blob = core.openBlob(b.id, b.table, b.source);
        blob.onIncomplete ??= () => {}; // a complete blob may be culled: every READ asks the presence map again
        const readFd = fs.openSync(blob.storage.path, fs.constants.O_RDONLY);
        this.#served.set(b.id, { blob, node, readFd, reads: new Set() });
      } catch (err) {
        this.#nodes.delete(b.id);
        throw err;
      }
    }
    const devices = image.blobs.map((b) => `device=${fuseBlobPath(this.#cacheDir, b.id)}`);
    return { source: image.bootstrapPath, data: devices.join(",") || null };
  }

  release(blobIds: readonly string[], core: CacheCore): void {
    for (const id of blobIds) {
      const s = this.#served.get(id);
      if (!s) continue;
      this.#served.delete(id);
      this.#nodes.delete(id);
      core.closeBlob(id).catch((err: unknown) => this.#log("warn", "closing a blob failed", { blob: id, err }));
      void Promise.allSettled([...s.reads]).then(() => fs.close(s.readFd, () => {})); // after its READs
    }
  }

  /** What the namespace (./namespace.ts) answers from. */
  readonly #view: ServedView = {
    byName: (name) => this.#fileOf(this.#served.get(name)),
    byNode: (node) => this.#fileOf(this.#servedAt(node)),
    list: () => this.#nodes.ids().map((id) => ({ name: id, node: nodeIdOf(id) })),
    totalSize: () => [...this.#served.values()].reduce((sum, s) => sum + s.blob.table.kernelSize, 0),
  };

  #fileOf(s: Served | undefined): ServedFile | undefined {
    return s && { node: s.node, size: s.blob.table.kernelSize };
  }

  #servedAt(node: bigint): Served | undefined {
    const id = this.#nodes.blobOf(node);
    return id === undefined ? undefined : this.#served.get(id);
  }

  /** Reads every queued request (the fd is non-blocking) and starts handling each. */
  #drain(): void {
    while (!this.#closed) {
      let n: number;
      try {
        n = readFuseRequest(this.#fd, this.#buf);
      } catch (err) {
        this.#poll?.stop();
        if (err instanceof SysError && err.errno === "ENODEV") {
          this.#ended = true;
          if (this.#closing) return; // we unmounted it
          failFrontend(this, this.#log, `the FUSE filesystem ${this.#dir} was unmounted or aborted`, err, () => {});
          return;
        }
        failFrontend(this, this.#log, "reading /dev/fuse failed", err, () => {});
        return;
      }
      if (n === 0) break;
      this.#take(this.#buf, n);
    }
    this.#journal?.flush(); // before any READ of this batch can be answered: fills take a tick at least
  }

  /** A request just read: journaled first where the kernel cannot resend it, then handled. */
  #take(buf: Buffer, n: number): void {
    if (this.#journaling && n >= FUSE_IN_HEADER_LEN) {
      const opcode = buf.readUInt32LE(4);
      if (opcode !== FUSE_FORGET && opcode !== FUSE_BATCH_FORGET && opcode !== FUSE_INTERRUPT) this.#journal!.take(buf.readBigUInt64LE(8), buf.subarray(0, n));
    }
    this.#handle(buf, n);
  }

  #handle(buf: Buffer, n: number): void {
    let req: Request;
    try {
      req = decodeRequest(buf, n);
    } catch (err) {
      this.#log("error", "malformed FUSE request", { err });
      if (err instanceof FuseProtocolError && err.unique !== null) this.#reply(err.unique, EIO);
      return;
    }
    this.#stats.requests++;
    const op = OPCODE_NAMES.get(req.header.opcode) ?? `op${req.header.opcode}`;
    this.#byOp[op] = (this.#byOp[op] ?? 0) + 1;
    const { unique, nodeid } = req.header;
    switch (req.op) { // every other request is the namespace's
      case "init": {
        const out = negotiateInit(req.init, { maxRead: MAX_READ, maxWrite: MAX_WRITE, maxBackground: MAX_BACKGROUND });
        this.#stats.kernelMinor = req.init.minor;
        const canResend = ((req.init.flags >> 32n) & BigInt(FUSE_HAS_RESEND_FLAGS2)) !== 0n;
        this.#journaling = this.#stats.journaling = this.#journal !== null && !(this.#resend && canResend);
        this.#stats.maxPages = out.maxPages;
        this.#log("info", "fuse: INIT", { kernel: `${req.init.major}.${req.init.minor}`, maxReadahead: req.init.maxReadahead, flags: `0x${req.init.flags.toString(16)}`, agreed: `0x${out.flags.toString(16)}` });
        this.#reply(unique, 0, [encodeInitOut(out)]);
        if ((out.flags & BigInt(FUSE_MAX_PAGES)) !== 0n) this.#widenReadahead(out.maxPages * PAGE_SIZE); // else READs are 32 pages at most
        return;
      }
      case "read":
        return this.#read(unique, nodeid, req.header.pid, req.read.offset, req.read.size);
      case "interrupt":
        return this.#interrupt(unique, req.interrupted);
      default: {
        const answer = answerRequest(req, this.#view);
        if (answer) this.#reply(unique, answer.errno, answer.payload);
      }
    }
  }

  /**
   * Readahead as large as a READ may be (the kernel leaves it at 128 KiB): erofs then reads our files in
   * max_pages-sized READs, a fraction of the round trips. Set right after the INIT reply, before any OPEN is
   * answered: a file takes its readahead window when it is opened.
   */
  #widenReadahead(bytes: number): void {
    try {
      setFuseReadahead(this.#dir, bytes);
      this.#stats.readaheadBytes = bytes;
    } catch (err) {
      this.#log("warn", "fuse: cannot widen the readahead (READs stay at 128 KiB)", { dir: this.#dir, err });
    }
  }

  /** A READ: from the cache file at once if its chunks are present, else after the core has filled them. */
  #read(unique: bigint, node: bigint, pid: number, offset: number, size: number): void {
    const s = this.#servedAt(node);
    if (!s) { this.#log("warn", "fuse READ of a node we do not serve", { node }); this.#reply(unique, EIO); return; }
    const length = Math.max(0, Math.min(size, s.blob.table.kernelSize - offset));
    if (length === 0) { this.#reply(unique, 0); return; }
    this.#stats.reads++;
    const started = performance.now();
    const hit = s.blob.isPresent(offset, length);
    if (hit) s.blob.onAccess?.(offset, length); // for eod trace (ensure() reports misses itself)
    else this.#stats.fills++;
    this.#stats.inFlight++;
    this.#openReads.open(unique, pid);
    const p = (async () => {
      if (!hit) await s.blob.ensure(offset, length); // rejects on a corrupt or stalled remote (after its timeout)
      const buf = this.#readBuffers.take(length);
      try {
        await preadFull(s.readFd, offset, length, buf);
        this.#stats.readBytes += length;
        this.#replyRead(unique, 0, [buf.subarray(0, length)]); // written at once: the buffer is free after it
      } finally {
        this.#readBuffers.give(buf);
      }
      (hit ? this.#hitLatency : this.#fillLatency).add(performance.now() - started);
    })().catch((err: unknown) => {
      this.#stats.failedReads++;
      this.#log("warn", "fuse READ failed; answering EIO", { blob: s.blob.id, offset, length, err });
      this.#replyRead(unique, EIO);
    }).finally(() => {
      this.#stats.inFlight--;
      this.#pending.delete(p);
      s.reads.delete(p);
    });
    this.#pending.add(p);
    s.reads.add(p);
  }

  /**
   * An INTERRUPT: the READ it names, if still open and its reader dying, is answered EINTR now (its fill goes
   * on in the core, for the next reader of the range), or watched until its reader dies; an INTERRUPT of a
   * request we do not hold gets EAGAIN once (./interrupts.ts).
   */
  #interrupt(unique: bigint, interrupted: bigint): void {
    const answer = this.#openReads.interrupt(unique, interrupted);
    if (answer.reply === "eintr") this.#endInterrupted(answer.unique);
    else if (answer.reply === "eagain" && this.#reply(unique, EAGAIN)) {
      this.#stats.interruptsRequeued++;
      this.#openReads.requeued(unique);
    }
    if (this.#openReads.watched > 0 && !this.#dyingPoll) {
      this.#dyingPoll = setInterval(() => {
        for (const u of this.#openReads.takeDying()) this.#endInterrupted(u);
        this.#journal?.flush();
        if (this.#openReads.watched === 0) this.#stopDyingPoll();
      }, DYING_POLL_MS);
      this.#dyingPoll.unref();
    }
  }

  #endInterrupted(unique: bigint): void {
    this.#stats.interrupted++;
    this.#reply(unique, EINTR);
  }

  #stopDyingPoll(): void {
    if (this.#dyingPoll) clearInterval(this.#dyingPoll);
    this.#dyingPoll = null;
  }

  /** A READ's own reply, unless an INTERRUPT answered it already. */
  #replyRead(unique: bigint, errno: number, payload: readonly Uint8Array[] = []): void {
    if (this.#openReads.close(unique)) this.#reply(unique, errno, payload);
  }

  /**
   * Writes the one reply a request gets; one the kernel no longer waits for (answered, aborted) is dropped.
   * Whether the kernel took it.
   */
  #reply(unique: bigint, errno: number, payload: readonly Uint8Array[] = []): boolean {
    this.#journal?.answered(unique);
    if (this.#closed || this.#ended) return false;
    const len = payload.reduce((n, b) => n + b.length, 0);
    try {
      writeFuseReply(this.#fd, [encodeOutHeader(unique, errno, len), ...payload]);
      return true;
    } catch (err) {
      if (err instanceof SysError && (err.errno === "ENOENT" || err.errno === "ENODEV")) { this.#stats.lateReplies++; return false; }
      this.#log("error", "answering a FUSE request failed", { unique, errno, err });
      return false;
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    // Every READ in flight gets its answer; meanwhile we keep reading (RELEASEs and more READs still come).
    while (this.#pending.size) await Promise.allSettled([...this.#pending]);
    this.#stopDyingPoll();
    this.#poll?.stop();
    this.#closed = true;
    for (const s of this.#served.values()) fs.closeSync(s.readFd); // the blobs themselves: the core closes them
    // Idle (every blob released: nothing mounted over our files): the filesystem goes with us. Otherwise it
    // stays for the next daemon on the holder's connection (without a holder, closing our fd ends it).
    if (this.#served.size === 0 && !this.#ended) {
      try {
        unmountFuse(this.#dir);
      } catch (err) {
        this.#log("warn", "fuse: cannot unmount", { dir: this.#dir, err });
      }
    }
    this.#served.clear();
    this.#journal?.flush();
    this.#journal?.close();
    fs.closeSync(this.#fd);
  }

  stats(): Record<string, unknown> {
    return { ...this.#stats, exposedBlobs: this.#served.size, dir: this.#dir, byOp: { ...this.#byOp }, fillLatencyMs: this.#fillLatency.summary(), hitLatencyMs: this.#hitLatency.summary() };
  }
}

/** `length` bytes at `offset` of `fd` into `data`, read on the thread pool (the sparse file is exactly the blob's size). */
async function preadFull(fd: number, offset: number, length: number, data: Uint8Array): Promise<void> {
  for (let got = 0; got < length;) {
    const n = await new Promise<number>((resolve, reject) => fs.read(fd, data, got, length - got, offset + got, (err, k) => (err ? reject(err) : resolve(k))));
    if (n === 0) throw new EodError("DAEMON", `The cache file ended at ${offset + got}, short of ${offset + length}`);
    got += n;
  }
}
