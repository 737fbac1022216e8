import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeChunkFormat, decodeChunkIndex, encodeChunkFormat, encodeChunkIndex } from "../../src/erofs/chunk.ts";
import { EROFS_INODE_CHUNK_BASED } from "../../src/erofs/constants.ts";
import { decodeDeviceSlot, encodeDeviceSlot } from "../../src/erofs/devt.ts";
import { decodeDirBlock, encodeDirBlock, planDirBlocks } from "../../src/erofs/dirent.ts";
import { decodeInode, decodeRdev, encodeInode, encodeRdev, type Inode } from "../../src/erofs/inode.ts";
import { decodeXattrs, encodeXattrs, splitXattrName, xattrAreaSize } from "../../src/erofs/xattr.ts";

test("encodeChunkIndex() writes golden bytes and decodeChunkIndex() reads them back", () => {
  const buf = new Uint8Array(16);
  const v = new DataView(buf.buffer);
  encodeChunkIndex({ startBlk: 0x12345678, deviceId: 2 }, v, 0);
  encodeChunkIndex(null, v, 8);
  assert.equal(Buffer.from(buf).toString("hex"), "0000020078563412" + "00000000ffffffff");
  assert.deepEqual(decodeChunkIndex(v, 0), { startBlk: 0x12345678, deviceId: 2 });
  assert.equal(decodeChunkIndex(v, 8), null);
});

test("chunk format: bits relative to the block size, INDEXES flag; 48-bit refused", () => {
  assert.equal(encodeChunkFormat({ chunkBits: 20, indexes: true }, 12), 8 | 0x20);
  assert.deepEqual(decodeChunkFormat(0x28, 12, 1), { chunkBits: 20, indexes: true });
  assert.throws(() => decodeChunkFormat(0x40 | 0x20, 12, 7), { code: "EROFS_UNSUPPORTED" });
});

test("encodeRdev() follows new_encode_dev() for 12-bit majors and 20-bit minors", () => {
  assert.equal(encodeRdev(1, 3), 0x103);
  assert.equal(encodeRdev(4095, 1048575), 0xffffffff);
  for (const [ma, mi] of [[0, 0], [259, 65536], [4095, 1048575], [8, 300]]) assert.deepEqual(decodeRdev(encodeRdev(ma, mi)), { major: ma, minor: mi });
});

test("inodes round-trip in compact and extended form", () => {
  const base: Inode = { extended: true, dataLayout: EROFS_INODE_CHUNK_BASED, xattrIcount: 3, mode: 0o104755, nlink: 70000, size: 5 * 2 ** 30, iU: 0x28, ino: 9, uid: 100000, gid: 200000, mtime: -1_000_000_000, mtimeNsec: 123456789 };
  const buf = new Uint8Array(64);
  encodeInode(base, buf, 0);
  assert.deepEqual(decodeInode(buf, 0, 5), base);
  const compact = { ...base, extended: false, nlink: 3, size: 4097, uid: 65535, gid: 0, mtime: 0, mtimeNsec: 0 };
  encodeInode(compact, buf, 0);
  assert.deepEqual(decodeInode(buf, 0, 5), compact);
  assert.throws(() => encodeInode({ ...compact, uid: 65536 }, buf, 0), RangeError);
});

test("decodeInode() separates unsupported layouts from corruption", () => {
  const buf = new Uint8Array(64);
  encodeInode({ extended: false, dataLayout: 0, xattrIcount: 0, mode: 0o100644, nlink: 1, size: 1, iU: 0, ino: 1, uid: 0, gid: 0, mtime: 0, mtimeNsec: 0 }, buf, 0);
  buf[0] = 3 << 1; // compressed compact
  assert.throws(() => decodeInode(buf, 0, 1), { code: "EROFS_UNSUPPORTED" });
  buf[0] = 0;
  buf[5] = 0xf0; // mode type 0o170000
  assert.throws(() => decodeInode(buf, 0, 1), { code: "EROFS_CORRUPTED", message: /nid|inode 1/ });
});

test("planDirBlocks() never lets a dirent or name cross a block and counts i_size", () => {
  const names = Array.from({ length: 1000 }, (_, i) => Buffer.from(`entry-${String(i).padStart(5, "0")}-${"x".repeat(i % 200)}`));
  const { blocks, size } = planDirBlocks(names, 4096);
  let last = 0;
  for (const [a, b] of blocks) {
    const used = names.slice(a, b).reduce((n, x) => n + 12 + x.length, 0);
    assert.ok(used <= 4096);
    last = used;
  }
  assert.equal(size, (blocks.length - 1) * 4096 + last);
  const out = new Uint8Array(4096);
  const [a, b] = blocks[1];
  const ents = names.slice(a, b).map((name, k) => ({ name, nid: 100 + k, fileType: 1 }));
  encodeDirBlock(ents, out, 0);
  assert.deepEqual(decodeDirBlock(out, 4096, 1, 1).map((d) => Buffer.from(d.name).toString()), ents.map((e) => e.name.toString()));
});

test("decodeDirBlock() rejects bogus name offsets", () => {
  const out = new Uint8Array(64);
  encodeDirBlock([{ name: Buffer.from("a"), nid: 1, fileType: 1 }, { name: Buffer.from("b"), nid: 2, fileType: 1 }], out, 0);
  out[20] = 200; // second nameoff past the block
  assert.throws(() => decodeDirBlock(out, 64, 9, 0), { code: "EROFS_CORRUPTED" });
});

test("xattrs: every namespace round-trips; unknown prefixes are not storable", () => {
  const xs = [
    { name: "user.a", value: Buffer.from("1") },
    { name: "trusted.overlay.opaque", value: Buffer.from("y") },
    { name: "security.capability", value: Buffer.alloc(20, 7) },
    { name: "system.posix_acl_access", value: Buffer.alloc(28, 2) },
    { name: "system.posix_acl_default", value: Buffer.alloc(0) },
  ];
  const buf = new Uint8Array(xattrAreaSize(xs));
  encodeXattrs(xs, buf, 0);
  assert.deepEqual(decodeXattrs(buf, 1).map((x) => [x.name, Buffer.from(x.value).toString("hex")]), xs.map((x) => [x.name, x.value.toString("hex")]));
  assert.equal(splitXattrName("system.nfs4_acl"), null);
  assert.equal(splitXattrName("user."), null);
});

test("device slots round-trip a 64-character tag", () => {
  const out = new Uint8Array(128);
  const slot = { tag: "a".repeat(64), blocks: 123, uniAddr: 7 };
  encodeDeviceSlot(slot, out, 0);
  assert.deepEqual(decodeDeviceSlot(out, 0, 0), slot);
});
