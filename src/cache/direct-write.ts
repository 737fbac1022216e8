// Direct-I/O writes (the cachefiles anon fd: page-aligned position, buffer and length) on libuv's thread pool,
// so that a write into a cache file never stalls the event loop that answers the kernel's other requests and
// the control socket. Bytes are copied into page-aligned bounce buffers (a few, reused: each maps 1 MiB) and
// the tail is padded with zeros to a whole page. Node's fs.write is the pwrite; only the aligned memory needs
// FFI (alignedBuffer() in src/sys).
import fs from "node:fs";
import { alignedBuffer, CACHEFILES_PAGE_SIZE } from "../sys/cachefiles.ts";

const PAGE = CACHEFILES_PAGE_SIZE;
const BOUNCE = 1 << 20;
/** Writes in flight at once, each with its bounce buffer (libuv's pool has 4 threads by default). */
const MAX_BOUNCES = 4;

const free: Buffer[] = [];
let made = 0;
const waiting: Array<(b: Buffer) => void> = [];

async function takeBounce(): Promise<Buffer> {
  const b = free.pop();
  if (b) return b;
  if (made < MAX_BOUNCES) {
    made++;
    return alignedBuffer(BOUNCE, PAGE);
  }
  return new Promise((resolve) => waiting.push(resolve));
}

function giveBounce(b: Buffer): void {
  const next = waiting.shift();
  if (next) next(b);
  else free.push(b);
}

function pwrite(fd: number, buf: Buffer, length: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fs.write(fd, buf, 0, length, pos, (err, n) => (err ? reject(err) : resolve(n))));
}

/**
 * Writes `data` at `pos` (a multiple of 4096) through `fd`, opened for direct I/O, on the thread pool; up to
 * 4095 zero bytes pad the last page (a cache file is round_up(size, 4096) long, so they stay inside it).
 * @throws RangeError for an unaligned position; the write's error (ENOBUFS, ENOSPC, EINVAL, ...), also for a
 * short write that would leave an unaligned position
 */
export async function writeDirect(fd: number, data: Uint8Array, pos: number): Promise<void> {
  if (!Number.isSafeInteger(pos) || pos < 0 || pos % PAGE !== 0) {
    throw new RangeError(`Cannot write at ${pos}: a direct write needs a position that is a multiple of ${PAGE}`);
  }
  const buf = await takeBounce();
  try {
    for (let done = 0; done < data.byteLength;) {
      const n = Math.min(BOUNCE, data.byteLength - done);
      buf.set(data.subarray(done, done + n), 0);
      const padded = Math.ceil(n / PAGE) * PAGE;
      buf.fill(0, n, padded);
      for (let off = 0; off < padded;) {
        const w = await pwrite(fd, buf.subarray(off), padded - off, pos + done + off);
        if (w === 0 || (w < padded - off && w % PAGE !== 0)) {
          throw Object.assign(new Error(`EIO: short direct write of ${w} of ${padded - off} bytes at ${pos + done + off} (fd ${fd})`), { code: "EIO" });
        }
        off += w;
      }
      done += n;
    }
  } finally {
    giveBounce(buf);
  }
}
