// mount(2) and umount2(2). Used to mount erofs images (file-backed, so no loop device) and,
// later, a FUSE filesystem served by this very process: that is what mountAsync() is for.
import { check, lastErrno, libc, sysError } from "./libc.ts";

/** MS_RDONLY (linux/mount.h): mount read-only. */
export const MS_RDONLY = 1;
/** MNT_FORCE (umount2): abort pending requests; meaningful for network/FUSE filesystems. */
export const MNT_FORCE = 1;
/** MNT_DETACH (umount2): lazy unmount; detach now, clean up once nothing uses it. */
export const MNT_DETACH = 2;

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
