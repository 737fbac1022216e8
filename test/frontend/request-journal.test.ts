// The journal of taken requests (src/frontend/request-journal.ts): record layout, what a dead daemon leaves, torn
// and stale records, compaction.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { encodeRecord, pendingRecords, RECORD_HEADER_LEN, RequestJournal } from "../../src/frontend/request-journal.ts";

function tmpFile(t: { after(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "eod-rjournal-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, "journal");
}

test("record layout: 32-byte header, the payload padded to 8, crc32 over header and payload", () => {
  const r = encodeRecord("taken", 0x1122n, 7n, Buffer.from("abc"));
  assert.equal(r.length, RECORD_HEADER_LEN + 8);
  assert.deepEqual(r.subarray(0, 28), Buffer.from([
    0x45, 0x4f, 0x44, 0x52, // "EODR"
    3, 0, 0, 0, // payload length
    0x22, 0x11, 0, 0, 0, 0, 0, 0, // key
    7, 0, 0, 0, 0, 0, 0, 0, // seq
    0, 0, 0, 0, // kind: taken
  ]));
  assert.equal(r.readUInt32LE(28), zlib.crc32(Buffer.from("abc"), zlib.crc32(r.subarray(0, 28))));
  assert.deepEqual(r.subarray(32), Buffer.from([0x61, 0x62, 0x63, 0, 0, 0, 0, 0]));
});

test("a dead daemon's journal: what it took and did not answer comes back, oldest first, with its payload", (t) => {
  const file = tmpFile(t);
  const { journal, left } = RequestJournal.open(file);
  assert.deepEqual(left, []);
  journal.take(10n, Buffer.from("read ten"));
  journal.take(11n, Buffer.from("read eleven"));
  journal.take(12n, Buffer.from("lookup"));
  journal.flush();
  journal.answered(11n);
  journal.take(13n, Buffer.alloc(100, 1));
  journal.flush();
  journal.answered(12n); // not flushed: the daemon dies before (its reply fails with ENOENT when repeated)
  journal.close();
  const again = RequestJournal.open(file);
  assert.deepEqual(again.left.map((r) => [r.key, r.payload.toString("latin1")]), [
    [10n, "read ten"], [12n, "lookup"], [13n, Buffer.alloc(100, 1).toString("latin1")],
  ]);
  assert.equal(again.journal.pending, 3);
  again.journal.answered(10n);
  again.journal.answered(12n);
  again.journal.answered(13n);
  again.journal.flush(); // nothing pending: the file starts over
  again.journal.close();
  assert.deepEqual(RequestJournal.open(file).left, []);
  assert.equal(fs.statSync(file).size >= RECORD_HEADER_LEN, true);
});

test("reading stops at a torn or corrupt record; an answered record names the seq it answers", () => {
  const a = encodeRecord("taken", 1n, 1n, Buffer.from("one"));
  const b = encodeRecord("taken", 2n, 2n, Buffer.from("two"));
  const bad = Buffer.from(b);
  bad[RECORD_HEADER_LEN] ^= 1;
  assert.deepEqual(pendingRecords(Buffer.concat([a, bad])).records.map((r) => r.key), [1n]);
  assert.deepEqual(pendingRecords(Buffer.concat([a, b.subarray(0, 34)])).records.map((r) => r.key), [1n], "torn");
  const answeredOld = encodeRecord("answered", 1n, 0n); // answers an older request under the same key, not seq 1
  assert.deepEqual(pendingRecords(Buffer.concat([a, answeredOld])).records.map((r) => r.seq), [1n]);
  assert.deepEqual(pendingRecords(Buffer.concat([a, encodeRecord("answered", 1n, 1n)])).records, []);
  assert.deepEqual(pendingRecords(Buffer.concat([a, encodeRecord("end", 0n, 0n), b])).records.map((r) => r.key), [1n], "stale records after an end record");
});

test("a journal that grows past its limit is rewritten with only what is pending", (t) => {
  const file = tmpFile(t);
  const { journal } = RequestJournal.open(file);
  journal.take(1n, Buffer.from("kept"));
  for (let k = 2n; k < 20_000n; k++) {
    journal.take(k, Buffer.alloc(64));
    journal.answered(k);
    if (k % 100n === 0n) journal.flush();
  }
  journal.flush();
  journal.close();
  assert.ok(fs.statSync(file).size <= (1 << 20) + 200 * 128, `compacted: ${fs.statSync(file).size} bytes`);
  assert.deepEqual(RequestJournal.open(file).left.map((r) => [r.key, r.payload.toString()]), [[1n, "kept"]]);
});
