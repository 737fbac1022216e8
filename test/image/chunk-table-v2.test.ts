// Chunk table version 2, a layer's seek index (src/image/chunk-table.ts): golden bytes both ways, version 1
// unchanged, and every kind of corruption refused by name.
import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeChunkTable, encodeChunkTable, type ChunkEntry, type ChunkTable } from "../../src/image/chunk-table.ts";

const V2: ChunkTable = {
  version: 2, compression: "gzip", blkSzBits: 9, kernelSize: 5120, remoteSize: 400,
  entries: [
    { plainOffset: 0, remoteOffset: 10, plainSize: 4096, remoteSize: 300, flags: 0, digest: new Uint8Array(32).fill(0x11), skip: 0, bits: 0 },
    { plainOffset: 4096, remoteOffset: 200, plainSize: 1000, remoteSize: 150, flags: 0, digest: new Uint8Array(32).fill(0x22), skip: 123, bits: 5 },
  ],
  windows: [new Uint8Array(0), Uint8Array.from([0xaa, 0xbb, 0xcc])],
};

const GOLDEN_V2 = Buffer.from([
  "454f444354414231 02000000 02000000 03 09 000000000000 0014000000000000", // magic, version 2, 2 entries, gzip, 2^9, reserved, kernel 5120
  "9001000000000000 0300000000000000 0000000000000000 0000000000000000", // remote 400, 3 window bytes, reserved
  "0000000000000000 0a00000000000000 00100000 2c010000 00000000 0000 00 00", // span 0: plain 0, remote 10, 4096, 300, flags, skip 0, bits 0
  "1111111111111111111111111111111111111111111111111111111111111111",
  "0010000000000000 c800000000000000 e8030000 96000000 00000000 7b00 05 00", // span 1: plain 4096, remote 200 (overlaps), 1000, 150, skip 123, bits 5
  "2222222222222222222222222222222222222222222222222222222222222222",
  "00000000 03000000 aabbcc", // window directory (0, 3 bytes), then the windows
].join("").replaceAll(" ", ""), "hex");

/** A version 1 table as encoded before version 2 existed (the encoder of commit 0b5c1eb): still the same bytes. */
const V1: ChunkTable = {
  compression: "lz4", blkSzBits: 12, kernelSize: 3 * 4096, remoteSize: 150,
  entries: [
    { plainOffset: 0, remoteOffset: 0, plainSize: 5000, remoteSize: 100, flags: 0, digest: new Uint8Array(32).fill(1) },
    { plainOffset: 8192, remoteOffset: 100, plainSize: 50, remoteSize: 50, flags: 1, digest: new Uint8Array(32).fill(2) },
  ],
};
const GOLDEN_V1 = Buffer.from(
  "454f4443544142310100000002000000020c000000000000003000000000000096000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000088130000640000000000000000000000010101010101010101010101010101010101010101010101010101010101010100200000000000006400000000000000320000003200000001000000000000000202020202020202020202020202020202020202020202020202020202020202",
  "hex",
);

test("a version 2 table encodes to its golden bytes and decodes back", () => {
  assert.deepEqual(encodeChunkTable(V2), GOLDEN_V2);
  assert.deepEqual(decodeChunkTable(GOLDEN_V2, "t"), V2);
});

test("version 1 tables keep their bytes and decode without the version 2 fields", () => {
  assert.deepEqual(encodeChunkTable(V1), GOLDEN_V1);
  const back = decodeChunkTable(GOLDEN_V1, "t");
  assert.deepEqual(back, V1);
  assert.equal(back.version, undefined);
  assert.equal("windows" in back, false);
});

test("zstd and none tables of version 2 round-trip", () => {
  for (const compression of ["zstd", "none"] as const) {
    const t: ChunkTable = {
      ...V2, compression, remoteSize: compression === "none" ? 5096 : 400, windows: [new Uint8Array(0), new Uint8Array(0)],
      entries: V2.entries.map((e) => ({ ...e, bits: 0, skip: compression === "none" ? 0 : e.skip, ...(compression === "none" ? { remoteOffset: e.plainOffset, remoteSize: e.plainSize } : {}) })),
    };
    assert.deepEqual(decodeChunkTable(encodeChunkTable(t), "t"), t);
  }
});

/** GOLDEN_V2 with `edit` applied to a copy. */
function mutated(edit: (b: Buffer) => void): Buffer {
  const b = Buffer.from(GOLDEN_V2);
  edit(b);
  return b;
}

const SPAN1 = 64 + 64;

