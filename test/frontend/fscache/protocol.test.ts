import { test } from "node:test";
import assert from "node:assert/strict";
import { EodError } from "../../../src/errors.ts";
import {
  CachefilesParseError,
  encodeCopen,
  parseMessage,
  volumeKeyOf,
} from "../../../src/frontend/fscache/protocol.ts";
import { CACHEFILES_MSG_MAX_SIZE } from "../../../src/sys/cachefiles.ts";

// Messages laid out by hand from include/uapi/linux/cachefiles.h (x86_64, little-endian):
// header  u32 msg_id | u32 opcode | u32 len | u32 object_id
// OPEN    u32 volume_key_size (incl. NUL) | u32 cookie_key_size (no NUL) | u32 fd | u32 flags | keys
// READ    u64 off | u64 len

// OPEN msg 0, object 1, fd 18: volume "erofs,plainimg\0" (15), cookie "plainimg" (8): len 32+15+8 = 55.
const OPEN_HEX =
  "00000000" + "00000000" + "37000000" + "01000000" +
  "0f000000" + "08000000" + "12000000" + "00000000" +
  Buffer.from("erofs,plainimg\0plainimg", "latin1").toString("hex");
// READ msg 2, object 1: off 4096, len 65536.
const READ_HEX = "02000000" + "02000000" + "20000000" + "01000000" + "0010000000000000" + "0000010000000000";
// CLOSE msg 9, object 1.
const CLOSE_HEX = "09000000" + "01000000" + "10000000" + "01000000";

// Read from /dev/cachefiles on Linux 6.12.117 (kernel lab, x86_64) by test/vm/fscache-smoke.ts: the
// OPEN of the primary blob of `mount -t erofs none -o fsid=<F>,device=<blob id>` (msg 0, object 1,
// anon fd 23; key sizes 71 = "erofs," + 64 + NUL and 64: len 167), its first READ (the superblock
// page) and a CLOSE at umount (msg 323, object 2).
const F = "daaf639213836c5b36337e652817fe0df9350417c95888fc648425e83e70f587";
const KERNEL_OPEN = "00000000" + "00000000" + "a7000000" + "01000000" + "47000000" + "40000000" + "17000000" + "00000000" +
  Buffer.from(`erofs,${F}\0${F}`, "latin1").toString("hex");
const KERNEL_READ = "0100000002000000200000000100000000000000000000000010000000000000";
const KERNEL_CLOSE = "43010000010000001000000002000000";

function hex(s: string): Uint8Array {
  return Uint8Array.from(Buffer.from(s, "hex"));
}

/** An OPEN built field by field; every size field may be overridden to lie. */
function openMsg(o: { msgId?: number; objectId?: number; volume?: string; cookie?: string; vks?: number; cks?: number; len?: number; fd?: number; flags?: number }): Buffer {
  const vol = Buffer.from((o.volume ?? "erofs,img") + "\0", "latin1");
  const cookie = Buffer.from(o.cookie ?? "img", "latin1");
  const b = Buffer.alloc(32 + vol.length + cookie.length);
  b.writeUInt32LE(o.msgId ?? 5, 0);
  b.writeUInt32LE(0, 4);
  b.writeUInt32LE(o.len ?? b.length, 8);
  b.writeUInt32LE(o.objectId ?? 3, 12);
  b.writeUInt32LE(o.vks ?? vol.length, 16);
  b.writeUInt32LE(o.cks ?? cookie.length, 20);
  b.writeInt32LE(o.fd ?? 21, 24);
  b.writeUInt32LE(o.flags ?? 0, 28);
  vol.copy(b, 32);
  cookie.copy(b, 32 + vol.length);
  return b;
}

function rejects(buf: Uint8Array, length: number, pattern: RegExp, expect: { msgId?: number | null; fd?: number | null; opcode?: number | null } = {}): void {
  assert.throws(() => parseMessage(buf, length), (err: unknown) => {
    assert.ok(err instanceof CachefilesParseError, String(err));
    assert.ok(err instanceof EodError);
    assert.equal(err.code, "KERNEL_UNSUPPORTED");
    assert.match(err.message, pattern);
    if (expect.msgId !== undefined) assert.equal(err.msgId, expect.msgId);
    if (expect.fd !== undefined) assert.equal(err.fd, expect.fd);
    if (expect.opcode !== undefined) assert.equal(err.opcode, expect.opcode);
    return true;
  });
}

