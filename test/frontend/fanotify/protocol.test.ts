import { test } from "node:test";
import assert from "node:assert/strict";
import os from "node:os";
import { encodeResponse, FanotifyParseError, parseEvents } from "../../../src/frontend/fanotify/protocol.ts";
import { FAN_PRE_ACCESS, FAN_Q_OVERFLOW } from "../../../src/sys/fanotify.ts";

const { EIO, EPERM, ENOENT } = os.constants.errno;

// Bytes read from a real pre-content group on Linux 6.18 (x86_64): `dd` (pid 6671) reading 4 KiB at
// 1 MiB of a marked file; event fd 25. metadata (24) + range record (24).
const GOLDEN_EVENT = "30000000" + "03" + "00" + "1800" + "0000100000000000" + "19000000" + "0f1a0000" +
  "06" + "00" + "1800" + "00000000" + "0000100000000000" + "0010000000000000";

function hex(s: string): Uint8Array {
  return Uint8Array.from(Buffer.from(s, "hex"));
}

/** Builds one event the way the kernel lays it out; `records` are raw info records appended as is. */
function event(o: { fd?: number; pid?: number; mask?: bigint; vers?: number; metadataLen?: number; eventLen?: number; records?: Buffer[] }): Buffer {
  const body = Buffer.concat(o.records ?? []);
  const meta = Buffer.alloc(24);
  meta.writeUInt32LE(o.eventLen ?? 24 + body.length, 0);
  meta.writeUInt8(o.vers ?? 3, 4);
  meta.writeUInt16LE(o.metadataLen ?? 24, 6);
  meta.writeBigUInt64LE(o.mask ?? FAN_PRE_ACCESS, 8);
  meta.writeInt32LE(o.fd ?? 7, 16);
  meta.writeInt32LE(o.pid ?? 100, 20);
  return Buffer.concat([meta, body]);
}

function rangeRecord(offset: bigint, count: bigint, len = 24): Buffer {
  const r = Buffer.alloc(Math.max(len, 4));
  r.writeUInt8(6, 0);
  r.writeUInt16LE(len, 2);
  if (r.length >= 24) {
    r.writeBigUInt64LE(offset, 8);
    r.writeBigUInt64LE(count, 16);
  }
  return r;
}

function rejects(buf: Uint8Array, pattern: RegExp, expect: { parsed?: number; badFd?: number | null } = {}): void {
  assert.throws(() => parseEvents(buf, buf.length), (err: unknown) => {
    assert.ok(err instanceof FanotifyParseError, String(err));
    assert.equal(err.code, "KERNEL_UNSUPPORTED");
    assert.match(err.message, pattern);
    if (expect.parsed !== undefined) assert.equal(err.parsed.length, expect.parsed);
    if (expect.badFd !== undefined) assert.equal(err.badFd, expect.badFd);
    return true;
  });
}

test("parseEvents decodes the golden kernel event: fd, pid, mask and range", () => {
  assert.deepEqual(parseEvents(hex(GOLDEN_EVENT), 48), [
    { fd: 25, pid: 6671, mask: FAN_PRE_ACCESS, range: { offset: 1 << 20, count: 4096 } },
  ]);
});

test("parseEvents reads only `length` bytes and honours the view's byteOffset", () => {
  const backing = new Uint8Array(7 + 48 + 100).fill(0xee);
  backing.set(hex(GOLDEN_EVENT), 7);
  const view = backing.subarray(7);
  assert.equal(parseEvents(view, 48).length, 1);
  assert.deepEqual(parseEvents(view, 0), []);
  assert.throws(() => parseEvents(view, view.length + 1), RangeError);
});

