// The buffers fetches read remote answers into, recycled: a new buffer per fetch is fresh memory, whose every
// page faults at its first touch (the remote's read), and on a VM that costs more than reading the bytes from
// a page cache. A buffer comes back only after every fill of its fetch settled (nothing reads it any more).
// Not zeroed: a remote returns a buffer's bytes only once all of them were read into it.

/** Buffers are sized in powers of two from here, so that fetches of similar lengths share them. */
const MIN_CLASS = 64 << 10;

export class ReceiveBuffers {
  /** Idle buffers by size class (a power of two). */
  readonly #idle = new Map<number, Uint8Array[]>();
  #idleBytes = 0;
  /** Bytes kept idle at most, and the largest buffer kept: larger ones are left to the garbage collector. */
  readonly maxIdleBytes: number;
  readonly maxBuffer: number;

  constructor(maxIdleBytes: number, maxBuffer = maxIdleBytes) {
    this.maxIdleBytes = maxIdleBytes;
    this.maxBuffer = maxBuffer;
  }

  /** A buffer of at least `length` bytes (its contents are whatever it held before). */
  take(length: number): Uint8Array {
    const size = sizeClass(length);
    const buf = this.#idle.get(size)?.pop();
    if (buf) {
      this.#idleBytes -= size;
      return buf;
    }
    return Buffer.allocUnsafeSlow(size);
  }

  /** Gives back a buffer from take(), once nothing reads or writes it any more. */
  give(buf: Uint8Array): void {
    const size = buf.length;
    if (size > this.maxBuffer || this.#idleBytes + size > this.maxIdleBytes || size !== sizeClass(size)) return;
    let list = this.#idle.get(size);
    if (!list) this.#idle.set(size, (list = []));
    list.push(buf);
    this.#idleBytes += size;
  }

  get idleBytes(): number {
    return this.#idleBytes;
  }
}

function sizeClass(length: number): number {
  let size = MIN_CLASS;
  while (size < length) size *= 2;
  return size;
}
