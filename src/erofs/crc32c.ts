// The superblock checksum: crc32c (Castagnoli) seeded with ~0 and without the final XOR, as erofs_fs.h's
// users compute it. @node-rs/crc32 returns the standard (final-XORed) crc32c, so we undo that XOR.
import { crc32c } from "@node-rs/crc32";

/** crc32c with seed 0xFFFFFFFF and no final XOR over `bytes` (the value stored in erofs_super_block.checksum). */
export function erofsCrc32c(bytes: Uint8Array): number {
  return ~crc32c(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)) >>> 0;
}
