// Inline extended attributes (erofs_fs.h): after the inode comes
//   erofs_xattr_ibody_header (12 B: le32 h_name_filter, u8 h_shared_count, 7 reserved),
//   h_shared_count x le32 shared xattr ids, then erofs_xattr_entry records, each
//   { u8 e_name_len, u8 e_name_index, le16 e_value_size, name suffix, value } padded to 4 bytes.
import { EodError } from "../errors.ts";

export const EROFS_XATTR_IBODY_HEADER_SIZE = 12;
export const EROFS_XATTR_ENTRY_SIZE = 4;

// e_name_index values; a full name is prefix + suffix.
export const EROFS_XATTR_INDEX_USER = 1;
export const EROFS_XATTR_INDEX_POSIX_ACL_ACCESS = 2;
export const EROFS_XATTR_INDEX_POSIX_ACL_DEFAULT = 3;
export const EROFS_XATTR_INDEX_TRUSTED = 4;
export const EROFS_XATTR_INDEX_LUSTRE = 5;
export const EROFS_XATTR_INDEX_SECURITY = 6;

const PREFIXES: ReadonlyArray<readonly [number, string]> = [
  [EROFS_XATTR_INDEX_USER, "user."],
  [EROFS_XATTR_INDEX_POSIX_ACL_ACCESS, "system.posix_acl_access"],
  [EROFS_XATTR_INDEX_POSIX_ACL_DEFAULT, "system.posix_acl_default"],
  [EROFS_XATTR_INDEX_TRUSTED, "trusted."],
  [EROFS_XATTR_INDEX_LUSTRE, "lustre."],
  [EROFS_XATTR_INDEX_SECURITY, "security."],
];

export interface Xattr {
  /** Full name, e.g. "user.comment" or "system.posix_acl_access". */
  name: string;
  value: Uint8Array;
}

/** Splits a full name into (index, suffix), or null when EROFS has no prefix for it (e.g. "system.foo"). */
export function splitXattrName(name: string): { index: number; suffix: Uint8Array } | null {
  for (const [index, prefix] of PREFIXES) {
    if (!name.startsWith(prefix)) continue;
    const suffix = Buffer.from(name.slice(prefix.length), "utf8");
    // The ACL names are complete; the namespaces need a non-empty suffix.
    const whole = index === EROFS_XATTR_INDEX_POSIX_ACL_ACCESS || index === EROFS_XATTR_INDEX_POSIX_ACL_DEFAULT;
    if (whole ? suffix.length !== 0 : suffix.length === 0) return null;
    return { index, suffix };
  }
  return null;
}

export function xattrPrefix(index: number): string | undefined {
  return PREFIXES.find(([i]) => i === index)?.[1];
}

function entrySize(suffixLen: number, valueLen: number): number {
  return (EROFS_XATTR_ENTRY_SIZE + suffixLen + valueLen + 3) & ~3;
}

/**
 * Size in bytes of the inline xattr area for `xattrs` (0 when empty), checking the per-entry limits.
 * Throws RangeError for names EROFS cannot store; callers filter with splitXattrName() first.
 */
export function xattrAreaSize(xattrs: readonly Xattr[]): number {
  if (xattrs.length === 0) return 0;
  let size = EROFS_XATTR_IBODY_HEADER_SIZE;
  for (const x of xattrs) {
    const s = splitXattrName(x.name);
    if (!s) throw new RangeError(`Cannot store xattr ${JSON.stringify(x.name)}: no EROFS prefix`);
    if (s.suffix.length > 255) throw new RangeError(`Cannot store xattr ${JSON.stringify(x.name)}: name suffix over 255 bytes`);
    if (x.value.length > 0xffff) throw new RangeError(`Cannot store xattr ${JSON.stringify(x.name)}: value over 65535 bytes`);
    size += entrySize(s.suffix.length, x.value.length);
  }
  return size;
}

/** The largest inline xattr area (i_xattr_icount is 16 bits): 12 + 4 * 65534 bytes. */
export const MAX_XATTR_AREA = EROFS_XATTR_IBODY_HEADER_SIZE + 4 * (0xffff - 1);

