// What a FUSE_INTERRUPT gets (src/frontend/fuse/interrupts.ts): EINTR for an open READ whose reader is dying,
// and that READ's own reply is then not written; a READ whose reader only caught a signal is watched and ended
// once its reader dies; EAGAIN once for a request we do not hold, never a second time for the same INTERRUPT
// (the kernel would queue it again ahead of everything, for ever).
import { test } from "node:test";
import assert from "node:assert/strict";
import { OpenReads } from "../../../src/frontend/fuse/interrupts.ts";

// Interrupt uniques are the request's with bit 0 set (FUSE_INT_REQ_BIT).
const READ = 0x10n;
const INT = READ | 1n;
const PID = 4242;

/** OpenReads whose readers are dying when `dying` holds their pid. */
function reads(dying = new Set<number>()) {
  return { reads: new OpenReads((pid) => dying.has(pid)), dying };
}

test("an INTERRUPT of an open READ whose reader is dying answers it EINTR; the READ's own reply is then not written", () => {
  const { reads: r } = reads(new Set([PID]));
  r.open(READ, PID);
  assert.deepEqual(r.interrupt(INT, READ), { reply: "eintr", unique: READ });
  assert.equal(r.close(READ), false, "one reply per request: the late one is dropped");
  assert.equal(r.size, 0);
});

test("an INTERRUPT for a caught signal leaves the READ to its fill (no EINTR that erofs would turn into EIO)", () => {
  const { reads: r } = reads();
  r.open(READ, PID);
  assert.deepEqual(r.interrupt(INT, READ), { reply: "none" });
  assert.equal(r.watched, 1);
  assert.deepEqual(r.takeDying(), []);
  assert.equal(r.close(READ), true, "its fill's reply is written");
  assert.equal(r.watched, 0);
});

test("a watched READ is ended once its reader dies (the kernel sends no second INTERRUPT)", () => {
  const { reads: r, dying } = reads();
  r.open(READ, PID);
  r.open(0x20n, PID + 1);
  r.interrupt(INT, READ);
  dying.add(PID);
  dying.add(PID + 1); // not interrupted: its READ is a readahead or the kernel has not asked
  assert.deepEqual(r.takeDying(), [READ]);
  assert.equal(r.watched, 0);
  assert.equal(r.close(READ), false);
  assert.equal(r.close(0x20n), true);
});

test("a READ answered before its INTERRUPT came: its reply is written, the INTERRUPT gets EAGAIN (the kernel ignores it)", () => {
  const { reads: r } = reads(new Set([PID]));
  r.open(READ, PID);
  assert.equal(r.close(READ), true);
  assert.deepEqual(r.interrupt(INT, READ), { reply: "eagain" });
});

test("an INTERRUPT the kernel queued again after our EAGAIN is dropped when it comes back, once; a new one gets EAGAIN again", () => {
  const { reads: r } = reads();
  assert.deepEqual(r.interrupt(INT, READ), { reply: "eagain" });
  r.requeued(INT);
  assert.deepEqual(r.interrupt(INT, READ), { reply: "none" }, "no second EAGAIN: no loop");
  assert.deepEqual(r.interrupt(INT, READ), { reply: "eagain" }, "a later INTERRUPT is a new one");
});

test("an INTERRUPT back after EAGAIN whose READ has come meanwhile ends that READ", () => {
  const { reads: r } = reads(new Set([PID]));
  assert.deepEqual(r.interrupt(INT, READ), { reply: "eagain" });
  r.requeued(INT);
  r.open(READ, PID);
  assert.deepEqual(r.interrupt(INT, READ), { reply: "eintr", unique: READ });
});
