// Sparse-file primitives: find the allocated ranges of a file (SEEK_DATA/SEEK_HOLE) and give
// space back (FALLOC_FL_PUNCH_HOLE). The cache uses them to know which blob ranges are present.
import { SysError } from "../errors.ts";
import { ERRNO, assertOffset, check, lastErrno, libc, sysError, toSafeNumber } from "./libc.ts";

const SEEK_DATA = 3; // linux/fs.h
const SEEK_HOLE = 4;
const FALLOC_FL_KEEP_SIZE = 0x01; // linux/falloc.h
const FALLOC_FL_PUNCH_HOLE = 0x02; // must be combined with KEEP_SIZE

/** A byte range of a file. */
export interface DataRange {
  /** First byte of the range. */
  offset: number;
  /** Length in bytes. */
  length: number;
}

/**
 * Offset of the first data byte at or after `offset`, or null when there is no data
 * there (ENXIO: `offset` is inside the trailing hole or at/after end of file).
 * @throws SysError (EINVAL/ENOTSUP where the filesystem cannot tell, EBADF, …)
 */
export function seekData(fd: number, offset: number): number | null {
  assertOffset(offset, "offset");
  const rc = libc().lseek(fd, offset, SEEK_DATA);
  if (rc === -1) {
    const e = lastErrno();
    if (e === ERRNO.ENXIO) return null;
    throw sysError("lseek", e, `SEEK_DATA fd ${fd} offset ${offset}`);
  }
  return toSafeNumber(rc, "lseek");
}

/**
 * Offset of the first hole at or after `offset`. End of file counts as a hole, so this
 * returns the file size when the rest is data.
 * @throws SysError (ENXIO if `offset` is at or beyond end of file, EINVAL, …)
 */
export function seekHole(fd: number, offset: number): number {
  assertOffset(offset, "offset");
  return check(libc().lseek(fd, offset, SEEK_HOLE), "lseek", () => `SEEK_HOLE fd ${fd} offset ${offset}`);
}

/**
 * Deallocates [offset, offset+length) of `fd`, keeping the file size. Reads of the range
 * then return zeros; partial blocks at the edges are zeroed rather than freed.
 * @throws SysError (EOPNOTSUPP/ENOTSUP where the filesystem cannot punch holes, EBADF, …)
 */
export function punchHole(fd: number, offset: number, length: number): void {
  assertOffset(offset, "offset");
  assertOffset(length, "length");
  check(
    libc().fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length),
    "fallocate",
    () => `PUNCH_HOLE fd ${fd} [${offset}, ${offset + length})`,
  );
}

/**
 * The allocated ranges of the first `size` bytes of `fd`, in order, clipped to `size`.
 * Where the filesystem cannot report holes (EINVAL/ENOTSUP) the whole of [0, size) is
 * returned as data, which is the safe answer. Note that filesystems report in blocks:
 * a range can start or end up to a block away from the bytes actually written.
 */
export function dataRanges(fd: number, size: number): DataRange[] {
  assertOffset(size, "size");
  const ranges: DataRange[] = [];
  let pos = 0;
  while (pos < size) {
    let start: number | null;
    try {
      start = seekData(fd, pos);
    } catch (err) {
      if (pos === 0 && isUnsupported(err)) return [{ offset: 0, length: size }];
      throw err;
    }
    if (start === null || start >= size) break;
    const end = Math.min(seekHole(fd, start), size);
    ranges.push({ offset: start, length: end - start });
    pos = end;
  }
  return ranges;
}

function isUnsupported(err: unknown): boolean {
  return err instanceof SysError && (err.errno === "EINVAL" || err.errno === "ENOTSUP");
}
