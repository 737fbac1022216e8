// Reusable memory for chunk-sized work: the builders read chunks into pooled buffers until they are written
// (fresh 256 KiB–4 MiB buffers per chunk cost GC pauses), the cache core reads remote answers into them and the
// FUSE frontend its READs (fresh memory faults at every page's first touch, which costs more than the copy). Buffers come in power-of-two
// size classes; at most `retain` bytes are kept when idle. Only buffers this pool made are taken back.
// A `shared` pool hands out SharedArrayBuffer memory, which worker threads read without a copy.
export class BufferPool {
  readonly #free = new Map<number, Buffer[]>();
  /** The memory this pool made: anything else given back (a slice of Node's shared pool) is left alone. */
  readonly #own = new WeakSet<ArrayBufferLike>();
  readonly #retain: number;
  readonly #shared: boolean;
  #kept = 0;

  constructor(retain: number, opts: { shared?: boolean } = {}) {
    this.#retain = retain;
    this.#shared = opts.shared ?? false;
  }

  /** A view of exactly `size` bytes over a pooled buffer; its contents are undefined. */
  take(size: number): Buffer {
    const cls = sizeClass(size);
    const buf = this.#free.get(cls)?.pop();
    if (buf) {
      this.#kept -= cls;
      return buf.subarray(0, size);
    }
    // Not from Node's shared 8 KiB pool: we own it whole.
    const fresh = this.#shared ? Buffer.from(new SharedArrayBuffer(cls)) : Buffer.allocUnsafeSlow(cls);
    this.#own.add(fresh.buffer);
    return fresh.subarray(0, size);
  }

  /** Returns a buffer from take(); the caller must not use it afterwards. */
  give(view: Uint8Array): void {
    if (!this.#own.has(view.buffer)) return;
    const cls = view.buffer.byteLength;
    let list = this.#free.get(cls);
    if (!list) this.#free.set(cls, (list = []));
    if (this.#kept + cls > this.#retain || list.some((b) => b.buffer === view.buffer)) return; // GC takes it; a second give is ignored
    list.push(Buffer.from(view.buffer as ArrayBuffer, 0, cls));
    this.#kept += cls;
  }
}

const MIN_CLASS = 4096;

function sizeClass(size: number): number {
  return size <= MIN_CLASS ? MIN_CLASS : 2 ** Math.ceil(Math.log2(size));
}
