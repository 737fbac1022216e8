// The one place that loads libc through koffi and turns a failed call into a SysError.
// Every other src/sys file takes its bindings from libc() here, so the prototypes
// (and their 64-bit/pointer choices) are declared once and reviewed once.
import os from "node:os";
import koffi from "koffi";
import { SysError } from "../errors.ts";

/** Callback of a koffi `.async` call; koffi.errno() is valid inside it (koffi >= 3.2). */
export type AsyncCallback<R> = (err: unknown, result: R) => void;

/** A bound function that can also run on a libuv worker thread through `.async`. */
export type WithAsync<F extends (...args: never[]) => unknown> = F & {
  async(...args: [...Parameters<F>, AsyncCallback<ReturnType<F>>]): void;
};

/** Bound libc functions; signatures follow the glibc prototypes on x86_64/arm64 Linux. */
export interface Libc {
  mount: WithAsync<(source: string, target: string, fstype: string, flags: number, data: string | null) => number>;
  umount2: WithAsync<(target: string, flags: number) => number>;
  llistxattr(path: string | Uint8Array, list: Uint8Array | null, size: number): number | bigint;
  lgetxattr(path: string | Uint8Array, name: string, value: Uint8Array | null, size: number): number | bigint;
  lsetxattr(path: string | Uint8Array, name: string, value: Uint8Array, size: number, flags: number): number;
  lseek(fd: number, offset: number, whence: number): number | bigint;
  fallocate(fd: number, mode: number, offset: number, length: number): number;
  fanotify_init(flags: number, eventFFlags: number): number;
  fanotify_mark(fd: number, flags: number, mask: number | bigint, dirfd: number, path: string | null): number;
  /** ioctl(2) whose third argument is an int passed by value (CACHEFILES_IOC_READ_COMPLETE). */
  ioctl_int(fd: number, request: number, arg: number): number;
  /** ioctl(2) whose third argument points at a struct (LOOP_CONFIGURE's struct loop_config). */
  ioctl_ptr: WithAsync<(fd: number, request: number, arg: Uint8Array) => number>;
  /** The new mount API through syscall(2) (numbers in mount.ts): glibc has wrappers only since 2.36. */
  fsopen: (nr: number, fsName: string, flags: number) => number;
  fsconfig: WithAsync<(nr: number, fd: number, cmd: number, key: string | null, value: string | null, aux: number) => number>;
  fsmount: (nr: number, fd: number, flags: number, attrFlags: number) => number;
  move_mount: (nr: number, fromDirfd: number, fromPath: string, toDirfd: number, toPath: string, flags: number) => number;
  /** struct rlimit is two 64-bit words (rlim_cur, rlim_max), read and written through a 16-byte buffer. */
  getrlimit(resource: number, rlim: Uint8Array): number;
  setrlimit(resource: number, rlim: Uint8Array): number;
}

// Loaded on first use, not at import: importing src/sys must stay cheap and must not fail
// in tools (and tests) that never make a system call. This cache is the module's only state.
let cached: Libc | undefined;

