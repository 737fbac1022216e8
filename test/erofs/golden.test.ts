// The worked example of spec-facts B.12: a 4096-byte image made by mkfs.erofs 1.5 (-x-1 -T0 -U 0123…cdef
// --all-root) holding "/" and "hello.txt". Encoding it with our encoders must reproduce mkfs's checksum
// 0xDEF5A5B0 (which covers every byte of block 0 from 1024 on), and decoding must give the fields back.
import { test } from "node:test";
import assert from "node:assert/strict";
import { EROFS_FEATURE_COMPAT_MTIME, EROFS_FEATURE_COMPAT_SB_CHKSUM, EROFS_FT_DIR, EROFS_FT_REG_FILE, EROFS_INODE_FLAT_INLINE, EROFS_NULL_ADDR } from "../../src/erofs/constants.ts";
import { decodeDirBlock, encodeDirBlock } from "../../src/erofs/dirent.ts";
import { decodeInode, encodeInode } from "../../src/erofs/inode.ts";
import { bufferSource, ErofsReader } from "../../src/erofs/reader.ts";
import { decodeSuperBlock, encodeSuperBlock, sealSuperBlock } from "../../src/erofs/super.ts";

function goldenBlock(): Uint8Array {
  const b = new Uint8Array(4096);
  encodeSuperBlock({
    featureCompat: EROFS_FEATURE_COMPAT_SB_CHKSUM | EROFS_FEATURE_COMPAT_MTIME, blkSzBits: 12, rootNid: 36, inos: 2,
    epoch: 0, fixedNsec: 0, blocks: 1, metaBlkAddr: 0, xattrBlkAddr: 0,
    uuid: Buffer.from("0123456789abcdef0123456789abcdef", "hex"), volumeName: "", featureIncompat: 0, extraDevices: 0, devtSlotOff: 0,
  }, b);
  const common = { extended: false, dataLayout: EROFS_INODE_FLAT_INLINE, xattrIcount: 0, iU: EROFS_NULL_ADDR, uid: 0, gid: 0, mtime: 0, mtimeNsec: 0 };
  encodeInode({ ...common, mode: 0o40755, nlink: 2, size: 48, ino: 0 }, b, 0x480);
  encodeDirBlock([
    { name: Buffer.from("."), nid: 36, fileType: EROFS_FT_DIR },
    { name: Buffer.from(".."), nid: 36, fileType: EROFS_FT_DIR },
    { name: Buffer.from("hello.txt"), nid: 39, fileType: EROFS_FT_REG_FILE },
  ], b, 0x4a0);
  encodeInode({ ...common, mode: 0o100644, nlink: 1, size: 6, ino: 1 }, b, 0x4e0);
  b.set(Buffer.from("hello\n"), 0x500);
  sealSuperBlock(b, 4096);
  return b;
}

test("encoders reproduce mkfs.erofs 1.5's block 0 (checksum 0xDEF5A5B0)", () => {
  const b = goldenBlock();
  assert.equal(Buffer.from(b.subarray(0x400, 0x408)).toString("hex"), "e2e1f5e0b0a5f5de");
  const rootInode = "0400" + "0000" + "ed41" + "0200" + "30000000" + "00000000" + "ffffffff" + "00000000" + "0000" + "0000" + "00000000";
  assert.equal(Buffer.from(b.subarray(0x480, 0x4a0)).toString("hex"), rootInode);
});

test("decodeSuperBlock() reads the golden fields and verifies the checksum", () => {
  const sb = decodeSuperBlock(goldenBlock());
  assert.equal(sb.rootNid, 36);
  assert.equal(sb.inos, 2);
  assert.equal(sb.blocks, 1);
  assert.equal(Buffer.from(sb.uuid).toString("hex"), "0123456789abcdef0123456789abcdef");
});

test("decodeSuperBlock() rejects a flipped byte anywhere in the checksummed area", () => {
  for (const at of [0x40c, 0x480, 0x4c4, 0x500, 0xfff]) {
    const b = goldenBlock();
    b[at] ^= 0x40;
    assert.throws(() => decodeSuperBlock(b), { code: "EROFS_CORRUPTED" }, `byte 0x${at.toString(16)}`);
  }
});

test("decodeInode() and decodeDirBlock() read the golden inodes and dirents", () => {
  const b = goldenBlock();
  const root = decodeInode(b, 0x480, 36);
  assert.equal(root.mode, 0o40755);
  assert.equal(root.size, 48);
  const names = decodeDirBlock(b.subarray(0x4a0, 0x4a0 + 48), 48, 36, 0).map((d) => Buffer.from(d.name).toString());
  assert.deepEqual(names, [".", "..", "hello.txt"]);
});

test("ErofsReader reads hello.txt of the golden image", () => {
  const r = new ErofsReader(bufferSource(goldenBlock()));
  const f = r.lookup("/hello.txt");
  assert.equal(Buffer.from(r.read(f, 0, 100)).toString(), "hello\n");
  assert.deepEqual([...r.walk()].map((e) => e.path.map((n) => Buffer.from(n).toString()).join("/")), ["", "hello.txt"]);
});
