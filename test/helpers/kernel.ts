// Test helper for tests that mount the real kernel. It tracks every mount and temp dir it
// made, and one process "exit" hook detaches and deletes whatever is left, so a failing or
// throwing test never leaves a mount (or a directory) behind.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { SysError } from "../../src/errors.ts";
import { MNT_DETACH, MS_RDONLY, mountAsync, umount } from "../../src/sys/index.ts";

// Test-process globals on purpose: the exit hook has to find everything, whichever test made it.
const liveMounts = new Set<string>();
const tempDirs = new Set<string>();
let hooked = false;

/** A mounted image; `unmount()` may be called any number of times. */
export interface MountedImage {
  /** The mountpoint. */
  dir: string;
  /** Unmounts (plain umount, so a leaked open file shows up as EBUSY) and removes `dir`. */
  unmount(): void;
}

/** True when running as root, which mounting needs. */
export function haveRoot(): boolean {
  return process.getuid?.() === 0;
}

/** A new directory under os.tmpdir(), removed (recursively) when the process exits. */
export function tempDir(prefix: string): string {
  hookExit();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/**
 * Mounts erofs image `image` read-only on a new temp dir (file-backed: no loop device).
 * `data` is the mount option string, e.g. `"device=/path/blob"`. The mount runs on a worker
 * thread, so an image served by this same process (our FUSE mount) cannot deadlock it.
 * @example
 * const m = await mountErofs(img);
 * try { fs.readFileSync(path.join(m.dir, "hello.txt")); } finally { m.unmount(); }
 */
export async function mountErofs(image: string, data?: string): Promise<MountedImage> {
  const dir = tempDir("eod-mnt-");
  try {
    await mountAsync(image, dir, "erofs", MS_RDONLY, data ?? null);
  } catch (err) {
    tempDirs.delete(dir);
    fs.rmdirSync(dir);
    throw err;
  }
  liveMounts.add(dir);
  return {
    dir,
    unmount() {
      if (liveMounts.has(dir)) {
        umount(dir); // if this throws, the mount stays tracked and the exit hook detaches it
        liveMounts.delete(dir);
      }
      if (tempDirs.delete(dir)) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Mounts a filesystem of type `fstype` (tmpfs, proc, sysfs…) on the existing directory `dir`, which may lie
 * inside a tree under test. `unmount()` unmounts it and leaves `dir`; the exit hook detaches it if a test
 * did not. The caller must unmount before deleting the tree around `dir`.
 * @example
 * const tmpfs = await mountAt(src, "tmpfs", "size=64m");
 * try { … } finally { tmpfs.unmount(); }
 */
export async function mountAt(dir: string, fstype: string, data?: string): Promise<MountedImage> {
  hookExit();
  await mountAsync(fstype, dir, fstype, 0, data ?? null);
  liveMounts.add(dir);
  return {
    dir,
    unmount() {
      if (!liveMounts.has(dir)) return;
      umount(dir);
      liveMounts.delete(dir);
    },
  };
}

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on("exit", () => {
    // Mounts first: deleting a temp dir while something is still mounted inside it would
    // recurse into the mounted filesystem. A lazy detach succeeds even while files are open.
    const stuck: string[] = [];
    for (const dir of liveMounts) {
      try {
        umount(dir, MNT_DETACH);
      } catch (err) {
        // EINVAL: no longer a mountpoint (someone unmounted it); anything else: leave it be
        if (!(err instanceof SysError && err.errno === "EINVAL")) stuck.push(dir);
      }
    }
    liveMounts.clear();
    for (const dir of tempDirs) {
      if (stuck.some((m) => m === dir || m.startsWith(dir + path.sep))) continue;
      try {
        fs.rmSync(dir, { recursive: true, force: true });
      } catch {
        // best effort at exit; a leftover temp dir is harmless
      }
    }
  });
}