/** The libc bindings, loaded on first call. */
export function libc(): Libc {
  if (cached) return cached;
  const lib = koffi.load("libc.so.6");
  // Buffers and typed arrays go in as `void *` and koffi passes their address (with their
  // byteOffset), no copy. ssize_t/off_t are declared intptr_t/int64_t: koffi returns a Number
  // while the value fits in 2^53 and a BigInt beyond, which toSafeNumber() below handles.
  // Beware: koffi also accepts a plain Number for a pointer and uses it as an address.
  cached = {
    mount: lib.func(
      "int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)",
    ),
    umount2: lib.func("int umount2(const char *target, int flags)"),
    llistxattr: lib.func("intptr_t llistxattr(const char *path, void *list, size_t size)"),
    lgetxattr: lib.func("intptr_t lgetxattr(const char *path, const char *name, void *value, size_t size)"),
    lsetxattr: lib.func(
      "int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)",
    ),
    lseek: lib.func("int64_t lseek(int fd, int64_t offset, int whence)"),
    fallocate: lib.func("int fallocate(int fd, int mode, int64_t offset, int64_t len)"),
    // The mask is 64 bits wide (glibc takes uint64_t); it accepts a Number or a BigInt.
    fanotify_init: lib.func("int fanotify_init(unsigned int flags, unsigned int event_f_flags)"),
    fanotify_mark: lib.func(
      "int fanotify_mark(int fanotify_fd, unsigned int flags, uint64_t mask, int dirfd, const char *pathname)",
    ),
    // ioctl is variadic in glibc; declared non-variadic with an int third argument: on x86_64 and
    // arm64 a variadic int goes in the same register, and a non-variadic prototype can run .async.
    ioctl_int: lib.func("int ioctl(int fd, unsigned long request, int arg)"),
    ioctl_ptr: lib.func("ioctl", "int", ["int", "unsigned long", "void *"]),
    // syscall() is variadic; like ioctl above it is declared once per argument shape (integers and pointers
    // go in the same registers either way, and glibc's syscall() reads no vector registers).
    fsopen: lib.func("syscall", "long", ["long", "const char *", "unsigned int"]),
    fsconfig: lib.func("syscall", "long", ["long", "int", "unsigned int", "const char *", "const char *", "int"]),
    fsmount: lib.func("syscall", "long", ["long", "int", "unsigned int", "unsigned int"]),
    move_mount: lib.func("syscall", "long", ["long", "int", "const char *", "int", "const char *", "unsigned int"]),
    getrlimit: lib.func("int getrlimit(int resource, void *rlim)"),
    setrlimit: lib.func("int setrlimit(int resource, const void *rlim)"),
  };
  return cached;
}

// number → name. os.constants.errno has aliases (EAGAIN/EWOULDBLOCK, ENOTSUP/EOPNOTSUPP);
// the first one listed wins, which gives the same names as Node's own fs errors (ENOTSUP, EAGAIN).
const ERRNO_NAMES = new Map<number, string>();
for (const [name, num] of Object.entries(os.constants.errno)) {
  if (!ERRNO_NAMES.has(num)) ERRNO_NAMES.set(num, name);
}
// Node's table lacks ENOTBLK (asm-generic/errno-base.h: 15, every Linux architecture): what mount(2) of a
// regular file gives where erofs has no file-backed mounts.
if (!ERRNO_NAMES.has(15)) ERRNO_NAMES.set(15, "ENOTBLK");

/** Symbolic name of an errno number (`2` → `"ENOENT"`); `"E<n>"` if unknown. */
export function errnoName(errnoNumber: number): string {
  return ERRNO_NAMES.get(errnoNumber) ?? `E${errnoNumber}`;
}

/** Errno values by name, for callers that treat some failures as results (ENXIO from SEEK_DATA). */
export const ERRNO = os.constants.errno;

/**
 * The calling thread's errno. Valid only right after a synchronous FFI call, in the same tick
 * (JS allocations may clobber it), or inside the callback of a koffi `.async` call.
 */
export function lastErrno(): number {
  return koffi.errno();
}

/** Builds the SysError for a failed call; `detail` names the object (path, fd, offset). */
export function sysError(syscall: string, errnoNumber: number, detail?: string): SysError {
  return new SysError(syscall, errnoNumber, errnoName(errnoNumber), detail);
}

/**
 * Returns `rc` as a number, or throws a SysError if it is -1 (the libc failure convention).
 * Call it as `check(fn(...), "fn", detail)` so that nothing runs between the call and the
 * errno read. A computed detail may be passed as a function, so that building the string
 * happens after errno has been read.
 * @example
 * check(libc().umount2(dir, 0), "umount2", dir);
 */
export function check(rc: number | bigint, syscall: string, detail?: string | (() => string)): number {
  if (rc === -1 || rc === -1n) {
    const e = koffi.errno(); // first thing: before any allocation that could clobber it
    throw sysError(syscall, e, typeof detail === "function" ? detail() : detail);
  }
  return toSafeNumber(rc, syscall);
}

/** Converts a 64-bit result (Number or BigInt from koffi) to a Number, refusing to lose precision. */
export function toSafeNumber(v: number | bigint, what: string): number {
  if (typeof v === "number") return v;
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new RangeError(`Cannot use ${what} result ${v}: beyond 2^53`);
  }
  return Number(v);
}

/** Throws a RangeError unless `v` is a non-negative safe integer (offsets, lengths, sizes). */
export function assertOffset(v: number, what: string): void {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new RangeError(`Cannot use ${what} ${v}: must be a non-negative integer below 2^53`);
  }
}
