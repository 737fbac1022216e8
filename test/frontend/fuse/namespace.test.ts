// What the FUSE frontend's filesystem answers (src/frontend/fuse/namespace.ts), from requests decoded as the
// kernel sends them: the root lists the blobs served, each a read-only file of its size; nothing else exists.
import { test } from "node:test";
import assert from "node:assert/strict";
import { answerRequest, type ServedView } from "../../../src/frontend/fuse/namespace.ts";
import { decodeRequest, FUSE_ATTR_OUT_LEN, FUSE_ENTRY_OUT_LEN, type Request } from "../../../src/frontend/fuse/protocol.ts";

const A = { name: "aa".repeat(32), node: 0x1234n, size: 10_000 };
const B = { name: "bb".repeat(32), node: 0x5678n, size: 4096 };
const view: ServedView = {
  byName: (n) => [A, B].find((f) => f.name === n),
  byNode: (n) => [A, B].find((f) => f.node === n),
  list: () => [A, B].map(({ name, node }) => ({ name, node })),
  totalSize: () => A.size + B.size,
};

/** A request as read from /dev/fuse: in_header (40 bytes) + body. */
function request(opcode: number, nodeid: bigint, body: Buffer = Buffer.alloc(0)): Exclude<Request, { op: "init" | "read" | "interrupt" }> {
  const b = Buffer.alloc(40 + body.length);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt32LE(opcode, 4);
  b.writeBigUInt64LE(7n, 8);
  b.writeBigUInt64LE(nodeid, 16);
  body.copy(b, 40);
  const r = decodeRequest(b, b.length);
  assert.ok(r.op !== "init" && r.op !== "read" && r.op !== "interrupt");
  return r;
}
const u32s = (...v: number[]) => Buffer.from(Uint32Array.from(v).buffer);
const readIn = (offset: number, size: number) => { const b = Buffer.alloc(40); b.writeBigUInt64LE(BigInt(offset), 8); b.writeUInt32LE(size, 16); return b; };

test("LOOKUP of a served blob in the root: its node, a day's validity, a read-only file of its size", () => {
  const a = answerRequest(request(1, 1n, Buffer.from(`${A.name}\0`)), view);
  assert.equal(a?.errno, 0);
  const e = a!.payload[0];
  assert.equal(e.length, FUSE_ENTRY_OUT_LEN);
  assert.equal(e.readBigUInt64LE(0), A.node);
  assert.equal(e.readBigUInt64LE(16), 86400n);
  assert.equal(e.readBigUInt64LE(40 + 8), 10_000n, "attr.size");
  assert.equal(e.readUInt32LE(40 + 60), 0o100444, "attr.mode");
  assert.equal(answerRequest(request(1, 1n, Buffer.from("nope\0")), view)?.errno, 2, "unknown name: ENOENT");
  assert.equal(answerRequest(request(1, A.node, Buffer.from(`${A.name}\0`)), view)?.errno, 2, "a file has no children");
});

test("GETATTR of the root and of a blob; a node no longer served is ENOENT", () => {
  const root = answerRequest(request(3, 1n, Buffer.alloc(16)), view)!.payload[0];
  assert.equal(root.length, FUSE_ATTR_OUT_LEN);
  assert.equal(root.readUInt32LE(16 + 60), 0o40555);
  assert.equal(answerRequest(request(3, B.node, Buffer.alloc(16)), view)!.payload[0].readBigUInt64LE(16 + 8), 4096n);
  assert.equal(answerRequest(request(3, 0x999n, Buffer.alloc(16)), view)?.errno, 2);
});

test("OPEN: read-only with FOPEN_KEEP_CACHE; for writing EROFS; the root EACCES; OPENDIR only of the root", () => {
  const o = answerRequest(request(14, A.node, u32s(0x8000, 0)), view)!;
  assert.equal(o.errno, 0);
  assert.equal(o.payload[0].readUInt32LE(8), 2, "FOPEN_KEEP_CACHE");
  assert.equal(answerRequest(request(14, A.node, u32s(0x8002, 0)), view)?.errno, 30, "O_RDWR: EROFS");
  assert.equal(answerRequest(request(14, 1n, u32s(0, 0)), view)?.errno, 13);
  assert.equal(answerRequest(request(27, 1n, u32s(0, 0)), view)?.errno, 0);
  assert.equal(answerRequest(request(27, A.node, u32s(0, 0)), view)?.errno, 20, "ENOTDIR");
});

test("READDIR lists . .. and the blobs by name, from the offset the kernel sends back", () => {
  const names = (offset: number) => {
    const d = answerRequest(request(28, 1n, readIn(offset, 4096)), view)!.payload[0];
    const out: string[] = [];
    for (let at = 0; at < d.length;) {
      const len = d.readUInt32LE(at + 16);
      out.push(d.toString("latin1", at + 24, at + 24 + len));
      at += (24 + len + 7) & ~7;
    }
    return out;
  };
  assert.deepEqual(names(0), [".", "..", A.name, B.name]);
  assert.deepEqual(names(3), [B.name]);
});

test("STATFS, the replies without payload, the requests without reply, and ENOSYS for the rest", () => {
  const st = answerRequest(request(17, 1n), view)!.payload[0];
  assert.equal(st.readBigUInt64LE(0), 4n, "blocks: ceil(14096 / 4096)");
  assert.equal(st.readBigUInt64LE(24), 3n, "files: the root and two blobs");
  for (const op of [18, 29, 25, 34]) assert.deepEqual(answerRequest(request(op, A.node, Buffer.alloc(24)), view), { errno: 0, payload: [] });
  assert.equal(answerRequest(request(2, A.node, Buffer.alloc(8)), view), null, "FORGET");
  assert.equal(answerRequest(request(9, 1n, Buffer.alloc(8)), view)?.errno, 38, "MKDIR: ENOSYS");
  assert.equal(answerRequest(request(22, A.node, Buffer.alloc(8)), view)?.errno, 38, "GETXATTR: ENOSYS");
});
