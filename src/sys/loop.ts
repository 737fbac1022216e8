// Loop devices: a regular file as a read-only block device, for kernels whose erofs cannot mount a file
// (file-backed mounts came in 6.12). Layouts and numbers from include/uapi/linux/loop.h.
//
// One device is set up in one step: LOOP_CTL_GET_FREE on /dev/loop-control names a free device, and
// LOOP_CONFIGURE (Linux 5.8+) binds the backing file with its flags and block size atomically. Another
// process may take the same free device between the two calls: LOOP_CONFIGURE then fails with EBUSY, and we
// ask for a free device again. There is no LOOP_SET_FD + LOOP_SET_STATUS64 fallback: every kernel whose erofs
// mounts our chunked multi-device images (5.16+) has LOOP_CONFIGURE.
//
// Devices are set up LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR, direct I/O off: the kernel detaches one when
// its last opener goes. The caller mounts the device, then closes its own fd: the device lives exactly as
// long as the mount (or goes at once when the mount failed), and nothing of ours has to clean up after a crash.
//
// The backing file may live on a FUSE mount served by this very process, so every step that can reach the
// file (its open and close, LOOP_CONFIGURE) runs on a libuv worker thread: a synchronous one would block the
// event loop that has to answer the kernel's FUSE requests.
import fs from "node:fs";
import { check, ERRNO, lastErrno, libc, sysError } from "./libc.ts";

/** ioctl on /dev/loop-control: the number of a free loop device (one is added if none is free). */
export const LOOP_CTL_GET_FREE = 0x4c82;
/** ioctl on /dev/loopN: bind a backing file with a struct loop_config (Linux 5.8+). */
export const LOOP_CONFIGURE = 0x4c0a;
/** lo_flags: the device refuses writes. */
export const LO_FLAGS_READ_ONLY = 1;
/** lo_flags: the device detaches itself when its last opener closes it. */
export const LO_FLAGS_AUTOCLEAR = 4;
export const LO_NAME_SIZE = 64;

// struct loop_info64: 232 bytes (lo_device, lo_inode, lo_rdevice, lo_offset, lo_sizelimit: u64; lo_number,
// lo_encrypt_type, lo_encrypt_key_size, lo_flags: u32; lo_file_name[64], lo_crypt_name[64], lo_encrypt_key[32],
// lo_init[2]: u64). struct loop_config: u32 fd, u32 block_size, the loop_info64 at 8, u64 __reserved[8]: 304 bytes.
export const LOOP_INFO64_SIZE = 232;
export const LOOP_CONFIG_SIZE = 304;
const CONFIG = { fd: 0, block_size: 4, info: 8 } as const;
const INFO64 = { lo_offset: 24, lo_sizelimit: 32, lo_flags: 52, lo_file_name: 56 } as const;

const LOOP_CONTROL = "/dev/loop-control";
/** Free devices taken by someone else before we could configure them, in a row, before giving up. */
const MAX_RACES = 32;
// (Node opens every file O_CLOEXEC: no loop fd leaks into a child.)

/**
 * The bytes of a struct loop_config binding `fd`: whole file, read-only, autoclear, kernel default block
 * size; lo_file_name holds the path's first 63 bytes (what `losetup -l` shows on kernels without sysfs names).
 */
export function encodeLoopConfig(fd: number, fileName: string, flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR): Uint8Array {
  const buf = new Uint8Array(LOOP_CONFIG_SIZE);
  const view = new DataView(buf.buffer);
  view.setUint32(CONFIG.fd, fd, true);
  view.setUint32(CONFIG.block_size, 0, true); // 0: the kernel's default (512, or the backing device's)
  view.setBigUint64(CONFIG.info + INFO64.lo_offset, 0n, true);
  view.setBigUint64(CONFIG.info + INFO64.lo_sizelimit, 0n, true); // 0: the whole file
  view.setUint32(CONFIG.info + INFO64.lo_flags, flags, true);
  const name = Buffer.from(fileName, "utf8").subarray(0, LO_NAME_SIZE - 1);
  buf.set(name, CONFIG.info + INFO64.lo_file_name);
  return buf;
}

