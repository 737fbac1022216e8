// fanotify(7) pre-content events: the kernel interface of the fanotify frontend. The daemon makes a
// FAN_CLASS_PRE_CONTENT group, marks every blob cache file FAN_PRE_ACCESS, and answers each permission
// event (struct layouts: src/frontend/fanotify/protocol.ts) once the range is in the file.
//
// Kernel facts this module relies on (uapi include/uapi/linux/fanotify.h, fs/notify/fanotify/
// fanotify_user.c, include/linux/fsnotify.h, checked on Linux 6.18):
// * FAN_PRE_ACCESS, the RANGE info record and FAN_DENY_ERRNO came in one series, merged for 6.14
//   ("Merge fanotify HSM implementation"); nydus v3 docs/fanotify.md asks for 6.15.
// * The RANGE record needs no FAN_REPORT_* flag: it is added to every pre-content event that has a
//   file position. The range is page aligned (fsnotify_pre_content rounds it out).
// * FAN_PRE_ACCESS fires before reads AND writes, and again on every read of a range already filled
//   (a pre-content mark also turns readahead off for the file).
// * The event fd is opened FMODE_NONOTIFY ("so it could access the file without generating fanotify
//   events itself") with the group's event_f_flags: pass O_RDWR to fanotifyInit to write through it.
//   On 64-bit kernels O_LARGEFILE is added by the kernel.
// * Whether an fd generates pre-content events is decided when it is opened: an fd opened while no
//   pre-content mark existed on that filesystem never does, one opened later always does, and that
//   includes the listener's own fds. A listener that reads or writes a marked file through such an
//   fd, on the thread that answers events, waits on itself forever.
// * Closing the group fd answers every pending permission event FAN_ALLOW (fanotify_release): the
//   reader then sees the sparse file's zeros. Unmount before closing the group.
// * Marks are refused with EOPNOTSUPP on filesystems that do not opt in to pre-content events
//   (tmpfs); ext4, xfs and btrfs accept them.
// * A file-backed erofs mount opens its device= files at mount time (so mark them first) and reads
//   them with vfs_iocb_iter_read (fs/erofs/fileio.c) in the reading task: one event per erofs bio,
//   carrying the reader's pid. Mounting our images reads no blob (measured: test/kernel/fanotify.test.ts).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { SysError } from "../errors.ts";
import { ERRNO, check, errnoName, lastErrno, libc } from "./libc.ts";
import { MS_RDONLY, mount, umount } from "./mount.ts";

// fanotify_init(2) flags
/** Close-on-exec on the group fd. */
export const FAN_CLOEXEC = 0x0000_0001;
/** O_NONBLOCK on the group fd: read() fails with EAGAIN when no event is queued. */
export const FAN_NONBLOCK = 0x0000_0002;
/** Notification class (no permission events). The three classes are values, not bits. */
export const FAN_CLASS_NOTIF = 0x0000_0000;
/** Permission events after content is in place (virus scanners). */
export const FAN_CLASS_CONTENT = 0x0000_0004;
/** Permission events before content is in place: the class FAN_PRE_ACCESS needs. */
export const FAN_CLASS_PRE_CONTENT = 0x0000_0008;
/** No 16384-event queue limit. Beware: on overflow of a bounded queue, permission events are allowed. */
export const FAN_UNLIMITED_QUEUE = 0x0000_0010;
/** No limit on the number of marks. */
export const FAN_UNLIMITED_MARKS = 0x0000_0020;
/** Allow FAN_AUDIT in responses. */
export const FAN_ENABLE_AUDIT = 0x0000_0040;
/** Add a FAN_EVENT_INFO_TYPE_PIDFD record; not needed for pre-content events. */
export const FAN_REPORT_PIDFD = 0x0000_0080;
/** `pid` is the thread id, not the process id. */
export const FAN_REPORT_TID = 0x0000_0100;
/** Report file handles instead of fds; not usable with permission events (they need the fd). */
export const FAN_REPORT_FID = 0x0000_0200;

// fanotify_mark(2) flags
/** Add `mask` to the mark. */
export const FAN_MARK_ADD = 0x0000_0001;
/** Remove `mask` from the mark (ENOENT if there is none). */
export const FAN_MARK_REMOVE = 0x0000_0002;
/** Do not follow a symlink at `path`. */
export const FAN_MARK_DONT_FOLLOW = 0x0000_0004;
/** Remove every mark of the given kind (inode, mount or filesystem) from the group. */
export const FAN_MARK_FLUSH = 0x0000_0080;
/** Mark the inode at `path` (the default: value 0). */
export const FAN_MARK_INODE = 0x0000_0000;
/** Mark the mount holding `path`. */
export const FAN_MARK_MOUNT = 0x0000_0010;
/** Mark the whole filesystem holding `path`. */
export const FAN_MARK_FILESYSTEM = 0x0000_0100;
/** `dirfd` meaning "relative to the current directory". */
export const AT_FDCWD = -100;

