// Extended attributes through the l* calls, which act on the link itself and never open the
// file: so they work on symlinks, fifos, sockets and device nodes, which a build must copy as-is.
import { ERRNO, check, lastErrno, libc, sysError, toSafeNumber } from "./libc.ts";

// A value that keeps growing between the size query and the read is retried this many times.
const MAX_ATTEMPTS = 8;

/**
 * Names of the extended attributes of `path` (not following a final symlink), in the
 * filesystem's order. Returns [] where the filesystem has no xattr support (ENOTSUP).
 * @throws SysError (ENOENT, EACCES, …)
 */
export function listXattrs(path: string | Buffer): string[] {
  return listXattrNameBytes(path).map((n) => n.toString("utf8"));
}

/**
 * listXattrs() with each name as the kernel's bytes: a name need not be UTF-8, and one that is
 * not would not survive decoding (getXattr() of the decoded name fails with ENODATA).
 */
export function listXattrNameBytes(path: string | Buffer): Buffer[] {
  const c = cPath(path);
  const raw = readSized("llistxattr", path, (buf, size) => libc().llistxattr(c, buf, size));
  if (raw === null) return [];
  // The list is "name\0name\0…".
  const names: Buffer[] = [];
  for (let at = 0; at < raw.length;) {
    let end = raw.indexOf(0, at);
    if (end < 0) end = raw.length;
    if (end > at) names.push(raw.subarray(at, end));
    at = end + 1;
  }
  return names;
}

/**
 * The value of xattr `name` of `path` (not following a final symlink).
 * @throws SysError (ENODATA when the attribute is absent, ENOTSUP, ENOENT, …)
 */
export function getXattr(path: string | Buffer, name: string): Buffer {
  const c = cPath(path);
  const v = readSized("lgetxattr", path, (buf, size) => libc().lgetxattr(c, name, buf, size), name);
  if (v === null) throw sysError("lgetxattr", ERRNO.ENOTSUP, `${path} ${name}`);
  return v;
}

/**
 * Creates or replaces xattr `name` of `path` (not following a final symlink). The kernel
 * allows user.* only on regular files and directories; trusted.* needs CAP_SYS_ADMIN.
 * @throws SysError (EPERM, ENOTSUP, ENOSPC, E2BIG, …)
 */
export function setXattr(path: string | Buffer, name: string, value: Uint8Array): void {
  const c = cPath(path);
  check(libc().lsetxattr(c, name, value, value.byteLength, 0), "lsetxattr", () => `${path} ${name}`);
}

// The size-query-then-read dance shared by llistxattr and lgetxattr: call with size 0 for the
// current size, read into a buffer of that size, and start over on ERANGE (it grew meanwhile).
// Returns null on ENOTSUP so that each caller decides what "unsupported" means.
function readSized(
  syscall: string,
  path: string | Buffer,
  call: (buf: Uint8Array | null, size: number) => number | bigint,
  name?: string,
): Buffer | null {
  const detail = () => (name === undefined ? String(path) : `${String(path)} ${name}`);
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const sizeRc = call(null, 0);
    if (sizeRc === -1) {
      const e = lastErrno();
      if (e === ERRNO.ENOTSUP) return null;
      throw sysError(syscall, e, detail());
    }
    const size = toSafeNumber(sizeRc, syscall);
    if (size === 0) return Buffer.alloc(0);
    const buf = Buffer.alloc(size); // not allocUnsafe: no pooled slice, no stale bytes
    const rc = call(buf, size);
    if (rc === -1) {
      const e = lastErrno();
      if (e === ERRNO.ERANGE) continue; // grew since the size query
      if (e === ERRNO.ENOTSUP) return null;
      throw sysError(syscall, e, detail());
    }
    return buf.subarray(0, toSafeNumber(rc, syscall)); // may have shrunk meanwhile
  }
  throw sysError(syscall, ERRNO.ERANGE, `${detail()}: value kept growing over ${MAX_ATTEMPTS} attempts`);
}

/** Paths may be Buffers (names that are not UTF-8); C wants them NUL-terminated. */
function cPath(path: string | Buffer): string | Uint8Array {
  return typeof path === "string" ? path : Buffer.concat([path, NUL]);
}
const NUL = Buffer.from([0]);
