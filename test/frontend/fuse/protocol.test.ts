// FUSE protocol encode/decode against golden bytes written by hand from include/uapi/linux/fuse.h's structs
// (little-endian; each line of hex is one field, named in the comment).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  decodeRequest, encodeAttrOut, encodeDirents, encodeEntryOut, encodeInitOut, encodeNotify, encodeOpenOut,
  encodeOutHeader, encodeStatfsOut, expectsNoReply, FOPEN_KEEP_CACHE, FUSE_ASYNC_READ, FUSE_ATTR_OUT_LEN,
  FUSE_ENTRY_OUT_LEN, FUSE_INIT_EXT, FUSE_INIT_OUT_LEN, FUSE_KSTATFS_LEN, FUSE_MAX_PAGES, FUSE_NOTIFY_RESEND,
  FUSE_OPEN_OUT_LEN, FUSE_PARALLEL_DIROPS, FuseProtocolError, negotiateInit,
} from "../../../src/frontend/fuse/protocol.ts";

const hex = (...fields: string[]) => Buffer.from(fields.join("").replace(/\s+/g, ""), "hex");

/** struct fuse_in_header (40 bytes) for a request of `len` bytes. */
function inHeader(len: number, opcode: number, unique: string, nodeid: string): string[] {
  const u32 = (v: number) => Buffer.from(Uint32Array.of(v).buffer).toString("hex");
  return [
    u32(len), // len
    u32(opcode), // opcode
    unique, // unique (u64)
    nodeid, // nodeid (u64)
    "e8030000", // uid 1000
    "e9030000", // gid 1001
    "39300000", // pid 12345
    "0000", // total_extlen
    "0000", // padding
  ];
}

test("INIT in (7.45, 64 bytes with flags2) decodes; the reply is the 64-byte fuse_init_out", () => {
  const req = hex(...inHeader(104, 26, "0200000000000000", "0000000000000000"),
    "07000000", // major 7
    "2d000000", // minor 45
    "00000200", // max_readahead 131072
    "fbffff73", // flags 0x73fffffb (as Linux 6.18 offers; FUSE_INIT_EXT set)
    "fd050000", // flags2 0x5fd
    "00".repeat(44)); // unused[11]
  const r = decodeRequest(req, req.length);
  assert.equal(r.op, "init");
  if (r.op !== "init") return;
  assert.deepEqual(r.header, { len: 104, opcode: 26, unique: 2n, nodeid: 0n, uid: 1000, gid: 1001, pid: 12345 });
  assert.deepEqual(r.init, { major: 7, minor: 45, maxReadahead: 131072, flags: 0x5fd_73fffffbn });
  const out = negotiateInit(r.init, { maxRead: 1 << 20, maxWrite: 128 << 10, maxBackground: 64 });
  assert.equal(out.minor, 31, "we speak 7.31 to a 7.45 kernel");
  assert.equal(out.flags, BigInt(FUSE_ASYNC_READ | FUSE_MAX_PAGES | FUSE_PARALLEL_DIROPS));
  assert.deepEqual(encodeInitOut(out), hex(
    "07000000", // major
    "1f000000", // minor 31
    "00000200", // max_readahead: all the kernel offered
    "01004400", // flags: ASYNC_READ | PARALLEL_DIROPS | MAX_PAGES
    "4000", // max_background 64
    "3000", // congestion_threshold 48
    "00000200", // max_write 131072
    "01000000", // time_gran
    "0001", // max_pages 256
    "0000", // map_alignment
    "00000000", // flags2
    "00".repeat(28))); // unused[7]
  assert.equal(FUSE_INIT_OUT_LEN, 64);
});

test("INIT from an old kernel (16-byte fuse_init_in) decodes; flags only what it offered", () => {
  const req = hex(...inHeader(56, 26, "0100000000000000", "0000000000000000"), "07000000", "1a000000", "00000100", "01000000");
  const r = decodeRequest(req, req.length);
  assert.ok(r.op === "init");
  assert.deepEqual(r.init, { major: 7, minor: 26, maxReadahead: 65536, flags: 1n });
  const out = negotiateInit(r.init, { maxRead: 1 << 20, maxWrite: 128 << 10, maxBackground: 64 });
  assert.equal(out.minor, 26);
  assert.equal(out.flags, 1n);
  assert.equal(FUSE_INIT_EXT, 0x4000_0000);
});

test("LOOKUP: the name up to its NUL; a name without one is refused with the request's unique", () => {
  const name = Buffer.from("ab12\0").toString("hex");
  const req = hex(...inHeader(45, 1, "0a00000000000000", "0100000000000000"), name);
  const r = decodeRequest(req, req.length);
  assert.ok(r.op === "lookup");
  assert.equal(r.name, "ab12");
  assert.equal(r.header.nodeid, 1n);
  const bad = hex(...inHeader(44, 1, "0b00000000000000", "0100000000000000"), Buffer.from("ab12").toString("hex"));
  assert.throws(() => decodeRequest(bad, bad.length), (e: unknown) => e instanceof FuseProtocolError && e.unique === 11n && e.opcode === 1);
});