// Event mask bits: the mask is 64 bits wide (bits 32..39 are the event type), hence bigint.
/** Permission to open. */
export const FAN_OPEN_PERM = 0x0001_0000n;
/** Permission to read (after content is in place). */
export const FAN_ACCESS_PERM = 0x0002_0000n;
/** Pre-content event: before a read or write of a range; carries a FAN_EVENT_INFO_TYPE_RANGE record. */
export const FAN_PRE_ACCESS = 0x0010_0000n;
/** The event queue overflowed; the event has fd FAN_NOFD. */
export const FAN_Q_OVERFLOW = 0x0000_4000n;

// Event metadata and info records (struct layouts live in src/frontend/fanotify/protocol.ts)
/** `vers` of struct fanotify_event_metadata this code understands. */
export const FANOTIFY_METADATA_VERSION = 3;
/** sizeof(struct fanotify_event_metadata). */
export const FAN_EVENT_METADATA_LEN = 24;
/** Info record type of struct fanotify_event_info_range { hdr; u32 pad; u64 offset; u64 count; }. */
export const FAN_EVENT_INFO_TYPE_RANGE = 6;
/** `fd` of an event that carries no file (FAN_Q_OVERFLOW). */
export const FAN_NOFD = -1;

// struct fanotify_response { s32 fd; u32 response; }
/** Let the access go on. */
export const FAN_ALLOW = 0x01;
/** Refuse the access: the reader gets EPERM, or the errno given with fanDenyErrno(). */
export const FAN_DENY = 0x02;
/** Shift of the errno in a deny response (FAN_ERRNO_SHIFT = 32 - FAN_ERRNO_BITS). */
export const FAN_ERRNO_SHIFT = 24;

/**
 * The errnos a pre-content group may deny with (process_access_response accepts only these; any
 * other value makes the kernel refuse the whole response with EINVAL and the reader stays blocked).
 */
export const FAN_DENY_ERRNOS: readonly number[] = [
  ERRNO.EPERM, ERRNO.EIO, ERRNO.EBUSY, ERRNO.ETXTBSY, ERRNO.EAGAIN, ERRNO.ENOSPC, ERRNO.EDQUOT,
];

/**
 * FAN_DENY_ERRNO(err): a deny response that makes the reader's read() fail with `errno`
 * (Linux 6.14+, pre-content groups only; FAN_INFO is not needed). 0 gives plain FAN_DENY (EPERM).
 * @throws RangeError when the kernel would refuse the errno (see FAN_DENY_ERRNOS)
 * @example
 * fanDenyErrno(os.constants.errno.EIO); // 0x05000002
 */
export function fanDenyErrno(errno: number): number {
  if (errno !== 0 && !FAN_DENY_ERRNOS.includes(errno)) {
    throw new RangeError(
      `Cannot deny with errno ${errno} (${errnoName(errno)}): the kernel accepts only ` +
        FAN_DENY_ERRNOS.map(errnoName).join(", "),
    );
  }
  return (FAN_DENY | (errno << FAN_ERRNO_SHIFT)) >>> 0;
}

/**
 * fanotify_init(2): a new fanotify group; returns its fd. `eventFFlags` are the open flags of the fds
 * the events carry: pass `fs.constants.O_RDWR` to be able to fill the file through them.
 * @throws SysError (EPERM without CAP_SYS_ADMIN, EINVAL for a class the kernel lacks, EMFILE)
 * @example
 * const fan = fanotifyInit(FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK, fs.constants.O_RDWR);
 */
export function fanotifyInit(flags: number, eventFFlags: number): number {
  return check(libc().fanotify_init(flags, eventFFlags), "fanotify_init", () => `flags 0x${flags.toString(16)}`);
}

/**
 * fanotify_mark(2): adds, removes or flushes marks. `path` is resolved against `dirfd` (AT_FDCWD or a
 * directory fd); with a null `path`, `dirfd` itself is marked.
 * @throws SysError (EINVAL for an event bit the kernel lacks, EOPNOTSUPP for FAN_PRE_ACCESS on a
 * filesystem without pre-content support, ENOENT removing a mark that does not exist)
 * @example
 * fanotifyMark(fan, FAN_MARK_ADD, FAN_PRE_ACCESS, AT_FDCWD, "/cache/blob1");
 */