test("decodeChunkTable() refuses every kind of broken version 2 table, naming what is wrong", () => {
  const cases: [string, Buffer, RegExp][] = [
    ["unknown version", mutated((b) => b.writeUInt32LE(3, 8)), /unknown version 3/],
    ["gzip in version 1", encodeChunkTable({ ...V1, compression: "gzip" }), /unknown compression 3 in version 1/],
    ["lz4 in version 2", mutated((b) => (b[16] = 2)), /not lz4/],
    ["reserved header byte", mutated((b) => (b[50] = 1)), /reserved header bytes/],
    ["bits above 7", mutated((b) => (b[SPAN1 + 30] = 8)), /8 bits of its first byte consumed \(at most 7\)/],
    ["skip of 4096", mutated((b) => b.writeUInt16LE(4096, SPAN1 + 28)), /skips 4096 bytes/],
    ["flags", mutated((b) => (b[SPAN1 + 24] = 1)), /flags 0x1/],
    ["reserved entry byte", mutated((b) => (b[SPAN1 + 31] = 1)), /reserved byte 31/],
    ["a gap between spans", mutated((b) => { b.writeBigUInt64LE(8192n, SPAN1); b.writeBigUInt64LE(9216n, 24); }), /starts at 8192, not where span 0 ends \(4096\)/],
    ["a span start off 4096", mutated((b) => { b.writeUInt32LE(3584, 64 + 16); b.writeBigUInt64LE(3584n, SPAN1); b.writeUInt32LE(1512, SPAN1 + 16); }), /3584 is not a multiple of 4096/],
    ["a checkpoint before the one before", mutated((b) => b.writeBigUInt64LE(5n, SPAN1 + 8)), /before span 0's/],
    ["no remote bytes", mutated((b) => b.writeUInt32LE(0, SPAN1 + 20)), /no remote bytes/],
    ["remote range past the end", mutated((b) => b.writeUInt32LE(201, SPAN1 + 20)), /ends past the remote size/],
    ["window bytes that do not add up", mutated((b) => b.writeUInt32LE(2, 64 + 128 + 4)), /window lengths add up to/],
    ["a truncated window", GOLDEN_V2.subarray(0, GOLDEN_V2.length - 1), /2 entries and 3 window bytes need 203 bytes, have 202/],
    ["header window bytes wrong", mutated((b) => b.writeBigUInt64LE(4n, 40)), /4 window bytes need 204 bytes, have 203/],
  ];
  for (const [what, bytes, msg] of cases) assert.throws(() => decodeChunkTable(bytes, "t"), { code: "IMAGE_INVALID", message: msg }, what);
  const zstd = (edit: (b: Buffer) => void) => mutated((b) => { b[16] = 1; edit(b); });
  assert.throws(() => decodeChunkTable(zstd(() => {}), "t"), { code: "IMAGE_INVALID", message: /starts 5 bits into a byte of a zstd layer/ });
  assert.throws(() => decodeChunkTable(zstd((b) => (b[SPAN1 + 30] = 0)), "t"), { code: "IMAGE_INVALID", message: /span 1 of a zstd layer has a window/ });
  const huge = encodeChunkTable({ ...V2, windows: [new Uint8Array(0), new Uint8Array(40_000)] });
  assert.throws(() => decodeChunkTable(huge, "t"), { code: "IMAGE_INVALID", message: /window of 40000 bytes is larger/ });
});

/** V2 with a third entry: a further piece of span 1's checkpoint (remote 200, bits 5). */
const piece: ChunkEntry = { plainOffset: 8192, remoteOffset: 200, plainSize: 1000, remoteSize: 180, flags: 0, digest: new Uint8Array(32).fill(0x33), skip: 123 + 4096, bits: 5 };
const PIECES: ChunkTable = {
  ...V2, kernelSize: 9216,
  entries: [V2.entries[0], { ...V2.entries[1], plainSize: 4096 }, piece],
  windows: [V2.windows![0], V2.windows![1], V2.windows![1]],
};

test("a further piece of a span stores no skip and no window; decoded, it skips the pieces before it and shares the window", () => {
  const bytes = encodeChunkTable(PIECES);
  const at = 64 + 2 * 64;
  assert.deepEqual([bytes.readUInt16LE(at + 28), bytes[at + 30], bytes.readUInt32LE(64 + 3 * 64 + 8)], [0, 5, 0], "skip 0, bits 5, window length 0");
  const t = decodeChunkTable(bytes, "t");
  assert.deepEqual(t, PIECES);
  assert.equal(t.windows![2], t.windows![1]);
  assert.throws(() => encodeChunkTable({ ...PIECES, entries: [...PIECES.entries.slice(0, 2), { ...piece, skip: 5 }] }), /piece 2 skips 5, not the 4219 bytes before it/);
  const edit = (f: (b: Buffer) => void) => { const b = Buffer.from(bytes); f(b); return b; };
  const cases: [string, Buffer, RegExp][] = [
    ["a stored skip", edit((b) => b.writeUInt16LE(7, at + 28)), /continues span 1's checkpoint but stores a skip of 7/],
    ["an end before the piece before", edit((b) => b.writeUInt32LE(100, at + 20)), /ends in the layer before span 1 does/],
    ["in a zstd layer", edit((b) => { b[16] = 1; b[64 + 64 + 30] = 0; b[at + 30] = 0; }), /same remote byte as span 1 in a zstd layer/],
  ];
  for (const [what, b, msg] of cases) assert.throws(() => decodeChunkTable(b, "t"), { code: "IMAGE_INVALID", message: msg }, what);
  // a window of its own: the window directory says 3 bytes for the piece (and the header and data agree)
  const own = encodeChunkTable({ ...PIECES, entries: [...PIECES.entries.slice(0, 2), { ...piece, bits: 4, skip: 0 }], windows: [V2.windows![0], V2.windows![1], Uint8Array.from([1, 2, 3])] });
  own[at + 30] = 5; // the same checkpoint again, with a window
  assert.throws(() => decodeChunkTable(own, "t"), { code: "IMAGE_INVALID", message: /continues span 1's checkpoint but has a window of its own/ });
});
