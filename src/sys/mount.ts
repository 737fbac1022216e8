// mount(2), the new mount API (fsopen/fsconfig/fsmount/move_mount) and umount2(2). Used to mount erofs
// images (file-backed, so no loop device) and, later, a FUSE filesystem served by this very process: that is
// what mountAsync() is for.
//
// mount(2) copies at most one page of its option string (copy_mount_options), so an image with many blobs
// (one `device=<path>` each: ~110 bytes with a cache file path) cannot be mounted that way beyond ~35
// blobs. The new mount API (Linux 5.2+) takes each option in its own fsconfig() call with no such limit, and
// erofs_fc_parse_param() adds one device per `device` string, in order, exactly as the legacy string does.
// mountAsync() uses it only when the string would not fit: mount(2) stays the path every other mount takes.
import fs from "node:fs";
import { check, lastErrno, libc, sysError } from "./libc.ts";

/** MS_RDONLY (linux/mount.h): mount read-only. */
export const MS_RDONLY = 1;
/** MNT_FORCE (umount2): abort pending requests; meaningful for network/FUSE filesystems. */
export const MNT_FORCE = 1;
/** MNT_DETACH (umount2): lazy unmount; detach now, clean up once nothing uses it. */
export const MNT_DETACH = 2;

/** mount(2) copies at most one page of `data` (PAGE_SIZE; 4 KiB on x86_64 and the arm64 default), NUL included. */
export const MOUNT_DATA_MAX = 4096;

// Syscall numbers from the generic table, the same on x86_64 (arch/x86/entry/syscalls/syscall_64.tbl) and arm64.
const SYS_MOVE_MOUNT = 429;
const SYS_FSOPEN = 430;
const SYS_FSCONFIG = 431;
const SYS_FSMOUNT = 432;
// include/uapi/linux/mount.h
const FSOPEN_CLOEXEC = 1;
const FSCONFIG_SET_FLAG = 0;
const FSCONFIG_SET_STRING = 1;
const FSCONFIG_CMD_CREATE = 6;
const FSMOUNT_CLOEXEC = 1;
const MOUNT_ATTR_RDONLY = 1;
const MOVE_MOUNT_F_EMPTY_PATH = 4;
const AT_FDCWD = -100;

/**
 * Mounts `source` on `target`. For erofs, `source` may be an image file: since Linux 6.12 the
 * kernel reads it directly (file-backed mode). `data` is the comma-separated option string
 * (`"device=/path/blob"`), or null.
 * @throws SysError (ENOENT, EBUSY, EINVAL for a bad image or option, EPERM when not root)
 * @example
 * mount("/img/app.erofs", "/mnt/app", "erofs", MS_RDONLY, null);
 */
export function mount(source: string, target: string, fstype: string, flags: number, data: string | null): void {
  check(libc().mount(source, target, fstype, flags, data), "mount", () => `${fstype} ${source} on ${target}`);
}

/**
 * mount() run on a libuv worker thread. Needed when this process itself serves the source
 * (a FUSE mount, an image living on our FUSE mount): a synchronous mount would block the
 * event loop that has to answer the kernel's requests, and deadlock.
 */
export function mountAsync(
  source: string,
  target: string,
  fstype: string,
  flags: number,
  data: string | null,
): Promise<void> {
  if (data !== null && Buffer.byteLength(data) + 1 > MOUNT_DATA_MAX) {
    return fsMountAsync(source, target, fstype, (flags & MS_RDONLY) !== 0, data.split(","));
  }
  return new Promise((resolve, reject) => {
    libc().mount.async(source, target, fstype, flags, data, (err, rc) => {
      if (err) return reject(err);
      // koffi copies the worker's errno into this callback, so this read is valid here only.
      if (rc === -1) return reject(sysError("mount", lastErrno(), `${fstype} ${source} on ${target}`));
      resolve();
    });
  });
}

/**
 * Unmounts `target` (umount2). `flags` is 0 or a mix of MNT_DETACH, MNT_FORCE.
 * @throws SysError (EBUSY while files are open, EINVAL if `target` is not a mountpoint)
 */
export function umount(target: string, flags = 0): void {
  check(libc().umount2(target, flags), "umount2", target);
}

/**
 * Mounts through the new mount API: fsopen(fstype), fsconfig() of "source" and of each option (`key=value`
 * as a string, `key` as a flag), FSCONFIG_CMD_CREATE on a libuv worker thread (it reads the image, which
 * may be served by this process), fsmount() and move_mount() onto `target`. Options are not limited in
 * number or total length. On failure the message names the step, and the filesystem's own messages
 * (read from the context fd) are added to the detail.
 * @throws SysError (ENOENT, EINVAL for a bad image or option, ENOSYS before Linux 5.2)
 * @example
 * await fsMountAsync("/img/bootstrap.erofs", "/mnt/app", "erofs", true, blobs.map((b) => `device=${b}`));
 */
export async function fsMountAsync(source: string, target: string, fstype: string, readOnly: boolean, options: readonly string[]): Promise<void> {
  const c = libc();
  const what = `${fstype} ${source} on ${target}`;
  const fsfd = check(c.fsopen(SYS_FSOPEN, fstype, FSOPEN_CLOEXEC), "fsopen", fstype);
  try {
    const set = (key: string, value: string | null) => {
      const cmd = value === null ? FSCONFIG_SET_FLAG : FSCONFIG_SET_STRING;
      if (Number(c.fsconfig(SYS_FSCONFIG, fsfd, cmd, key, value, 0)) === -1) throw sysError("fsconfig", lastErrno(), `${key}: ${what}${fsLog(fsfd)}`);
    };
    set("source", source);
    for (const opt of options) {
      if (opt === "") continue;
      const eq = opt.indexOf("=");
      if (eq < 0) set(opt, null);
      else set(opt.slice(0, eq), opt.slice(eq + 1));
    }
    if (readOnly) set("ro", null);
    await new Promise<void>((resolve, reject) => {
      c.fsconfig.async(SYS_FSCONFIG, fsfd, FSCONFIG_CMD_CREATE, null, null, 0, (err, rc) => {
        if (err) return reject(err);
        if (Number(rc) === -1) return reject(sysError("fsconfig", lastErrno(), `create: ${what}${fsLog(fsfd)}`)); // errno of the worker, valid here only
        resolve();
      });
    });
    const mfd = check(c.fsmount(SYS_FSMOUNT, fsfd, FSMOUNT_CLOEXEC, readOnly ? MOUNT_ATTR_RDONLY : 0), "fsmount", what);
    try {
      check(c.move_mount(SYS_MOVE_MOUNT, mfd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH), "move_mount", what);
    } finally {
      fs.closeSync(mfd); // the mount stays attached once moved; before that, closing it unmounts it
    }
  } finally {
    fs.closeSync(fsfd);
  }
}

/** The messages a filesystem logged on its context fd (one per read, until ENODATA), as a suffix. */
function fsLog(fsfd: number): string {
  const lines: string[] = [];
  const buf = Buffer.alloc(1024);
  for (let i = 0; i < 16; i++) {
    try {
      const n = fs.readSync(fsfd, buf, 0, buf.length, null);
      if (n <= 0) break;
      lines.push(buf.toString("utf8", 0, n).trim());
    } catch {
      break; // ENODATA: no more messages
    }
  }
  return lines.length ? ` (${lines.join("; ")})` : "";
}