test("READ: fuse_read_in (40 bytes); a length that disagrees with what was read is refused", () => {
  const req = hex(...inHeader(80, 15, "0000000000000080", "efcdab8967452301"), // unique with FUSE_UNIQUE_RESEND set
    "0700000000000000", // fh 7
    "0000100000000000", // offset 1 MiB
    "00000200", // size 128 KiB
    "00000000", // read_flags
    "0000000000000000", // lock_owner
    "00800000", // flags O_LARGEFILE
    "00000000"); // padding
  const r = decodeRequest(req, req.length);
  assert.ok(r.op === "read");
  assert.equal(r.header.unique, 1n << 63n);
  assert.equal(r.header.nodeid, 0x0123456789abcdefn);
  assert.deepEqual(r.read, { fh: 7n, offset: 1 << 20, size: 128 << 10, flags: 0x8000 });
  assert.throws(() => decodeRequest(req, 79), FuseProtocolError);
  assert.throws(() => decodeRequest(req.subarray(0, 30), 30), /shorter than its header/);
});

test("OPEN, INTERRUPT, FORGET, an unknown opcode", () => {
  const open = hex(...inHeader(48, 14, "0300000000000000", "0500000000000000"), "00800000", "00000000");
  const o = decodeRequest(open, open.length);
  assert.ok(o.op === "open");
  assert.equal(o.openFlags, 0x8000);
  const intr = hex(...inHeader(48, 36, "0500000000000000", "0000000000000000"), "0300000000000000");
  const i = decodeRequest(intr, intr.length);
  assert.ok(i.op === "interrupt");
  assert.equal(i.interrupted, 3n);
  assert.equal(expectsNoReply(i), true);
  const forget = hex(...inHeader(48, 2, "0600000000000000", "0500000000000000"), "0100000000000000");
  assert.equal(expectsNoReply(decodeRequest(forget, forget.length)), true);
  const mkdir = hex(...inHeader(40, 9, "0700000000000000", "0100000000000000"));
  assert.equal(decodeRequest(mkdir, mkdir.length).op, "other");
});

test("out header: length, -errno, unique; a notification carries the code and unique 0", () => {
  assert.deepEqual(encodeOutHeader(0x1122334455667788n, 5), hex("10000000", "fbffffff", "8877665544332211"));
  assert.deepEqual(encodeOutHeader(9n, 0, 4096), hex("10100000", "00000000", "0900000000000000"));
  assert.deepEqual(encodeNotify(FUSE_NOTIFY_RESEND), hex("10000000", "07000000", "0000000000000000"));
});

const attr = { ino: 0x42n, size: 1000, mode: 0o100444, nlink: 1 };
const attrBytes = [
  "4200000000000000", // ino
  "e803000000000000", // size 1000
  "0200000000000000", // blocks: 2 × 512
  "00".repeat(24), // atime, mtime, ctime
  "00".repeat(12), // atimensec, mtimensec, ctimensec
  "24810000", // mode 0100444
  "01000000", // nlink
  "00000000", // uid
  "00000000", // gid
  "00000000", // rdev
  "00100000", // blksize 4096
  "00000000", // flags
];

test("entry_out (128 bytes) and attr_out (104 bytes) around fuse_attr (88 bytes)", () => {
  const e = encodeEntryOut(0x42n, 1n, { seconds: 86400 }, attr);
  assert.equal(e.length, FUSE_ENTRY_OUT_LEN);
  assert.deepEqual(e, hex(
    "4200000000000000", // nodeid
    "0100000000000000", // generation
    "8051010000000000", // entry_valid 86400
    "8051010000000000", // attr_valid
    "00000000", // entry_valid_nsec
    "00000000", // attr_valid_nsec
    ...attrBytes));
  const a = encodeAttrOut({ seconds: 86400 }, attr);
  assert.equal(a.length, FUSE_ATTR_OUT_LEN);
  assert.deepEqual(a, hex("8051010000000000", "00000000", "00000000", ...attrBytes));
});

test("open_out, statfs_out", () => {
  assert.equal(FUSE_OPEN_OUT_LEN, 16);
  assert.deepEqual(encodeOpenOut(0n, FOPEN_KEEP_CACHE), hex("0000000000000000", "02000000", "00000000"));
  const s = encodeStatfsOut({ blocks: 10, files: 3, bsize: 4096, namelen: 255 });
  assert.equal(s.length, FUSE_KSTATFS_LEN);
  assert.deepEqual(s, hex(
    "0a00000000000000", // blocks
    "0000000000000000", // bfree
    "0000000000000000", // bavail
    "0300000000000000", // files
    "0000000000000000", // ffree
    "00100000", // bsize
    "ff000000", // namelen
    "00100000", // frsize
    "00000000", // padding
    "00".repeat(24))); // spare[6]
});

test("dirents: 24-byte header, name, padded to 8; off = index of the next; stops at the size", () => {
  const entries = [{ ino: 1n, name: ".", type: 4 }, { ino: 1n, name: "..", type: 4 }, { ino: 0x42n, name: "abcdefghi", type: 8 }];
  const all = encodeDirents(entries, 0, 4096);
  assert.deepEqual(all, hex(
    "0100000000000000", "0100000000000000", "01000000", "04000000", "2e", "00".repeat(7),
    "0100000000000000", "0200000000000000", "02000000", "04000000", "2e2e", "00".repeat(6),
    "4200000000000000", "0300000000000000", "09000000", "08000000", Buffer.from("abcdefghi").toString("hex"), "00".repeat(7)));
  assert.equal(encodeDirents(entries, 1, 4096).length, 32 + 40, "from the second entry on");
  assert.equal(encodeDirents(entries, 0, 70).length, 64, "only whole records that fit");
  assert.equal(encodeDirents(entries, 3, 4096).length, 0, "past the end: empty");
});
