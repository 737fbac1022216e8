// erofs_super_block (erofs_fs.h): 128 bytes at byte 1024 of block 0, little-endian.
// We write and read the uncompressed, non-48-bit subset; unknown incompat bits are refused on read.
import { EodError } from "../errors.ts";
import {
  EROFS_FEATURE_COMPAT_SB_CHKSUM, EROFS_FEATURE_INCOMPAT_DEVICE_TABLE, EROFS_FEATURES, EROFS_SUPER_MAGIC_V1, EROFS_SUPER_OFFSET,
  EROFS_SUPPORTED_INCOMPAT,
} from "./constants.ts";
import { erofsCrc32c } from "./crc32c.ts";

export const EROFS_SB_SIZE = 128;
const OFF = {
  magic: 0, checksum: 4, feature_compat: 8, blkszbits: 12, sb_extslots: 13, rootnid_2b: 14, inos: 16,
  epoch: 24, fixed_nsec: 32, blocks_lo: 36, meta_blkaddr: 40, xattr_blkaddr: 44, uuid: 48, volume_name: 64,
  feature_incompat: 80, u1: 84, extra_devices: 86, devt_slotoff: 88, dirblkbits: 90, xattr_prefix_count: 91,
  xattr_prefix_start: 92, packed_nid: 96, xattr_filter_reserved: 104,
} as const;

export interface SuperBlock {
  featureCompat: number;
  blkSzBits: number;
  /** Root directory nid (rootnid_2b: 16 bits without 48BIT). */
  rootNid: number;
  /** Number of inodes (for statfs). */
  inos: number;
  /** Seconds and nanoseconds given to every compact inode (called build_time before 6.15). */
  epoch: number;
  fixedNsec: number;
  /** Size of the primary device in blocks (blocks_lo). */
  blocks: number;
  metaBlkAddr: number;
  xattrBlkAddr: number;
  uuid: Uint8Array; // 16 bytes
  volumeName: string;
  featureIncompat: number;
  extraDevices: number;
  /** Device table byte offset = devt_slotoff * 128. */
  devtSlotOff: number;
}

/** Encodes the superblock into `block0` (the first block of the image) without the checksum. */
export function encodeSuperBlock(sb: SuperBlock, block0: Uint8Array): void {
  const v = new DataView(block0.buffer, block0.byteOffset + EROFS_SUPER_OFFSET, EROFS_SB_SIZE);
  new Uint8Array(v.buffer, v.byteOffset, EROFS_SB_SIZE).fill(0);
  if (sb.rootNid > 0xffff) throw new RangeError(`Cannot encode superblock: root nid ${sb.rootNid} needs 48BIT`);
  v.setUint32(OFF.magic, EROFS_SUPER_MAGIC_V1, true);
  v.setUint32(OFF.feature_compat, sb.featureCompat, true);
  v.setUint8(OFF.blkszbits, sb.blkSzBits);
  v.setUint16(OFF.rootnid_2b, sb.rootNid, true);
  v.setBigUint64(OFF.inos, BigInt(sb.inos), true);
  v.setBigInt64(OFF.epoch, BigInt(sb.epoch), true);
  v.setUint32(OFF.fixed_nsec, sb.fixedNsec, true);
  v.setUint32(OFF.blocks_lo, sb.blocks, true);
  v.setUint32(OFF.meta_blkaddr, sb.metaBlkAddr, true);
  v.setUint32(OFF.xattr_blkaddr, sb.xattrBlkAddr, true);
  new Uint8Array(v.buffer, v.byteOffset + OFF.uuid, 16).set(sb.uuid.subarray(0, 16));
  const name = Buffer.from(sb.volumeName, "utf8");
  if (name.length > 15) throw new RangeError(`Cannot encode superblock: volume name longer than 15 bytes`);
  new Uint8Array(v.buffer, v.byteOffset + OFF.volume_name, 16).set(name);
  v.setUint32(OFF.feature_incompat, sb.featureIncompat, true);
  v.setUint16(OFF.extra_devices, sb.extraDevices, true);
  v.setUint16(OFF.devt_slotoff, sb.devtSlotOff, true);
}

/** Computes and stores the checksum over block 0 from byte 1024 on; call after everything in block 0 is final. */
export function sealSuperBlock(block0: Uint8Array, blkSz: number): void {
  const v = new DataView(block0.buffer, block0.byteOffset);
  v.setUint32(EROFS_SUPER_OFFSET + OFF.checksum, 0, true);
  v.setUint32(EROFS_SUPER_OFFSET + OFF.checksum, superBlockCrc(block0, blkSz), true);
}

function superBlockCrc(block0: Uint8Array, blkSz: number): number {
  const len = blkSz > EROFS_SUPER_OFFSET ? blkSz - EROFS_SUPER_OFFSET : blkSz;
  const area = Uint8Array.from(block0.subarray(EROFS_SUPER_OFFSET, EROFS_SUPER_OFFSET + len));
  new DataView(area.buffer).setUint32(OFF.checksum, 0, true);
  return erofsCrc32c(area);
}

/**
 * Decodes and validates the superblock from the first bytes of an image (at least 1024 + 128;
 * pass the whole first block to have the checksum verified).
 */
