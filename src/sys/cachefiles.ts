// cachefiles on-demand mode (/dev/cachefiles): the kernel interface of the fscache frontend, for
// kernels 5.19 through 7.1 built with CONFIG_CACHEFILES_ONDEMAND and CONFIG_EROFS_FS_ONDEMAND
// (7.2 removes the erofs side). The daemon opens the device, writes `dir`, `tag`, `bind ondemand`,
// then reads one message per read() (layouts: src/frontend/fscache/protocol.ts), answers OPEN with a
// `copen` command, fills READ ranges through the object's anonymous fd and completes them with an
// ioctl on that fd. Facts: shared/reference/spec-facts.md part A; checked on Linux 6.12.117 in the
// kernel lab (test/kernel/fscache-smoke.test.ts).
//
// Kernel facts this module relies on (include/uapi/linux/cachefiles.h, fs/cachefiles/{daemon,ondemand}.c):
// * Commands are text, ONE per write(): at most PAGE_SIZE-1 bytes, no NUL, everything from the first
//   "\n" on is ignored; a successful write returns the whole length. Errors come back as the
//   write's errno (EINVAL, EEXIST, EBUSY, EOPNOTSUPP; EIO once the cache is dead).
// * read() never blocks: one whole message, or 0 when none is pending (or the cache is not bound).
//   A buffer smaller than the message gives EMSGSIZE, so read into CACHEFILES_MSG_MAX_SIZE bytes.
//   poll() gives POLLIN while an unread request is queued, and POLLOUT while the cache is in its CULLING
//   state (free blocks or files of the cache's filesystem fell below `bcull`/`fcull`; the bit is cleared by
//   the kernel's next space check, on a write or a file creation, once free space is back above
//   `brun`/`frun`). pollCachefiles() watches both.
// * Free-space limits (`brun/bcull/bstop`, `frun/fcull/fstop`, "N%" of the filesystem's blocks and files,
//   kernel defaults 7/5/1) must be set before `bind` and keep stop < cull < run < 100 after every single
//   command; setCachefilesLimits() sends them in an order that always does. Below `*stop` the kernel
//   refuses new cache files and writes to the anon fd (ENOBUFS).
// * The anon fd of an OPEN is write-only; writes to it are DIRECT I/O on the cache file: the position
//   must be page aligned (else ENOBUFS), the user buffer must be aligned (else EINVAL), and the length
//   should be whole pages. writeDirect() (src/cache/direct-write.ts) does all three, with buffers from
//   alignedBuffer(). Always pwrite: before ~6.12 write() did not advance the file position. Measured on
//   6.12: unaligned buffer EINVAL, unaligned position ENOBUFS, 100 bytes EINVAL, 512 bytes accepted (the
//   backing device's logical block size is the real limit).
// * umount2 of an erofs fscache mount returns without waiting for its CLOSEs to be read (6.12).
// * CACHEFILES_IOC_READ_COMPLETE takes the READ's msg_id BY VALUE, on the anon fd (not the device).
//   If the range is still a hole afterwards, the reader gets EIO: completing without writing is how
//   a READ is failed.
import fs from "node:fs";
import koffi from "koffi";
import { check, ERRNO, libc, sysError } from "./libc.ts";

/** _IOW(0x98, 1, int): a READ is filled; the argument is its msg_id, by value. Issued on the anon fd. */
export const CACHEFILES_IOC_READ_COMPLETE = 0x4004_9801;
/** Largest message a read() of /dev/cachefiles returns (uapi); read into a buffer this big. */
export const CACHEFILES_MSG_MAX_SIZE = 1024;
/** Opcodes of struct cachefiles_msg. OPEN: a cookie wants its cache file; answer with `copen`. */
export const CACHEFILES_OP_OPEN = 0;
/** CLOSE: the object is withdrawn (umount); close its fds. Not answered. */
export const CACHEFILES_OP_CLOSE = 1;
/** READ: a cache miss; fill the range through the anon fd, then CACHEFILES_IOC_READ_COMPLETE. */
export const CACHEFILES_OP_READ = 2;
/** The device node. */
export const CACHEFILES_DEVICE = "/dev/cachefiles";
/** Page size the anon-fd write path checks positions against (x86_64, arm64 with 4K pages). */
export const CACHEFILES_PAGE_SIZE = 4096;

