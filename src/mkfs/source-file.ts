// Reading one regular file of the build input: exact reads (a file that shrinks while we read it is an error,
// not silently short data) and its data ranges, so holes of sparse files are never read.
import fs from "node:fs";
import { EodError } from "../errors.ts";
import { dataRanges } from "../sys/seek.ts";
import { withShortPath } from "./long-path.ts";
import { unreadable } from "./tree.ts";

const OPEN_FLAGS = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;

export class SourceFile {
  readonly path: Buffer;
  readonly size: number;
  readonly #fd: number;

  private constructor(path: Buffer, fd: number, size: number) {
    this.path = path;
    this.#fd = fd;
    this.size = size;
  }

  static open(path: Buffer, size: number): SourceFile {
    let fd: number;
    try {
      // The scan saw a regular file; if something else took its name since, never follow a symlink out of
      // the tree nor block on a fifo's open: check what was opened.
      fd = withShortPath(path, (s) => fs.openSync(s, OPEN_FLAGS));
    } catch (err) {
      throw unreadable(path, err);
    }
    if (!fs.fstatSync(fd).isFile()) {
      fs.closeSync(fd);
      throw new EodError("SOURCE_UNREADABLE", `Cannot read ${path.toString()}: no longer a regular file (changed during the build)`);
    }
    return new SourceFile(path, fd, size);
  }

  /** Fills `buf` from byte `pos` of the file; throws if the file ends early. */
  readExact(buf: Uint8Array, pos: number): void {
    let done = 0;
    while (done < buf.length) {
      let n: number;
      try {
        n = fs.readSync(this.#fd, buf, done, buf.length - done, pos + done);
      } catch (err) {
        throw unreadable(this.path, err);
      }
      if (n === 0) {
        throw new EodError("SOURCE_UNREADABLE", `Cannot read ${this.path.toString()}: file shrank while reading (expected ${this.size} bytes, ended at ${pos + done})`);
      }
      done += n;
    }
  }

  /** The byte ranges that hold data (everything for a file without holes). */
  dataRanges(): Array<{ offset: number; length: number }> {
    try {
      return dataRanges(this.#fd, this.size);
    } catch (err) {
      throw unreadable(this.path, err);
    }
  }

  close(): void {
    fs.closeSync(this.#fd);
  }
}

/** Whether [start, end) overlaps any of the data ranges (sorted). */
export function overlapsData(ranges: ReadonlyArray<{ offset: number; length: number }>, start: number, end: number): boolean {
  for (const r of ranges) {
    if (r.offset >= end) return false;
    if (r.offset + r.length > start) return true;
  }
  return false;
}

const ZEROS = new Uint8Array(1 << 20);

/** Whether every byte of `buf` is zero (such chunks become holes). */
export function isZero(buf: Uint8Array): boolean {
  for (let at = 0; at < buf.length; at += ZEROS.length) {
    const part = buf.subarray(at, Math.min(buf.length, at + ZEROS.length));
    if (!Buffer.from(part.buffer, part.byteOffset, part.length).equals(ZEROS.subarray(0, part.length))) return false;
  }
  return true;
}