export function decodeSuperBlock(head: Uint8Array): SuperBlock {
  if (head.byteLength < EROFS_SUPER_OFFSET + EROFS_SB_SIZE) {
    throw new EodError("EROFS_CORRUPTED", `Cannot read superblock: image has only ${head.byteLength} bytes`);
  }
  const v = new DataView(head.buffer, head.byteOffset + EROFS_SUPER_OFFSET, EROFS_SB_SIZE);
  const magic = v.getUint32(OFF.magic, true);
  if (magic !== EROFS_SUPER_MAGIC_V1) {
    throw new EodError("EROFS_CORRUPTED", `Cannot read superblock: bad magic 0x${magic.toString(16)} (not an EROFS image)`);
  }
  const blkSzBits = v.getUint8(OFF.blkszbits);
  if (blkSzBits < 9 || blkSzBits > 12) {
    throw new EodError("EROFS_CORRUPTED", `Cannot read superblock: blkszbits ${blkSzBits} outside 9..12`);
  }
  const blkSz = 1 << blkSzBits;
  const featureCompat = v.getUint32(OFF.feature_compat, true);
  if (featureCompat & EROFS_FEATURE_COMPAT_SB_CHKSUM) {
    const need = EROFS_SUPER_OFFSET + (blkSz > EROFS_SUPER_OFFSET ? blkSz - EROFS_SUPER_OFFSET : blkSz);
    if (head.byteLength < need) {
      throw new EodError("EROFS_CORRUPTED", `Cannot verify superblock checksum: image has only ${head.byteLength} bytes`);
    }
    const stored = v.getUint32(OFF.checksum, true);
    const computed = superBlockCrc(head, blkSz);
    if (stored !== computed) {
      throw new EodError("EROFS_CORRUPTED",
        `Superblock checksum mismatch: stored 0x${stored.toString(16)}, computed 0x${computed.toString(16)}`);
    }
  }
  const featureIncompat = v.getUint32(OFF.feature_incompat, true);
  const unsupported = featureIncompat & ~EROFS_SUPPORTED_INCOMPAT;
  if (unsupported) {
    const named = eachBit(unsupported).map((bit) => {
      const f = EROFS_FEATURES.find((k) => !k.compat && k.mask === bit);
      return f ? `${f.name} (0x${bit.toString(16)}: ${f.what})` : `unknown bit 0x${bit.toString(16)}`;
    });
    throw new EodError("EROFS_UNSUPPORTED",
      `Cannot read image: it needs EROFS features eod does not read: ${named.join(", ")} (eod reads uncompressed images, with chunk-based files and extra devices)`);
  }
  if (v.getUint8(OFF.dirblkbits) !== 0) {
    throw new EodError("EROFS_CORRUPTED", `Cannot read superblock: dirblkbits ${v.getUint8(OFF.dirblkbits)} is not 0`);
  }
  const extslots = v.getUint8(OFF.sb_extslots);
  if (128 + 16 * extslots > 4096 - EROFS_SUPER_OFFSET) {
    throw new EodError("EROFS_CORRUPTED", `Cannot read superblock: sb_extslots ${extslots} too large`);
  }
  const inos = v.getBigUint64(OFF.inos, true);
  const nameBytes = new Uint8Array(v.buffer, v.byteOffset + OFF.volume_name, 16);
  const nul = nameBytes.indexOf(0);
  return {
    featureCompat,
    blkSzBits,
    rootNid: v.getUint16(OFF.rootnid_2b, true),
    inos: inos > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(inos),
    epoch: Number(v.getBigInt64(OFF.epoch, true)),
    fixedNsec: v.getUint32(OFF.fixed_nsec, true),
    blocks: v.getUint32(OFF.blocks_lo, true),
    metaBlkAddr: v.getUint32(OFF.meta_blkaddr, true),
    xattrBlkAddr: v.getUint32(OFF.xattr_blkaddr, true),
    uuid: Uint8Array.from(new Uint8Array(v.buffer, v.byteOffset + OFF.uuid, 16)),
    volumeName: Buffer.from(nameBytes.subarray(0, nul < 0 ? 16 : nul)).toString("utf8"),
    featureIncompat,
    extraDevices: featureIncompat & EROFS_FEATURE_INCOMPAT_DEVICE_TABLE ? v.getUint16(OFF.extra_devices, true) : 0,
    devtSlotOff: v.getUint16(OFF.devt_slotoff, true),
  };
}

/** The names of the feature bits set (dump.erofs's short names); an unknown bit as "compat bit 0x…". */
export function featureNames(featureCompat: number, featureIncompat: number): string[] {
  const name = (compat: boolean, bit: number) =>
    EROFS_FEATURES.find((f) => f.compat === compat && f.mask === bit)?.name ?? `${compat ? "compat" : "incompat"} bit 0x${bit.toString(16)}`;
  return [...eachBit(featureCompat).map((b) => name(true, b)), ...eachBit(featureIncompat).map((b) => name(false, b))];
}

function eachBit(mask: number): number[] {
  const bits: number[] = [];
  for (let bit = 1; bit !== 0 && bit <= mask >>> 0; bit = (bit << 1) >>> 0) if ((mask >>> 0) & bit) bits.push(bit);
  return bits;
}
