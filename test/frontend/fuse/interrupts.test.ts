// What a FUSE_INTERRUPT gets (src/frontend/fuse/interrupts.ts): EINTR for a READ still open, and that READ's
// own reply is then not written; EAGAIN once for a request we do not hold, never a second time for the same
// INTERRUPT (the kernel would queue it again ahead of everything, for ever).
import { test } from "node:test";
import assert from "node:assert/strict";
import { OpenReads } from "../../../src/frontend/fuse/interrupts.ts";

// Interrupt uniques are the request's with bit 0 set (FUSE_INT_REQ_BIT).
const READ = 0x10n;
const INT = READ | 1n;

test("an INTERRUPT of an open READ answers it EINTR; the READ's own reply is then not written", () => {
  const reads = new OpenReads();
  reads.open(READ);
  assert.deepEqual(reads.interrupt(INT, READ), { reply: "eintr", unique: READ });
  assert.equal(reads.close(READ), false, "one reply per request: the late one is dropped");
  assert.equal(reads.size, 0);
});

test("a READ answered before its INTERRUPT came: its reply is written, the INTERRUPT gets EAGAIN (the kernel ignores it)", () => {
  const reads = new OpenReads();
  reads.open(READ);
  assert.equal(reads.close(READ), true);
  assert.deepEqual(reads.interrupt(INT, READ), { reply: "eagain" });
});

test("an INTERRUPT the kernel queued again after our EAGAIN is dropped when it comes back, once; a new one gets EAGAIN again", () => {
  const reads = new OpenReads();
  assert.deepEqual(reads.interrupt(INT, READ), { reply: "eagain" });
  reads.requeued(INT);
  assert.deepEqual(reads.interrupt(INT, READ), { reply: "none" }, "no second EAGAIN: no loop");
  assert.deepEqual(reads.interrupt(INT, READ), { reply: "eagain" }, "a later INTERRUPT is a new one");
});

test("an INTERRUPT back after EAGAIN whose READ has come meanwhile ends that READ", () => {
  const reads = new OpenReads();
  assert.deepEqual(reads.interrupt(INT, READ), { reply: "eagain" });
  reads.requeued(INT);
  reads.open(READ);
  assert.deepEqual(reads.interrupt(INT, READ), { reply: "eintr", unique: READ });
});

test("other READs are untouched by an INTERRUPT", () => {
  const reads = new OpenReads();
  reads.open(READ);
  reads.open(0x20n);
  reads.interrupt(INT, READ);
  assert.equal(reads.close(0x20n), true);
});
