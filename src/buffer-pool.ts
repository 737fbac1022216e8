// Reusable memory for decoded chunks. A fill decodes into a pooled buffer, verifies it, writes it to the
// storage and gives it back, so steady-state misses allocate nothing: fresh 256 KiB–4 MiB buffers per fill
// made GC pauses the p99 of the fill latency. Buffers come in power-of-two size classes; at most `retain`
// bytes are kept when idle (the byte budget bounds what is out at once).
export class BufferPool {
  readonly #free = new Map<number, Buffer[]>();
  readonly #retain: number;
  #kept = 0;

  constructor(retain: number) {
    this.#retain = retain;
  }

  /** A view of exactly `size` bytes over a pooled buffer; its contents are undefined. */
  take(size: number): Buffer {
    const cls = sizeClass(size);
    const buf = this.#free.get(cls)?.pop();
    if (buf) {
      this.#kept -= cls;
      return buf.subarray(0, size);
    }
    return Buffer.allocUnsafeSlow(cls).subarray(0, size); // not from Node's shared 8 KiB pool: we own it whole
  }

  /** Returns a buffer from take(); the caller must not use it afterwards. */
  give(view: Buffer): void {
    const whole = Buffer.from(view.buffer, 0, view.buffer.byteLength);
    const cls = whole.length;
    if (cls !== sizeClass(cls) || this.#kept + cls > this.#retain) return; // let GC have it
    let list = this.#free.get(cls);
    if (!list) this.#free.set(cls, (list = []));
    list.push(whole);
    this.#kept += cls;
  }
}

const MIN_CLASS = 4096;

function sizeClass(size: number): number {
  return size <= MIN_CLASS ? MIN_CLASS : 2 ** Math.ceil(Math.log2(size));
}