/** i_xattr_icount for an area of `areaSize` bytes (0 when there are no xattrs). */
export function xattrIcountOf(areaSize: number): number {
  if (areaSize === 0) return 0;
  const icount = (areaSize - EROFS_XATTR_IBODY_HEADER_SIZE) / 4 + 1;
  if (icount > 0xffff) throw new RangeError(`Cannot store ${areaSize} bytes of inline xattrs: i_xattr_icount overflows`);
  return icount;
}

/** Writes the inline xattr area (no shared xattrs, name filter 0 = unused) at `at`; returns its size. */
export function encodeXattrs(xattrs: readonly Xattr[], out: Uint8Array, at: number): number {
  const size = xattrAreaSize(xattrs);
  if (size === 0) return 0;
  out.fill(0, at, at + size);
  const v = new DataView(out.buffer, out.byteOffset);
  let pos = at + EROFS_XATTR_IBODY_HEADER_SIZE;
  for (const x of xattrs) {
    const s = splitXattrName(x.name)!;
    v.setUint8(pos, s.suffix.length);
    v.setUint8(pos + 1, s.index);
    v.setUint16(pos + 2, x.value.length, true);
    out.set(s.suffix, pos + 4);
    out.set(x.value, pos + 4 + s.suffix.length);
    pos += entrySize(s.suffix.length, x.value.length);
  }
  return size;
}

/**
 * Decodes the inline xattr area of `nid` (`area` holds exactly its bytes). Shared xattrs are resolved through
 * `readShared(id)`, which returns the bytes starting at that shared entry.
 */
export function decodeXattrs(area: Uint8Array, nid: number, readShared?: (id: number) => Uint8Array): Xattr[] {
  if (area.byteLength === 0) return [];
  const bad = (what: string) => new EodError("EROFS_CORRUPTED", `Cannot read xattrs of inode ${nid}: ${what}`);
  if (area.byteLength < EROFS_XATTR_IBODY_HEADER_SIZE) throw bad("area shorter than its header");
  const v = new DataView(area.buffer, area.byteOffset, area.byteLength);
  const shared = v.getUint8(4);
  let pos = EROFS_XATTR_IBODY_HEADER_SIZE + 4 * shared;
  if (pos > area.byteLength) throw bad(`${shared} shared ids overflow the area`);
  const out: Xattr[] = [];
  for (let i = 0; i < shared; i++) {
    const id = v.getUint32(EROFS_XATTR_IBODY_HEADER_SIZE + 4 * i, true);
    if (!readShared) throw bad("shared xattrs present but no shared area");
    const bytes = readShared(id);
    out.push(decodeEntry(bytes, 0, nid, bad).xattr);
  }
  while (pos < area.byteLength) {
    const { xattr, size } = decodeEntry(area, pos, nid, bad);
    out.push(xattr);
    pos += size;
  }
  return out;
}

function decodeEntry(buf: Uint8Array, at: number, nid: number, bad: (w: string) => EodError): { xattr: Xattr; size: number } {
  if (at + EROFS_XATTR_ENTRY_SIZE > buf.byteLength) throw bad(`entry at +${at} truncated`);
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const nameLen = v.getUint8(at);
  const index = v.getUint8(at + 1);
  const valueSize = v.getUint16(at + 2, true);
  const size = entrySize(nameLen, valueSize);
  if (at + EROFS_XATTR_ENTRY_SIZE + nameLen + valueSize > buf.byteLength) throw bad(`entry at +${at} overflows the area`);
  if (index & 0x80) throw new EodError("EROFS_UNSUPPORTED", `Cannot read xattrs of inode ${nid}: long name prefixes are not supported`);
  const prefix = xattrPrefix(index);
  if (prefix === undefined) throw bad(`unknown name index ${index}`);
  const suffix = Buffer.from(buf.subarray(at + 4, at + 4 + nameLen)).toString("utf8");
  const value = Uint8Array.from(buf.subarray(at + 4 + nameLen, at + 4 + nameLen + valueSize));
  return { xattr: { name: prefix + suffix, value }, size };
}
