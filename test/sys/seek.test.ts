import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { dataRanges, punchHole, seekData, seekHole } from "../../src/sys/index.ts";
import { tempDir } from "../helpers/kernel.ts";

const MiB = 1024 * 1024;
const BLOCK = 4096; // data is written in whole, aligned blocks, so the ranges are exact

/** A 20 MiB file with one block of data at 0 and one at 10 MiB; the rest is holes. */
function sparseFile(): { fd: number; size: number } {
  const file = path.join(tempDir("eod-seek-"), "sparse");
  const fd = fs.openSync(file, "w+");
  fs.ftruncateSync(fd, 20 * MiB);
  fs.writeSync(fd, Buffer.alloc(BLOCK, 1), 0, BLOCK, 0);
  fs.writeSync(fd, Buffer.alloc(BLOCK, 2), 0, BLOCK, 10 * MiB);
  return { fd, size: 20 * MiB };
}

test("seekData()/seekHole() find the data blocks of a sparse file", () => {
  const { fd } = sparseFile();
  try {
    assert.equal(seekData(fd, 0), 0);
    assert.equal(seekHole(fd, 0), BLOCK);
    assert.equal(seekData(fd, BLOCK), 10 * MiB);
    assert.equal(seekHole(fd, 10 * MiB), 10 * MiB + BLOCK);
    assert.equal(seekData(fd, 10 * MiB + BLOCK), null); // trailing hole: ENXIO
    assert.equal(seekData(fd, 30 * MiB), null); // beyond EOF: ENXIO too
    assert.equal(seekHole(fd, 10 * MiB + BLOCK), 10 * MiB + BLOCK);
  } finally {
    fs.closeSync(fd);
  }
});

test("dataRanges() lists the data ranges, clipped to size", () => {
  const { fd, size } = sparseFile();
  try {
    assert.deepEqual(dataRanges(fd, size), [
      { offset: 0, length: BLOCK },
      { offset: 10 * MiB, length: BLOCK },
    ]);
    assert.deepEqual(dataRanges(fd, 5 * MiB), [{ offset: 0, length: BLOCK }]);
    assert.deepEqual(dataRanges(fd, 100), [{ offset: 0, length: 100 }]);
    assert.deepEqual(dataRanges(fd, 10 * MiB + 1), [
      { offset: 0, length: BLOCK },
      { offset: 10 * MiB, length: 1 },
    ]);
    assert.deepEqual(dataRanges(fd, 0), []);
  } finally {
    fs.closeSync(fd);
  }
});

test("punchHole() frees a range, keeps the size and reads back zeros", () => {
  const file = path.join(tempDir("eod-seek-"), "full");
  fs.writeFileSync(file, Buffer.alloc(MiB, 7));
  const fd = fs.openSync(file, "r+");
  try {
    punchHole(fd, 0, MiB / 2);
    assert.equal(fs.fstatSync(fd).size, MiB);
    assert.deepEqual(dataRanges(fd, MiB), [{ offset: MiB / 2, length: MiB / 2 }]);
    const head = Buffer.alloc(16, 0xff);
    fs.readSync(fd, head, 0, 16, 100);
    assert.deepEqual(head, Buffer.alloc(16));
  } finally {
    fs.closeSync(fd);
  }
});

test("dataRanges() treats everything as data where SEEK_DATA is unsupported (EINVAL)", () => {
  const fd = fs.openSync("/proc/self/status", "r"); // seq_file: lseek knows only SET/CUR
  try {
    assert.deepEqual(dataRanges(fd, 100), [{ offset: 0, length: 100 }]);
  } finally {
    fs.closeSync(fd);
  }
});

test("seekData() on a closed fd throws SysError EBADF; bad offsets throw RangeError", () => {
  const { fd } = sparseFile();
  fs.closeSync(fd);
  assert.throws(() => seekData(fd, 0), { code: "SYS", errno: "EBADF", syscall: "lseek" });
  assert.throws(() => seekHole(fd, -1), RangeError);
  assert.throws(() => punchHole(fd, 0, 2 ** 53), RangeError);
});

test("seekData()/seekHole()/punchHole() take and return offsets beyond 4 GiB", () => {
  const GiB = 1024 * MiB;
  const file = path.join(tempDir("eod-seek-"), "big");
  const fd = fs.openSync(file, "w+");
  try {
    fs.ftruncateSync(fd, 6 * GiB);
    fs.writeSync(fd, Buffer.alloc(2 * BLOCK, 3), 0, 2 * BLOCK, 5 * GiB);
    assert.equal(seekData(fd, 0), 5 * GiB);
    assert.equal(seekHole(fd, 5 * GiB), 5 * GiB + 2 * BLOCK);
    punchHole(fd, 5 * GiB, BLOCK);
    assert.deepEqual(dataRanges(fd, 6 * GiB), [{ offset: 5 * GiB + BLOCK, length: BLOCK }]);
  } finally {
    fs.closeSync(fd);
  }
});
