// The event journal: what a restarted daemon reads back as still pending, whatever point the last one died at.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { encodeRecord, EventJournal, JOURNAL_RECORD_LEN, pendingRecords, type JournalRecord } from "../../../src/frontend/fanotify/journal.ts";
import { fdIsOpen, holdFdNumbers } from "../../../src/sys/fds.ts";

const ev = (fd: number, offset = fd * 4096): Omit<JournalRecord, "seq"> => ({ fd, dev: 2049n, ino: 77n, offset, count: 4096, pid: 1234 });

const dirs: string[] = [];
after(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });

function tmp(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "eod-journal-"));
  dirs.push(dir);
  return path.join(dir, "fanotify.journal");
}

test("taken events are pending until answered, and answers are on disk only after flush()", () => {
  const file = tmp();
  const { journal, left } = EventJournal.open(file);
  assert.deepEqual(left, []);
  journal.take([ev(10), ev(11), ev(12)]);
  journal.answered(11);
  assert.deepEqual(pendingRecords(fs.readFileSync(file)).records.map((r) => r.fd), [10, 11, 12], "not flushed: 11 may still look pending");
  journal.flush();
  assert.deepEqual(pendingRecords(fs.readFileSync(file)).records.map((r) => r.fd), [10, 12]);
  const again = EventJournal.open(file); // a restarted daemon
  assert.deepEqual(again.left.map((r) => [r.fd, r.offset, r.count, r.pid, r.dev, r.ino]), [[10, 40960, 4096, 1234, 2049n, 77n], [12, 49152, 4096, 1234, 2049n, 77n]]);
  again.journal.take([ev(13)]); // numbers of left events are held, so a new event never reuses them
  again.journal.answered(10);
  again.journal.answered(12);
  again.journal.flush();
  assert.deepEqual(EventJournal.open(file).left.map((r) => r.fd), [13], "left events stay in the journal until answered, even across restarts");
});

test("a reused fd number: only its latest record counts; once nothing is pending the journal starts over", () => {
  const file = tmp();
  const { journal } = EventJournal.open(file);
  journal.take([ev(20, 0)]);
  journal.answered(20);
  journal.flush(); // nothing pending: rewritten as empty
  assert.equal(pendingRecords(fs.readFileSync(file)).records.length, 0);
  journal.take([ev(20, 8192)]);
  assert.deepEqual(pendingRecords(fs.readFileSync(file)).records.map((r) => r.offset), [8192]);
  journal.take([ev(21)]);
  journal.answered(21);
  journal.flush();
  journal.take([ev(21, 12288)]); // number 21 came back for a new event
  assert.deepEqual(pendingRecords(fs.readFileSync(file)).records.map((r) => [r.fd, r.offset]), [[20, 8192], [21, 12288]]);
});

test("stale records after a torn rewrite never override a newer one; a bad checksum ends the journal", () => {
  const rec = (fd: number, seq: bigint, offset: number, answered = false) => encodeRecord({ fd, seq, dev: 1n, ino: 2n, offset, count: 4096, pid: 1, answered });
  // Rewritten prefix (seq 9 pending for fd 5), then stale records of the file before: fd 5 at seq 3 (answered long ago).
  const buf = Buffer.concat([rec(5, 9n, 900), rec(5, 3n, 300), rec(6, 4n, 400), rec(6, 4n, 0, true)]);
  assert.deepEqual(pendingRecords(buf).records.map((r) => [r.fd, r.offset]), [[5, 900]]);
  assert.equal(pendingRecords(buf).maxSeq, 9n);
  const torn = Buffer.from(buf);
  torn[JOURNAL_RECORD_LEN + 40] ^= 1;
  assert.deepEqual(pendingRecords(torn).records.map((r) => r.fd), [5]);
});

test("holdFdNumbers holds free numbers and leaves open ones alone", () => {
  const a = fs.openSync("/dev/null", "r");
  const b = fs.openSync("/dev/null", "r");
  fs.closeSync(a); // a is free now, b is open
  const held = holdFdNumbers([a, b]);
  assert.deepEqual([...held], [a]);
  assert.ok(fdIsOpen(a));
  const next = fs.openSync("/dev/null", "r");
  assert.notEqual(next, a, "a held number is not handed out");
  for (const fd of [...held, b, next]) fs.closeSync(fd);
});
