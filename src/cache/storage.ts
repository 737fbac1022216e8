// Where a blob's kernel form lives on this host. The fanotify and FUSE frontends use a sparse file the daemon
// owns (a hole is a miss); the fscache frontend will add a storage whose file the kernel owns and that is
// written through the object's anonymous fd. The cache core sees only this interface.
import fs from "node:fs";
import { dataRanges, punchHole } from "../sys/seek.ts";

export interface BlobStorage {
  /** A file path for messages and device= options (fscache storages name the object instead). */
  readonly path: string;
  /**
   * True when the file's data ranges are the truth about presence (the kernel owns the file and only we
   * write verified chunks into it): presence is rebuilt from them and no map is persisted.
   */
  readonly dataIsPresence?: boolean;
  /** Writes bytes of the kernel form at `pos`. */
  write(pos: number, bytes: Uint8Array): Promise<void>;
  /** Makes every write that completed before the call durable. */
  sync(): Promise<void>;
  /** The byte ranges that hold data (used to validate a persisted presence map). */
  dataRanges(): Array<{ offset: number; length: number }>;
  /** Whether all of [offset, offset+length) holds data (no hole), where the storage can tell cheaply. */
  holdsData?(offset: number, length: number): boolean;
  /** Gives the space of [offset, offset+length) back (a hole: reads return zeros); storages that cannot, lack it. */
  punch?(offset: number, length: number): void;
  /** Whether punch() may run now without blocking on a permission event of our own (default: yes). */
  canPunch?(): boolean;
  /** Lets a frontend supply the descriptor writes go through (one that raises no events of its own). */
  useWriteFd?(fd: number): void;
  /**
   * The storage's own descriptor may raise permission events that this thread must answer (a fanotify mark
   * placed before it was opened): write through the thread pool, never blocking the event loop, until
   * useWriteFd() supplies a descriptor that raises none.
   */
  ownWritesRaiseEvents?(): void;
  close(): Promise<void>;
}

const SYNC_WRITE_MAX = 256 * 1024;

/** A sparse file of exactly `size` bytes, created if missing (existing content is kept). */
export class SparseFileStorage implements BlobStorage {
  readonly path: string;
  readonly size: number;
  readonly #fd: number;
  #writeFd: number;
  #syncWrites = true;

  constructor(path: string, size: number) {
    this.path = path;
    this.size = size;
    this.#fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
    this.#writeFd = this.#fd;
    if (fs.fstatSync(this.#fd).size !== size) fs.ftruncateSync(this.#fd, size);
  }

  /**
   * Writes go through `fd` from now on: a frontend may supply a descriptor whose writes do not raise its own
   * events (a fanotify event's fd is opened without notifications).
   */
  useWriteFd(fd: number): void {
    this.#writeFd = fd;
    this.#syncWrites = true;
  }

  ownWritesRaiseEvents(): void {
    if (this.#writeFd === this.#fd) this.#syncWrites = false;
  }

  write(pos: number, bytes: Uint8Array): Promise<void> {
    if (bytes.length <= SYNC_WRITE_MAX && this.#syncWrites) { // into the page cache: ~10 µs, where a thread-pool hop costs ~80 µs
      try {
        for (let done = 0; done < bytes.length;) done += fs.writeSync(this.#writeFd, bytes, done, bytes.length - done, pos + done);
        return Promise.resolve();
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return new Promise((resolve, reject) => {
      const step = (done: number) => {
        if (done === bytes.length) return resolve();
        fs.write(this.#writeFd, bytes, done, bytes.length - done, pos + done, (err, n) => (err ? reject(err) : step(done + n)));
      };
      step(0);
    });
  }

  /** Only through a descriptor that raises no events: fallocate is a write, and it blocks this thread. */
  canPunch(): boolean {
    return this.#syncWrites;
  }

  /** Through the write descriptor: an event fd raises no fanotify event of its own (fallocate is a write). */
  punch(offset: number, length: number): void {
    punchHole(this.#writeFd, offset, length);
  }

  sync(): Promise<void> {
    return new Promise((resolve, reject) => fs.fdatasync(this.#fd, (err) => (err ? reject(err) : resolve())));
  }

  dataRanges(): Array<{ offset: number; length: number }> {
    return dataRanges(this.#fd, this.size);
  }

  async close(): Promise<void> {
    fs.closeSync(this.#fd);
  }
}
