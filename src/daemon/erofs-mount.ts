// The erofs mount(2) of an image, for every frontend. Where the kernel mounts image files itself (erofs
// file-backed mounts, Linux 6.12+ with CONFIG_EROFS_FS_BACKED_BY_FILE), the frontend's source and `device=`
// paths go to mount(2) as they are. Elsewhere each of those files gets a read-only autoclear loop device
// (src/sys/loop.ts), erofs is mounted from the devices, and our fds of them are closed at once: the kernel
// detaches every device when erofs lets go of it (at umount, or right away if the mount failed), so nothing
// is left to clean up after us, even after a crash.
//
// Whether the kernel has file-backed mounts is learnt from the first mount of a file (the probe is the mount
// itself): without them, get_tree_bdev() fails on a regular file with ENOTBLK before anything is opened, and
// from then on loop devices are used. Asking the kernel beats guessing from its version: the option can be
// configured out, and a stacked backing filesystem (a FUSE mount with passthrough) refuses file-backed
// mounts with the same ENOTBLK. `mount.loop_devices = always` skips the probe (tests of the loop path on a
// kernel that has both). A source that is not a file (fscache: "none", with cookie names in `device=`) is
// always mounted as it is. The fanotify frontend's files are never put on loop devices: a loop device reads
// its backing file without raising pre-content events, so unfetched ranges would read as zeros.
import path from "node:path";
import { EodError } from "../errors.ts";
import type { MountArgs } from "../frontend/frontend.ts";
import { MS_RDONLY, mountAsync } from "../sys/mount.ts";
import { attachLoop, type LoopDevice } from "../sys/loop.ts";
import type { Log } from "../util/log.ts";
import type { LoopDeviceMode } from "../config/keys.ts";

export interface ErofsMounted {
  /** The mount's source as the mount table shows it: the bootstrap file, /dev/loopN, or "none". */
  source: string;
  /** The loop devices under the mount (the source's first), or none. */
  loopDevices: string[];
}

export class ErofsMounter {
  readonly #mode: LoopDeviceMode;
  readonly #log: Log;
  readonly #frontend: { loopsServed: boolean; frontend: string };
  /** null until the first file mount answered (mode auto). */
  #fileBacked: boolean | null = null;

  /** `loopsServed`: the frontend serves reads that reach its files through a loop device (not fanotify). */
  constructor(mode: LoopDeviceMode, log: Log, frontend: { loopsServed: boolean; frontend: string } = { loopsServed: true, frontend: "" }) {
    this.#mode = mode;
    this.#log = log;
    this.#frontend = frontend;
  }

  /** Mounts `args` (a frontend's prepare()) read-only on `mountPoint`, through loop devices where needed. */
  async mount(args: MountArgs, mountPoint: string): Promise<ErofsMounted> {
    const isFile = path.isAbsolute(args.source);
    if (!isFile || this.#mode === "auto" && this.#fileBacked !== false) {
      try {
        await mountAsync(args.source, mountPoint, "erofs", MS_RDONLY, args.data);
        if (isFile) this.#fileBacked = true;
        return { source: args.source, loopDevices: [] };
      } catch (err) {
        if (!isFile || (err as { errno?: string }).errno !== "ENOTBLK") throw err;
        this.#fileBacked = false;
        this.#log("info", "erofs cannot mount files on this kernel (ENOTBLK): loop devices from now on", { mountPoint });
      }
    }
    if (!this.#frontend.loopsServed) {
      const why = this.#mode === "always" ? "mount.loop_devices is always" : "this kernel's erofs cannot mount files (ENOTBLK: no file-backed mounts, Linux 6.12+)";
      throw new EodError(this.#mode === "always" ? "USAGE" : "KERNEL_UNSUPPORTED", `${why}, and the ${this.#frontend.frontend} frontend cannot serve reads through loop devices (they would read unfetched ranges as zeros)`);
    }
    return this.#mountOnLoops(args, mountPoint);
  }

  async #mountOnLoops(args: MountArgs, mountPoint: string): Promise<ErofsMounted> {
    const options = args.data === null || args.data === "" ? [] : args.data.split(",");
    const devices: LoopDevice[] = [];
    try {
      const source = await attachLoop(args.source);
      devices.push(source);
      const mapped: string[] = [];
      for (const opt of options) {
        if (!opt.startsWith("device=")) { mapped.push(opt); continue; }
        const dev = await attachLoop(opt.slice("device=".length));
        devices.push(dev);
        mapped.push(`device=${dev.path}`);
      }
      await mountAsync(source.path, mountPoint, "erofs", MS_RDONLY, mapped.length ? mapped.join(",") : null);
      return { source: source.path, loopDevices: devices.map((d) => d.path) };
    } finally {
      // Mounted: erofs holds each device now. Failed: this last close detaches them (autoclear).
      for (const d of devices) await d.close();
    }
  }

  /** For `eod status`: how images are mounted here. */
  status(): { loopDevices: LoopDeviceMode; fileBackedMounts: boolean | null } {
    return { loopDevices: this.#mode, fileBackedMounts: this.#mode === "always" ? null : this.#fileBacked };
  }
}
