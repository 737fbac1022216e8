// The numeric fields of a tar header block (POSIX ustar, with GNU's base-256 form for values that do not fit
// in octal) and its checksum. Names, types and PAX records are read by tar-reader.ts and pax.ts.
//
//   0 name[100]  100 mode[8]  108 uid[8]  116 gid[8]  124 size[12]  136 mtime[12]  148 chksum[8]  156 typeflag
//   157 linkname[100]  257 magic[6]  263 version[2]  265 uname[32]  297 gname[32]  329 devmajor[8]
//   337 devminor[8]  345 prefix[155]

export const BLOCK = 512;
const CHKSUM_AT = 148, CHKSUM_LEN = 8;

/** The numbers of one header; NaN where a field is empty or not a number. */
export interface TarHeaderNumbers {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  /** The stored checksum equals the sum of the block's bytes (with the checksum field as spaces). */
  checksumOk: boolean;
}

/**
 * Decodes the numeric fields of a 512-byte header block.
 * @throws Error when a base-256 field is malformed or beyond 2^53 (the header is unreadable)
 */
export function decodeTarHeader(block: Uint8Array): TarHeaderNumbers {
  if (block.length < BLOCK) throw new Error(`a header block has ${BLOCK} bytes, got ${block.length}`);
  return {
    mode: tarNumber(block, 100, 8),
    uid: tarNumber(block, 108, 8),
    gid: tarNumber(block, 116, 8),
    size: tarNumber(block, 124, 12),
    mtime: tarNumber(block, 136, 12),
    checksumOk: tarNumber(block, CHKSUM_AT, CHKSUM_LEN) === checksum(block),
  };
}

/** The unsigned sum of the block's bytes, the checksum field counted as eight spaces (POSIX). */
export function checksum(block: Uint8Array): number {
  let sum = 8 * 0x20;
  for (let i = 0; i < BLOCK; i++) if (i < CHKSUM_AT || i >= CHKSUM_AT + CHKSUM_LEN) sum += block[i];
  return sum;
}

/**
 * A numeric field: octal text up to its first NUL (leading spaces ignored), or GNU base-256 when the first
 * byte's high bit is set (0x80: positive, the rest big-endian; 0xff: negative, two's complement).
 */
export function tarNumber(block: Uint8Array, at: number, len: number): number {
  const field = block.subarray(at, at + len);
  if (field[0] & 0x80) return base256(field);
  let end = field.indexOf(0);
  if (end < 0) end = field.length;
  // As lenient as node-tar and GNU tar: octal digits up to the first other character.
  return parseInt(Buffer.from(field.buffer, field.byteOffset, end).toString("latin1").trim(), 8);
}

function base256(field: Uint8Array): number {
  const negative = field[0] === 0xff;
  if (!negative && field[0] !== 0x80) throw new Error("invalid base-256 number");
  let value = 0;
  for (let i = 1; i < field.length; i++) value = value * 256 + (negative ? 0xff - field[i] : field[i]);
  if (negative) value = -(value + 1);
  if (!Number.isSafeInteger(value)) throw new Error("base-256 number beyond 2^53");
  return value;
}
