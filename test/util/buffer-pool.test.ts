import { test } from "node:test";
import assert from "node:assert/strict";
import { BufferPool } from "../../src/util/buffer-pool.ts";

test("BufferPool.take() gives exact-size views and reuses given-back memory of the same size class", () => {
  const pool = new BufferPool(1 << 20);
  const a = pool.take(200_000);
  assert.equal(a.length, 200_000);
  assert.equal(a.buffer.byteLength, 262_144, "a power-of-two class");
  pool.give(a);
  const b = pool.take(150_000);
  assert.equal(b.buffer, a.buffer, "reused");
  const c = pool.take(150_000);
  assert.notEqual(c.buffer, a.buffer, "taken memory is never handed out twice");
});

test("BufferPool keeps at most `retain` bytes when idle", () => {
  const pool = new BufferPool(300_000);
  const views = [pool.take(262_144), pool.take(262_144)];
  for (const v of views) pool.give(v);
  const x = pool.take(262_144);
  const y = pool.take(262_144);
  assert.equal(x.buffer, views[0].buffer);
  assert.notEqual(y.buffer, views[1].buffer, "the second one was over the retain limit and dropped");
});

test("BufferPool ignores memory it did not make and a second give of the same buffer", () => {
  const pool = new BufferPool(1 << 20);
  pool.give(Buffer.from("a slice of Node's shared pool")); // must never be handed out
  const a = pool.take(8192);
  pool.give(a);
  pool.give(a);
  const x = pool.take(8192);
  const y = pool.take(8192);
  assert.equal(x.buffer, a.buffer);
  assert.notEqual(y.buffer, a.buffer, "given twice, handed out once");
});

test("A shared BufferPool hands out SharedArrayBuffer memory and reuses it like the other", () => {
  const pool = new BufferPool(1 << 20, { shared: true });
  const a = pool.take(100_000);
  assert.ok(a.buffer instanceof SharedArrayBuffer);
  assert.equal(a.length, 100_000);
  pool.give(a);
  assert.equal(pool.take(70_000).buffer, a.buffer);
});
