// erofs_deviceslot (erofs_fs.h), 128 B each, at byte devt_slotoff * 128 of the primary device:
// 0 tag[64] (blob id, NUL padded), 64 le32 blocks_lo, 68 le32 uniaddr_lo (mapped_blkaddr before 6.15),
// 72 le16 blocks_hi, 74 le16 uniaddr_hi, 76 reserved[52].
import { EodError } from "../errors.ts";
import { EROFS_DEVT_SLOT_SIZE } from "./constants.ts";

export interface DeviceSlot {
  /** Up to 64 bytes; our blob ids are 64 hex digits, the cookie name in fscache mode. */
  tag: string;
  blocks: number;
  /** First block of this device in the unified address space (0 = not mapped there). */
  uniAddr: number;
}

export function encodeDeviceSlot(d: DeviceSlot, out: Uint8Array, at: number): void {
  const tag = Buffer.from(d.tag, "utf8");
  if (tag.length > 64) throw new RangeError(`Cannot encode device tag longer than 64 bytes: ${d.tag}`);
  out.fill(0, at, at + EROFS_DEVT_SLOT_SIZE);
  out.set(tag, at);
  const v = new DataView(out.buffer, out.byteOffset + at, EROFS_DEVT_SLOT_SIZE);
  v.setUint32(64, d.blocks, true);
  v.setUint32(68, d.uniAddr, true);
}

export function decodeDeviceSlot(buf: Uint8Array, at: number, index: number): DeviceSlot {
  if (at + EROFS_DEVT_SLOT_SIZE > buf.byteLength) {
    throw new EodError("EROFS_CORRUPTED", `Cannot read device slot ${index}: past the end of the image`);
  }
  const raw = buf.subarray(at, at + 64);
  const nul = raw.indexOf(0);
  const v = new DataView(buf.buffer, buf.byteOffset + at, EROFS_DEVT_SLOT_SIZE);
  return {
    tag: Buffer.from(raw.subarray(0, nul < 0 ? 64 : nul)).toString("utf8"),
    blocks: v.getUint32(64, true),
    uniAddr: v.getUint32(68, true),
  };
}