export function fanotifyMark(fd: number, flags: number, mask: bigint | number, dirfd: number, path: string | null): void {
  if (typeof mask === "bigint" ? mask < 0n || mask >= 1n << 64n : !Number.isSafeInteger(mask) || mask < 0) {
    throw new RangeError(`Cannot use fanotify mask ${mask}: it must be an unsigned 64-bit integer`);
  }
  check(
    libc().fanotify_mark(fd, flags, mask, dirfd, path),
    "fanotify_mark",
    () => `flags 0x${flags.toString(16)} mask 0x${mask.toString(16)} ${path ?? `fd ${dirfd}`}`,
  );
}

/** What kernelSupportsPreContent() found. */
export interface PreContentSupport {
  ok: boolean;
  /** One line per missing feature, naming the kernel version or config option that brings it. */
  missing: string[];
}

/**
 * Probes what the fanotify frontend needs, without side effects that outlive the call:
 * a FAN_CLASS_PRE_CONTENT group with a FAN_PRE_ACCESS mark on a temp file in `dir` (the blob cache
 * directory: support depends on its filesystem), and a file-backed erofs mount attempt of a file of
 * zeros (file-backed kernels read it and refuse it with EINVAL; older ones say ENOTBLK; nothing is
 * mounted either way). Needs root for both, like the frontend itself.
 * @example
 * const s = kernelSupportsPreContent("/var/cache/eod");
 * if (!s.ok) throw new EodError("KERNEL_UNSUPPORTED", `Missing: ${s.missing.join("; ")}`);
 */
export function kernelSupportsPreContent(dir: string = os.tmpdir()): PreContentSupport {
  const missing: string[] = [];
  const work = fs.mkdtempSync(path.join(dir, ".eod-probe-"));
  try {
    probeFanotify(work, missing);
    probeFileBackedErofs(work, missing);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  return { ok: missing.length === 0, missing };
}

function probeFanotify(work: string, missing: string[]): void {
  const rc = libc().fanotify_init(FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK, fs.constants.O_RDWR);
  if (rc === -1) {
    const e = lastErrno();
    if (e === ERRNO.EPERM) missing.push("CAP_SYS_ADMIN (root) for a fanotify FAN_CLASS_PRE_CONTENT group");
    else if (e === ERRNO.ENOSYS) missing.push("fanotify (CONFIG_FANOTIFY)");
    else if (e === ERRNO.EINVAL) missing.push("fanotify permission events (CONFIG_FANOTIFY_ACCESS_PERMISSIONS)");
    else missing.push(`a fanotify group (fanotify_init failed: ${errnoName(e)})`);
    return;
  }
  const fan = rc;
  try {
    const file = path.join(work, "marked");
    fs.writeFileSync(file, "");
    const mrc = libc().fanotify_mark(fan, FAN_MARK_ADD, FAN_PRE_ACCESS, AT_FDCWD, file);
    if (mrc === -1) {
      const e = lastErrno();
      if (e === ERRNO.EINVAL) missing.push("fanotify pre-content events (FAN_PRE_ACCESS, Linux 6.14+)");
      else if (e === ERRNO.EOPNOTSUPP || e === ERRNO.ENOTSUP) {
        missing.push(`FAN_PRE_ACCESS marks on the filesystem of ${path.dirname(work)} (use ext4, xfs or btrfs; not tmpfs)`);
      } else missing.push(`a FAN_PRE_ACCESS mark (fanotify_mark failed: ${errnoName(e)})`);
    }
  } finally {
    fs.closeSync(fan);
  }
}

const ENOTBLK = 15; // asm-generic/errno-base.h; missing from os.constants.errno

function probeFileBackedErofs(work: string, missing: string[]): void {
  const image = path.join(work, "zeros.img");
  const target = path.join(work, "mnt");
  fs.writeFileSync(image, Buffer.alloc(8192));
  fs.mkdirSync(target);
  try {
    mount(image, target, "erofs", MS_RDONLY, null);
    umount(target); // cannot happen (no superblock), but never leave a mount behind
  } catch (err) {
    if (!(err instanceof SysError)) throw err;
    const e = err.errnoNumber;
    if (e === ERRNO.EINVAL) return; // read the file and found no superblock: file-backed mounts work
    if (e === ERRNO.ENODEV) missing.push("erofs (CONFIG_EROFS_FS)");
    else if (e === ENOTBLK) {
      // Also what a file on tmpfs gets (measured on 6.18): only some filesystems can back a mount.
      missing.push(
        `file-backed erofs mounts (Linux 6.12+, CONFIG_EROFS_FS_BACKED_BY_FILE) of files on the filesystem of ` +
          `${path.dirname(work)} (tmpfs cannot back them)`,
      );
    } else if (e === ERRNO.EPERM) missing.push("CAP_SYS_ADMIN (root) to mount erofs");
    else missing.push(`file-backed erofs mounts (probe mount failed: ${err.errno})`);
  }
}