/** A loop device bound to a file by attachLoop(); `close()` drops our fd (the device stays while mounted). */
export interface LoopDevice {
  /** /dev/loopN */
  path: string;
  /** N */
  number: number;
  /** Our open fd of the device: keeps it bound until closed (autoclear). */
  fd: number;
  /** Closes our fd (on a worker thread); the device detaches now unless something else (a mount) holds it. */
  close(): Promise<void>;
}

/**
 * Binds `file` to a free loop device, read-only and autoclear, and returns it open.
 * @throws SysError (ENOENT without /dev/loop-control, EPERM when not root, EINVAL from a kernel before 5.8
 *   (no LOOP_CONFIGURE), EBUSY when free devices kept being taken by others)
 * @example
 * const dev = await attachLoop("/img/bootstrap.erofs");
 * try { await mountAsync(dev.path, dir, "erofs", MS_RDONLY, null); } finally { await dev.close(); }
 */
export async function attachLoop(file: string): Promise<LoopDevice> {
  const backing = await fs.promises.open(file, fs.constants.O_RDONLY);
  try {
    const config = encodeLoopConfig(backing.fd, file);
    for (let race = 0; ; race++) {
      const number = freeLoopNumber();
      const devPath = `/dev/loop${number}`;
      const fd = await openAsync(devPath, fs.constants.O_RDWR);
      try {
        await ioctlAsync(fd, LOOP_CONFIGURE, config, `${devPath} ← ${file}`);
      } catch (err) {
        await closeAsync(fd);
        if ((err as { errno?: string }).errno === "EBUSY" && race < MAX_RACES) continue; // taken between GET_FREE and CONFIGURE
        throw err;
      }
      return { path: devPath, number, fd, close: () => closeAsync(fd) };
    }
  } finally {
    await backing.close(); // the device holds its own reference to the file
  }
}

/** The backing file of loop device `number`, or null if it is not bound (sysfs). */
export function loopBackingFile(number: number): string | null {
  try {
    return fs.readFileSync(`/sys/block/loop${number}/loop/backing_file`, "utf8").trimEnd();
  } catch {
    return null;
  }
}

/** Loop device numbers bound to a file right now, with their backing files (sysfs). */
export function boundLoops(): Map<number, string> {
  const out = new Map<number, string>();
  let names: string[];
  try {
    names = fs.readdirSync("/sys/block");
  } catch {
    return out;
  }
  for (const name of names) {
    const m = /^loop(\d+)$/.exec(name);
    if (!m) continue;
    const backing = loopBackingFile(Number(m[1]));
    if (backing !== null) out.set(Number(m[1]), backing);
  }
  return out;
}

function freeLoopNumber(): number {
  let ctl: number;
  try {
    ctl = fs.openSync(LOOP_CONTROL, fs.constants.O_RDWR);
  } catch (err) {
    throw fromNodeError(err, "open", LOOP_CONTROL);
  }
  try {
    return check(libc().ioctl_int(ctl, LOOP_CTL_GET_FREE, 0), "ioctl", `LOOP_CTL_GET_FREE on ${LOOP_CONTROL}`);
  } finally {
    fs.closeSync(ctl);
  }
}

function ioctlAsync(fd: number, request: number, arg: Uint8Array, detail: string): Promise<void> {
  return new Promise((resolve, reject) => {
    libc().ioctl_ptr.async(fd, request, arg, (err, rc) => {
      if (err) return reject(err);
      if (rc === -1) return reject(sysError("ioctl", lastErrno(), detail)); // the worker's errno, valid in this callback only
      resolve();
    });
  });
}

/** A plain fd (not a FileHandle: that one would close its fd again when collected). */
function openAsync(file: string, flags: number): Promise<number> {
  return new Promise((resolve, reject) => fs.open(file, flags, (err, fd) => (err ? reject(fromNodeError(err, "open", file)) : resolve(fd))));
}

function closeAsync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.close(fd, (err) => (err ? reject(err) : resolve())));
}

function fromNodeError(err: unknown, syscall: string, what: string): Error {
  const code = (err as NodeJS.ErrnoException).code;
  const num = code ? (ERRNO as Record<string, number>)[code] : undefined;
  return num === undefined ? (err as Error) : sysError(syscall, num, what);
}