test("parseMessage decodes the messages a 6.12 kernel sent", () => {
  assert.equal(KERNEL_OPEN.length / 2, 167);
  assert.deepEqual(parseMessage(hex(KERNEL_OPEN), 167), {
    msgId: 0,
    opcode: "open",
    objectId: 1,
    open: { volumeKey: `erofs,${F}`, cookieKey: F, fd: 23, flags: 0 },
  });
  assert.deepEqual(parseMessage(hex(KERNEL_READ), 32), { msgId: 1, opcode: "read", objectId: 1, read: { offset: 0, length: 4096 } });
  assert.deepEqual(parseMessage(hex(KERNEL_CLOSE), 16), { msgId: 323, opcode: "close", objectId: 2 });
  assert.equal(volumeKeyOf(F), `erofs,${F}`);
});

test("parseMessage decodes an OPEN: keys without the NUL, anon fd, flags", () => {
  const b = hex(OPEN_HEX);
  assert.equal(b.length, 55);
  assert.deepEqual(parseMessage(b, 55), {
    msgId: 0,
    opcode: "open",
    objectId: 1,
    open: { volumeKey: "erofs,plainimg", cookieKey: "plainimg", fd: 18, flags: 0 },
  });
});

test("parseMessage decodes a READ and a CLOSE", () => {
  assert.deepEqual(parseMessage(hex(READ_HEX), 32), { msgId: 2, opcode: "read", objectId: 1, read: { offset: 4096, length: 65536 } });
  assert.deepEqual(parseMessage(hex(CLOSE_HEX), 16), { msgId: 9, opcode: "close", objectId: 1 });
});

test("parseMessage reads only `length` bytes of a reused buffer and honours its byteOffset", () => {
  const backing = new Uint8Array(5 + CACHEFILES_MSG_MAX_SIZE).fill(0xee);
  backing.set(hex(READ_HEX), 5);
  const view = backing.subarray(5);
  assert.deepEqual(parseMessage(view, 32).read, { offset: 4096, length: 65536 });
  backing.set(hex(OPEN_HEX), 5); // a longer message in the same buffer, trailing 0xee after it
  assert.equal(parseMessage(view, 55).open?.cookieKey, "plainimg");
  assert.throws(() => parseMessage(view, view.length + 1), RangeError);
  assert.throws(() => parseMessage(view, -1), RangeError);
});

test("parseMessage takes u32 fields unsigned and the largest real keys", () => {
  const vol = "erofs," + "v".repeat(249); // 255 bytes + NUL = 256
  const cookie = "c".repeat(255);
  const b = openMsg({ msgId: 0xffff_fffe, objectId: 0x7fff_ffff, volume: vol, cookie, flags: 0x8000_0000 });
  assert.equal(b.length, 32 + 256 + 255);
  assert.deepEqual(parseMessage(b, b.length), {
    msgId: 0xffff_fffe,
    opcode: "open",
    objectId: 0x7fff_ffff,
    open: { volumeKey: vol, cookieKey: cookie, fd: 21, flags: 0x8000_0000 },
  });
  // An empty cookie key is well formed (erofs refuses empty tags itself).
  assert.equal(parseMessage(openMsg({ cookie: "" }), 32 + 10).open?.cookieKey, "");
  // A 64-hex-digit blob id as the cookie key (device= string / device slot tag).
  const id = "961bab1a673855dd7f71ae383d7fa3f2cc7db918187a4007c37760ba6963a6d4";
  assert.equal(parseMessage(openMsg({ cookie: id }), 32 + 10 + 64).open?.cookieKey, id);
});

test("parseMessage refuses truncated messages, naming what the caller must still answer", () => {
  const open = hex(OPEN_HEX);
  rejects(open, 0, /header needs 16/, { msgId: null, fd: null });
  rejects(open, 15, /header needs 16/, { msgId: null });
  rejects(open, 16, /len says 55 bytes, read returned 16/, { msgId: 0, opcode: 0, fd: null });
  // Long enough to hold the fd: the kernel installed it, so the caller gets it to close.
  rejects(open, 40, /len says 55 bytes, read returned 40/, { msgId: 0, fd: 18 });
  rejects(hex(READ_HEX), 24, /len says 32 bytes, read returned 24/, { msgId: 2, opcode: 2, fd: null });
  // `len` agreeing with a short read is still too short for an OPEN.
  const short = Buffer.from(open.subarray(0, 24));
  short.writeUInt32LE(24, 8);
  rejects(short, 24, /OPEN needs at least 32/, { msgId: 0 });
});

