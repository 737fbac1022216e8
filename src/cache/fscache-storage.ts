// A blob stored in a cache file that the kernel's cachefiles owns (fscache frontend). The daemon writes only
// through the object's anonymous fd, with direct I/O from page-aligned memory at page-aligned offsets, on the
// thread pool (direct-write.ts); the file's data ranges are the presence (a hole is what makes the kernel send
// READ), so no map is kept.
import fs from "node:fs";
import { writeDirect } from "./direct-write.ts";
import { dataRanges, seekHole } from "../sys/seek.ts";
import type { BlobStorage } from "./storage.ts";

export class FscacheStorage implements BlobStorage {
  readonly path: string;
  readonly size: number;
  readonly dataIsPresence = true;
  readonly #fd: number;
  /** Bytes of data in the file as last counted; null once a write may have changed it. */
  #dataBytes: number | null = null;
  #closed = false;

  /** @param label names the object in messages (e.g. "fscache object 3 of blob <id>") */
  constructor(label: string, anonFd: number, size: number) {
    this.path = label;
    this.#fd = anonFd;
    this.size = size;
  }

  async write(pos: number, bytes: Uint8Array): Promise<void> {
    this.#dataBytes = null;
    await writeDirect(this.#fd, bytes, pos); // chunks start on blocks of 4 KiB: aligned; the tail is zero padded
    this.#dataBytes = null; // counted meanwhile: before these bytes were in
  }

  /**
   * Bytes of data in the cache file (what it occupies, for the size budget). Counted again only after writes:
   * the budget check asks for every open object, and most of them are idle.
   */
  dataBytes(): number {
    this.#dataBytes ??= this.dataRanges().reduce((n, r) => n + r.length, 0);
    return this.#dataBytes;
  }

  /**
   * Nothing to do, and no failure to lose: a write through the anon fd is a synchronous direct write into the
   * backing file (cachefiles opens it O_DIRECT), so an I/O error fails that write (the chunk never becomes
   * present) instead of waiting in the page cache for a sync to report it. A range whose write a crash undoes
   * comes back as a hole (never allocated, or an unwritten extent), which cachefiles' SEEK_DATA sees as missing.
   */
  async sync(): Promise<void> {}

  dataRanges(): Array<{ offset: number; length: number }> {
    return dataRanges(this.#fd, this.size); // lseek on the anon fd reaches the backing file
  }

  /** One SEEK_HOLE through the anon fd; a range it cannot tell about counts as a hole (fetched again: safe). */
  holdsData(offset: number, length: number): boolean {
    try {
      return seekHole(this.#fd, offset) >= offset + length;
    } catch {
      return false;
    }
  }

  /** Closes the anon fd, once: a second close could hit a number the kernel has given another object since. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    fs.closeSync(this.#fd);
  }
}
