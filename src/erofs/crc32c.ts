// The superblock checksum: crc32c (Castagnoli, reflected polynomial 0x82F63B78) seeded with ~0 and without
// the final XOR, as erofs_fs.h's users compute it. Table-driven: it runs once per image, over 4 KiB.

const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** crc32c with seed 0xFFFFFFFF and no final XOR over `bytes` (the value stored in erofs_super_block.checksum). */
export function erofsCrc32c(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return crc >>> 0;
}