test("parseMessage refuses a lying volume_key_size or cookie_key_size", () => {
  const n = 32 + 10 + 3; // "erofs,img\0" + "img"
  rejects(openMsg({ vks: 11 }), n, /volume_key_size 11 \+ cookie_key_size 3 do not add up to 13/, { msgId: 5, fd: 21 });
  rejects(openMsg({ vks: 0xffff_ffff }), n, /volume_key_size 4294967295/);
  rejects(openMsg({ cks: 4 }), n, /cookie_key_size 4 do not add up/);
  rejects(openMsg({ vks: 0, cks: 13 }), n, /must hold at least its NUL/);
  // Sizes that add up but put the NUL in the wrong place: the volume key must end with its NUL.
  rejects(openMsg({ vks: 9, cks: 4 }), n, /does not end with a NUL/, { fd: 21 });
  rejects(openMsg({ vks: 11, cks: 2 }), n, /does not end with a NUL/);
  // A NUL inside the volume key (the kernel's key is a C string).
  rejects(openMsg({ volume: "erofs\0img" }), n, /NUL at byte 5/);
  rejects(openMsg({ fd: -1 }), n, /fd -1 is not a file descriptor/, { fd: null });
  rejects(openMsg({ len: n + 1 }), n, /len says 46 bytes, read returned 45/, { fd: 21 });
});

test("parseMessage refuses READ and CLOSE of the wrong size and READs beyond 2^53", () => {
  const read = Buffer.from(hex(READ_HEX));
  const long = Buffer.concat([read, Buffer.alloc(8)]);
  long.writeUInt32LE(40, 8);
  rejects(long, 40, /a READ is 32 bytes/, { msgId: 2 });
  const close = Buffer.concat([Buffer.from(hex(CLOSE_HEX)), Buffer.alloc(4)]);
  close.writeUInt32LE(20, 8);
  rejects(close, 20, /a CLOSE is 16 bytes/, { msgId: 9 });
  const far = Buffer.from(read);
  far.writeBigUInt64LE(2n ** 53n - 4096n, 16);
  far.writeBigUInt64LE(8192n, 24);
  rejects(far, 32, /ends beyond 2\^53/);
  far.writeBigUInt64LE(2n ** 53n - 16384n, 16);
  assert.deepEqual(parseMessage(far, 32).read, { offset: 2 ** 53 - 16384, length: 8192 });
});

test("parseMessage refuses an unknown opcode with an EodError", () => {
  const b = Buffer.from(hex(CLOSE_HEX));
  b.writeUInt32LE(3, 4);
  rejects(b, 16, /unknown opcode 3/, { msgId: 9, opcode: 3, fd: null });
});

test("encodeCopen writes the copen command: size, or a negative errno", () => {
  assert.equal(encodeCopen(0, 4096), "copen 0,4096");
  assert.equal(encodeCopen(0xffff_ffff, 0), "copen 4294967295,0");
  assert.equal(encodeCopen(7, 5 * 2 ** 30), "copen 7,5368709120");
  assert.equal(encodeCopen(7, -2), "copen 7,-2");
  assert.equal(encodeCopen(7, -4095), "copen 7,-4095");
  assert.throws(() => encodeCopen(7, -4096), RangeError);
  assert.throws(() => encodeCopen(7, 1.5), RangeError);
  assert.throws(() => encodeCopen(7, 2 ** 53), RangeError);
  assert.throws(() => encodeCopen(-1, 0), RangeError);
  assert.throws(() => encodeCopen(2 ** 32, 0), RangeError);
});

test("volumeKeyOf prefixes erofs, and refuses names a mount option or the kernel cannot carry", () => {
  assert.equal(volumeKeyOf("myimage"), "erofs,myimage");
  assert.equal(volumeKeyOf("x".repeat(249)).length, 255);
  assert.throws(() => volumeKeyOf("x".repeat(250)), RangeError);
  assert.throws(() => volumeKeyOf(""), RangeError);
  assert.throws(() => volumeKeyOf("a,b"), RangeError);
  assert.throws(() => volumeKeyOf("a\0b"), RangeError);
});