test("parseEvents walks several events in one read and skips unknown info records", () => {
  const pidfd = Buffer.from("04000800" + "09000000", "hex"); // FAN_EVENT_INFO_TYPE_PIDFD, len 8
  const buf = Buffer.concat([
    event({ fd: 3, pid: 10, records: [pidfd, rangeRecord(0n, 8192n)] }),
    event({ fd: 4, pid: 11, records: [rangeRecord(4096n, 4096n)] }),
    event({ fd: -1, pid: 0, mask: FAN_Q_OVERFLOW }),
  ]);
  assert.deepEqual(parseEvents(buf, buf.length), [
    { fd: 3, pid: 10, mask: FAN_PRE_ACCESS, range: { offset: 0, count: 8192 } },
    { fd: 4, pid: 11, mask: FAN_PRE_ACCESS, range: { offset: 4096, count: 4096 } },
    { fd: -1, pid: 0, mask: FAN_Q_OVERFLOW },
  ]);
});

test("parseEvents accepts a longer metadata_len and a zero-count range (truncate)", () => {
  const meta = event({ fd: 5, metadataLen: 32, records: [Buffer.alloc(8, 0xab), rangeRecord(8192n, 0n)] });
  assert.deepEqual(parseEvents(meta, meta.length), [{ fd: 5, pid: 100, mask: FAN_PRE_ACCESS, range: { offset: 8192, count: 0 } }]);
});

test("parseEvents refuses truncated metadata and an unknown version without trusting the fd", () => {
  rejects(hex(GOLDEN_EVENT).subarray(0, 23), /only 23 bytes left/, { parsed: 0, badFd: null });
  rejects(event({ vers: 4 }), /metadata version 4/, { badFd: null });
});

test("parseEvents refuses event_len and metadata_len that do not fit, keeping the events before", () => {
  const good = event({ fd: 3, records: [rangeRecord(0n, 4096n)] });
  rejects(Buffer.concat([good, event({ fd: 9, eventLen: 23 })]), /event_len 23/, { parsed: 1, badFd: 9 });
  rejects(Buffer.concat([good, event({ fd: 9, eventLen: 49, records: [rangeRecord(0n, 4096n)] })]), /event_len 49 outside \[24, 48\]/, { parsed: 1, badFd: 9 });
  rejects(event({ fd: 9, metadataLen: 20 }), /metadata_len 20/, { badFd: 9 });
  rejects(event({ fd: 9, metadataLen: 60, records: [rangeRecord(0n, 4096n)] }), /metadata_len 60/, { badFd: 9 });
  rejects(event({ fd: -1, eventLen: 10 }), /event_len 10/, { badFd: null });
});

test("parseEvents refuses info records whose length does not fit the event", () => {
  rejects(event({ records: [Buffer.from("0600", "hex")] }), /2 trailing bytes/);
  rejects(event({ records: [rangeRecord(0n, 4096n, 3)] }), /len 3/);
  const longRec = rangeRecord(0n, 4096n);
  longRec.writeUInt16LE(28, 2);
  rejects(event({ records: [longRec] }), /len 28, 24 bytes left/);
  rejects(event({ records: [rangeRecord(0n, 4096n, 16)] }), /range record at byte 24 has len 16/);
  rejects(event({ records: [rangeRecord(0n, 4096n), rangeRecord(0n, 4096n)] }), /second range record/);
  rejects(event({ records: [rangeRecord(2n ** 53n, 4096n)] }), /beyond 2\^53/);
});

test("encodeResponse writes struct fanotify_response: allow, deny with EIO, plain deny", () => {
  assert.equal(encodeResponse(25, "allow").toString("hex"), "19000000" + "01000000");
  assert.equal(encodeResponse(25, { denyErrno: EIO }).toString("hex"), "19000000" + "02000005");
  assert.equal(encodeResponse(7, { denyErrno: EPERM }).toString("hex"), "07000000" + "02000001");
  assert.equal(encodeResponse(7, { denyErrno: 0 }).toString("hex"), "07000000" + "02000000");
});

test("encodeResponse refuses what the kernel would reject with EINVAL", () => {
  assert.throws(() => encodeResponse(-1, "allow"), RangeError);
  assert.throws(() => encodeResponse(1.5, "allow"), RangeError);
  assert.throws(() => encodeResponse(3, { denyErrno: ENOENT }), /accepts only EPERM, EIO/);
});
