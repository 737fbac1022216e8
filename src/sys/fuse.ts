// /dev/fuse: the kernel end of the FUSE frontend (message layouts: src/frontend/fuse/protocol.ts). Node's fs
// does all of it without FFI (open with O_CLOEXEC, a non-blocking read per request, writev of a reply), except
// the mount(2) of type fuse, which is mount.ts's.
//
// Kernel facts this module relies on (fs/fuse/dev.c, inode.c; checked on Linux 6.18):
// * A fresh /dev/fuse fd is attached to a connection by mount(2) with `fd=N`; until then read() fails with
//   EPERM (and poll reports an error). mount(2) returns before INIT is answered: the server reads INIT next.
// * read() returns exactly one request and needs a buffer of at least max(8192, in_header + write_in +
//   max_write); with O_NONBLOCK it fails with EAGAIN when none is queued. Once the filesystem is unmounted or
//   the connection aborted, it fails with ENODEV.
// * A reply must be one write (writev of header + data is one); a reply whose request is no longer waiting
//   (interrupted, or the connection aborted) fails with ENOENT.
// * A request read but not answered stays on the processing list of that open file (matched by `unique`) for
//   as long as any process holds the file: a holder keeps it across a daemon's death.
// * /sys/fs/fuse/connections/<minor of st_dev>/abort ends a connection whose server is gone or stuck.
import fs from "node:fs";
import path from "node:path";
import { SysError } from "../errors.ts";
import { ERRNO, sysError } from "./libc.ts";
import { MNT_DETACH, MS_RDONLY, mount, mountAsync, umount } from "./mount.ts";

/** MS_NOSUID, MS_NODEV (linux/mount.h). */
export const MS_NOSUID = 2;
export const MS_NODEV = 4;

/** Opens /dev/fuse read-write, non-blocking (Node adds O_CLOEXEC). */
export function openFuseDevice(): number {
  try {
    return fs.openSync("/dev/fuse", fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
  } catch (err) {
    throw asSysError(err, "open", "/dev/fuse");
  }
}

export interface FuseMountOptions {
  /** The filesystem's name in the mount table (fsname). */
  fsname: string;
  /** Shown as the type fuse.<subtype>. */
  subtype: string;
  /** Pass `allow_other` (root mounts read by other users and by the kernel on their behalf). */
  allowOther: boolean;
}

/**
 * mount(2) of a read-only FUSE filesystem served through `fd` on `target`: root directory, uid/gid 0,
 * permissions checked by the kernel from our modes (default_permissions). Runs on a worker thread: the
 * kernel may ask the server (this thread) while it mounts.
 * @throws SysError (ENODEV without FUSE, EPERM when not root, EINVAL for a bad fd)
 */
export async function mountFuse(fd: number, target: string, opts: FuseMountOptions): Promise<void> {
  const data = [`fd=${fd}`, "rootmode=40000", "user_id=0", "group_id=0", "default_permissions", ...(opts.allowOther ? ["allow_other"] : [])].join(",");
  await mountAsync(opts.fsname, target, `fuse.${opts.subtype}`, MS_RDONLY | MS_NOSUID | MS_NODEV, data);
}

/**
 * Reads one request into `buf`: its length, or 0 when none is queued (EAGAIN).
 * @throws SysError: ENODEV once the filesystem is unmounted or aborted, EPERM before the mount attached the fd
 */
export function readFuseRequest(fd: number, buf: Buffer): number {
  try {
    return fs.readSync(fd, buf, 0, buf.length, null);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EAGAIN") return 0;
    throw asSysError(err, "read", `/dev/fuse fd ${fd}`);
  }
}

/**
 * Writes a reply (or a notification) in one writev(2): the header and the data, not joined.
 * @throws SysError: ENOENT when the request no longer waits (interrupted, aborted), EINVAL for a malformed
 * reply, ENODEV after the connection ended
 */
export function writeFuseReply(fd: number, parts: readonly Uint8Array[]): void {
  try {
    fs.writevSync(fd, parts as Uint8Array[]);
  } catch (err) {
    throw asSysError(err, "writev", `/dev/fuse fd ${fd}`);
  }
}

/** The mount of `dir` in this process's mount table if it is a FUSE filesystem ("fuse" or "fuse.<subtype>"). */
export function fuseMountAt(dir: string): { fstype: string; source: string } | null {
  const want = path.resolve(dir);
  let found: { fstype: string; source: string } | null = null;
  for (const line of fs.readFileSync("/proc/self/mounts", "utf8").split("\n")) {
    const [source, target, fstype] = line.split(" ");
    if (!target || unescapeMountField(target) !== want) continue;
    found = fstype === "fuse" || fstype?.startsWith("fuse.") ? { fstype, source: unescapeMountField(source) } : null; // the last mount on a path is the visible one
  }
  return found;
}

function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * The connection number of the FUSE filesystem mounted at `dir` (the minor of its st_dev), without touching
 * the filesystem itself (a stat of a dead one fails): from /proc/self/mountinfo.
 */
export function fuseConnectionOf(dir: string): number | null {
  const want = path.resolve(dir);
  let found: number | null = null;
  for (const line of fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const f = line.split(" ");
    if (f.length < 10 || unescapeMountField(f[4]) !== want) continue;
    const sep = f.indexOf("-");
    const fstype = f[sep + 1] ?? "";
    found = fstype === "fuse" || fstype.startsWith("fuse.") ? Number(f[2].split(":")[1]) : null;
  }
  return found;
}

/**
 * Sets the readahead of the FUSE filesystem mounted at `dir` (its backing device's `read_ahead_kb`, sysfs
 * /sys/class/bdi/0:<connection>): the kernel caps it at 128 KiB, and its READs of a file opened afterwards are
 * no larger than that, whatever max_pages allows. False if `dir` holds no FUSE mount.
 */
export function setFuseReadahead(dir: string, bytes: number): boolean {
  const conn = fuseConnectionOf(dir);
  if (conn === null) return false;
  fs.writeFileSync(`/sys/class/bdi/0:${conn}/read_ahead_kb`, String(Math.floor(bytes / 1024)));
  return true;
}

/**
 * Ends the FUSE connection mounted at `dir` (its waiting requests fail with ECONNABORTED / ENOTCONN) through
 * the fusectl filesystem, mounting it on /sys/fs/fuse/connections if needed. False if `dir` holds no FUSE mount.
 */
export function abortFuseConnection(dir: string): boolean {
  const conn = fuseConnectionOf(dir);
  if (conn === null) return false;
  const ctl = "/sys/fs/fuse/connections";
  if (!fs.existsSync(path.join(ctl, String(conn)))) mount("fusectl", ctl, "fusectl", 0, null); // never waits on a FUSE server
  fs.writeFileSync(path.join(ctl, String(conn), "abort"), "1");
  return true;
}

/**
 * Unmounts the FUSE filesystem at `dir`: a plain umount, else (busy: something still holds a file) detached.
 * Never waits on the server. Returns false if nothing was mounted there.
 */
export function unmountFuse(dir: string): boolean {
  if (!fuseMountAt(dir)) return false;
  try {
    umount(dir);
  } catch (err) {
    if (!(err instanceof SysError && err.errno === "EBUSY")) throw err;
    umount(dir, MNT_DETACH);
  }
  return true;
}

function asSysError(err: unknown, syscall: string, detail: string): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code && code in ERRNO) return sysError(syscall, ERRNO[code as keyof typeof ERRNO], detail);
  return err;
}