// Longest command the kernel takes in one write (cachefiles_daemon_write: datalen <= PAGE_SIZE - 1).
const MAX_COMMAND = CACHEFILES_PAGE_SIZE - 1;

/**
 * Opens /dev/cachefiles read-write, non-blocking, close-on-exec. Needs CAP_SYS_ADMIN; only one
 * opener at a time (EBUSY until the previous cache, including every anon fd, is gone).
 * @throws SysError (ENOENT without CONFIG_CACHEFILES, EBUSY, EPERM)
 */
export function openCachefiles(device: string = CACHEFILES_DEVICE): number {
  try {
    return fs.openSync(device, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
  } catch (err) {
    throw fromNodeError(err, "open", device);
  }
}

/**
 * Writes one text command (`dir /var/cache/fscache`, `tag eod`, `bind ondemand`, `copen 7,4096`) to
 * the device fd and checks that the kernel took all of it.
 * @throws RangeError for a command the kernel would cut or refuse (newline, NUL, ≥ 4096 bytes);
 * SysError with the kernel's errno (EINVAL for a stale copen id, EEXIST for a second `dir`, …)
 * @example
 * cachefilesCommand(dev, "bind ondemand");
 */
export function cachefilesCommand(devFd: number, command: string): void {
  const bytes = Buffer.from(command, "utf8");
  if (bytes.length === 0 || bytes.length > MAX_COMMAND || /[\n\0]/.test(command)) {
    throw new RangeError(`Cannot send cachefiles command ${JSON.stringify(command)}: 1..${MAX_COMMAND} bytes, no newline or NUL`);
  }
  let n: number;
  try {
    n = fs.writeSync(devFd, bytes);
  } catch (err) {
    throw fromNodeError(err, "write", `cachefiles command "${command}"`);
  }
  if (n !== bytes.length) {
    throw sysError("write", ERRNO.EIO, `cachefiles command "${command}": the kernel took ${n} of ${bytes.length} bytes`);
  }
}

/**
 * Reads one message into `buf` (at least CACHEFILES_MSG_MAX_SIZE bytes); returns its length, or 0
 * when no request is pending. Parse it with parseMessage() (src/frontend/fscache/protocol.ts).
 * @throws SysError (EMSGSIZE if `buf` is too small, EIO after the cache died)
 */
export function cachefilesRead(devFd: number, buf: Uint8Array): number {
  try {
    return fs.readSync(devFd, buf, 0, buf.byteLength, null);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EAGAIN") return 0;
    throw fromNodeError(err, "read", CACHEFILES_DEVICE);
  }
}

/**
 * ioctl(anonFd, CACHEFILES_IOC_READ_COMPLETE, msgId): tells the kernel the READ `msgId` is done. The
 * kernel re-checks the range; if it is still (partly) a hole, the reader's read fails with EIO.
 * @throws SysError (EINVAL for an id that is not a pending READ of this object, EBADF)
 */
export function cachefilesReadComplete(anonFd: number, msgId: number): void {
  if (!Number.isInteger(msgId) || msgId < 0 || msgId > 0x7fff_ffff) {
    throw new RangeError(`Cannot complete cachefiles READ ${msgId}: msg_id is a non-negative int`);
  }
  check(libc().ioctl_int(anonFd, CACHEFILES_IOC_READ_COMPLETE, msgId), "ioctl", () => `READ_COMPLETE fd ${anonFd} msg ${msgId}`);
}

/** Free-space limits of a cachefiles cache, in percent of the cache filesystem's blocks (b*) and files (f*). */
export interface CachefilesLimits {
  brun: number;
  bcull: number;
  bstop: number;
  frun: number;
  fcull: number;
  fstop: number;
}

/**
 * Checks that limits are whole percents with stop < cull < run < 100 for blocks and for files (what `bind`
 * demands).
 * @throws RangeError naming the bad value
 */
export function checkCachefilesLimits(l: CachefilesLimits): void {
  for (const k of ["brun", "bcull", "bstop", "frun", "fcull", "fstop"] as const) {
    if (!Number.isInteger(l[k]) || l[k] < 0 || l[k] > 99) throw new RangeError(`Cannot use cachefiles limit ${k}=${l[k]}: a whole percent 0..99`);
  }
  for (const p of ["b", "f"] as const) {
    const [run, cull, stop] = [l[`${p}run`], l[`${p}cull`], l[`${p}stop`]];
    if (!(stop < cull && cull < run)) throw new RangeError(`Cannot use cachefiles limits ${p}stop=${stop}% ${p}cull=${cull}% ${p}run=${run}%: need stop < cull < run < 100`);
  }
}

/**
 * The commands that set `limits` on a cache that is not bound yet, whatever limits it has now: the kernel
 * checks stop < cull < run < 100 on every single command, so the order is `*stop 0%`, `*run 99%`, `*cull`,
 * `*run`, `*stop` (each step keeps the order valid from any valid start).
 * @throws RangeError for invalid limits (checkCachefilesLimits)
 * @example
 * cachefilesLimitCommands({ brun: 10, bcull: 7, bstop: 3, frun: 10, fcull: 7, fstop: 3 });
 * // ["bstop 0%", "brun 99%", "bcull 7%", "brun 10%", "bstop 3%", "fstop 0%", …]
 */
export function cachefilesLimitCommands(limits: CachefilesLimits): string[] {
  checkCachefilesLimits(limits);
  const out: string[] = [];
  for (const p of ["b", "f"] as const) {
    out.push(`${p}stop 0%`, `${p}run 99%`, `${p}cull ${limits[`${p}cull`]}%`, `${p}run ${limits[`${p}run`]}%`, `${p}stop ${limits[`${p}stop`]}%`);
  }
  return out;
}

/**
 * Sets the free-space limits on a device fd before `bind` (they are read at bind time).
 * @throws RangeError for invalid limits; SysError from the kernel (EINVAL)
 */
export function setCachefilesLimits(devFd: number, limits: CachefilesLimits): void {
  for (const c of cachefilesLimitCommands(limits)) cachefilesCommand(devFd, c);
}

/** A running watch of /dev/cachefiles (pollCachefiles). */
export interface CachefilesPoll {
  /** Whether POLLOUT (the cache's CULLING state) is watched too. It is level-triggered: turn it off while culling. */
  watchLowSpace(on: boolean): void;
  /** Stops watching (idempotent); no callback runs afterwards. */
  stop(): void;
}

/**
 * Watches a /dev/cachefiles fd on the event loop (libuv poll: epoll, no thread, no busy loop): `onRequests`
 * when a request is queued (POLLIN; read until cachefilesRead() returns 0), `onLowSpace` when the cache is in
 * its CULLING state (POLLOUT), if watchLowSpace(true). POLLOUT stays set until the kernel's next space check
 * finds room again, so the callee should turn the low-space watch off while it culls and back on later (a
 * timer), or the loop spins. A throw from a callback, or a poll error (SysError), goes to `onError`.
 * @example
 * const w = pollCachefiles(dev, { onRequests: drain, onLowSpace: () => { w.watchLowSpace(false); cull(); }, onError: log });
 * w.watchLowSpace(true);
 */
export function pollCachefiles(fd: number, cb: { onRequests(): void; onLowSpace(): void; onError(err: unknown): void }): CachefilesPoll {
  let native: NativePoll | null = null;
  let writable = false;
  const callback = (status: number, events?: { readable?: boolean; writable?: boolean }): void => {
    if (!native) return; // stopped; libuv may still deliver one queued callback
    try {
      if (status < 0) throw sysError("poll", -status, `fd ${fd} (${CACHEFILES_DEVICE})`);
      if (events?.readable !== false) cb.onRequests();
      if (native && writable && events?.writable) cb.onLowSpace();
    } catch (err) {
      try { cb.onError(err); } catch (err2) { process.nextTick(() => { throw err2; }); } // never throw into koffi
    }
  };
  native = (koffi.node.poll as unknown as NativePollFn)(fd, { readable: true, writable: false }, callback);
  if (!native) throw new Error(`Cannot poll fd ${fd}: koffi.node.poll returned null`);
  return {
    watchLowSpace(on: boolean): void {
      if (!native || on === writable) return;
      writable = on;
      native.start({ readable: true, writable: on }, callback); // uv_poll_start on an active handle changes its events
    },
    stop(): void {
      native?.close();
      native = null;
    },
  };
}

// koffi calls back with (status, events): status is 0 or a negative libuv error code (-errno on Linux).
type PollCallback = (status: number, events?: { readable?: boolean; writable?: boolean }) => void;
type NativePollFn = (fd: number, opts: { readable: boolean; writable: boolean }, cb: PollCallback) => NativePoll | null;
interface NativePoll {
  start(opts: { readable: boolean; writable: boolean }, cb: PollCallback): void;
  close(): void;
}

const WASM_PAGE = 65536;
// The one WebAssembly API used here; tsconfig's lib has no WebAssembly types (no DOM lib).
declare const WebAssembly: { Memory: new (d: { initial: number; maximum?: number }) => { readonly buffer: ArrayBuffer } };

/**
 * `size` bytes (zeroed) starting at an address that is a multiple of `align` (a power of two), for
 * O_DIRECT-style writes such as the cachefiles anon fd.
 *
 * Lifetime: the memory is a WebAssembly.Memory, owned by the garbage collector like any ArrayBuffer.
 * It stays valid as long as the returned Buffer (or anything sharing its ArrayBuffer) is reachable,
 * and is freed after that; there is no free() to call, hence no use-after-free and no leak. Each call
 * maps at least 64 KiB (and V8 reserves address space with guard regions per memory), so allocate
 * once and reuse: do not call this per request. (koffi aligned_alloc + koffi.view was the other option;
 * its memory is not tied to the view's lifetime, so it needs a manual free() that a live view survives.)
 * @throws RangeError for a bad size or alignment, or if the memory is not aligned (never seen: V8 maps
 * wasm memories at page boundaries, and the address is checked, not assumed)
 * @example
 * const buf = alignedBuffer(1 << 20); // reused for every write
 */
export function alignedBuffer(size: number, align = CACHEFILES_PAGE_SIZE): Buffer {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`Cannot allocate ${size} aligned bytes`);
  if (!Number.isSafeInteger(align) || align < 1 || (align & (align - 1)) !== 0 || align > 1 << 30) {
    throw new RangeError(`Cannot align to ${align}: must be a power of two up to 1 GiB`);
  }
  if (size === 0) return Buffer.alloc(0);
  // Memories start on a page (64 KiB in practice); slack only for larger alignments.
  const slack = align > CACHEFILES_PAGE_SIZE ? align : 0;
  const pages = Math.ceil((size + slack) / WASM_PAGE);
  if (pages > 65536) throw new RangeError(`Cannot allocate ${size} aligned bytes: at most 4 GiB`);
  const mem = new WebAssembly.Memory({ initial: pages, maximum: pages }); // fixed size: never detached by grow()
  const base = koffi.address(mem.buffer);
  const skip = Number((BigInt(align) - (base % BigInt(align))) % BigInt(align));
  if (skip + size > mem.buffer.byteLength) {
    throw new RangeError(`Cannot align to ${align}: memory at 0x${base.toString(16)} has no room`);
  }
  return Buffer.from(mem.buffer, skip, size);
}

// Node's fs errors carry a negative errno and its name; src/sys reports every failure as a SysError.
function fromNodeError(err: unknown, syscall: string, detail: string): unknown {
  const e = err as NodeJS.ErrnoException;
  if (typeof e?.errno === "number" && typeof e.code === "string") return sysError(syscall, Math.abs(e.errno), detail);
  return err;
}
