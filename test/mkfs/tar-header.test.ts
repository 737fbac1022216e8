// The numeric fields and checksum of tar header blocks (tar-header.ts), against blocks GNU tar and node's own
// formats write: octal with NUL or space terminators, GNU base-256 for large and negative values.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { checksum, decodeTarHeader, tarNumber } from "../../src/mkfs/layers/tar-header.ts";
import { skipTest } from "../helpers/skip.ts";

function block(fields: Record<number, string | number[]>): Buffer {
  const b = Buffer.alloc(512);
  for (const [at, v] of Object.entries(fields)) {
    if (typeof v === "string") b.write(v, Number(at), "latin1");
    else b.set(v, Number(at));
  }
  b.write(checksum(b).toString(8).padStart(6, "0") + "\0 ", 148, "latin1");
  return b;
}

test("octal fields: NUL- or space-terminated, leading spaces, empty", () => {
  const b = block({ 100: "0000644\0", 108: "  1750 \0", 116: "0001750 ", 124: "00000001234\0", 136: "14573470631\0" });
  const h = decodeTarHeader(b);
  assert.deepEqual(h, { mode: 0o644, uid: 1000, gid: 1000, size: 0o1234, mtime: 0o14573470631, checksumOk: true });
  assert.ok(Number.isNaN(tarNumber(Buffer.alloc(512), 124, 12)));
  assert.ok(Number.isNaN(tarNumber(block({ 124: "xyz\0" }), 124, 12)));
});

test("GNU base-256: sizes past 8 GiB, uids past 2^21, negative mtimes; beyond 2^53 is an error", () => {
  const big = [0x80, 0, 0, 0, 0, 0, 0, 0x02, 0, 0, 0, 1]; // 2^33 + 1
  const b = block({ 124: big, 108: [0x80, 0, 0, 0, 0, 0x4c, 0x4b, 0x40], 136: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe] });
  const h = decodeTarHeader(b);
  assert.equal(h.size, 2 ** 33 + 1);
  assert.equal(h.uid, 5_000_000);
  assert.equal(h.mtime, -2);
  assert.throws(() => tarNumber(Buffer.from([0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), 0, 12), /2\^53/);
  assert.throws(() => tarNumber(Buffer.from([0x81, 0, 0, 0, 0, 0, 0, 0]), 0, 8), /base-256/);
});

test("the checksum: any changed byte outside the field makes it wrong; a block shorter than 512 bytes is an error", () => {
  const b = block({ 0: "etc/hostname", 124: "00000000005\0", 156: "0" });
  assert.equal(decodeTarHeader(b).checksumOk, true);
  b[10] ^= 1;
  assert.equal(decodeTarHeader(b).checksumOk, false);
  assert.equal(decodeTarHeader(Buffer.alloc(512, 0x41)).checksumOk, false);
  assert.throws(() => decodeTarHeader(Buffer.alloc(100)), /512 bytes/);
});

test("headers GNU tar writes (ustar and GNU formats) decode to the file's size, mode, ids and mtime", (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "eod-tarhdr-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, "f");
  fs.writeFileSync(file, Buffer.alloc(3000, 1));
  fs.chmodSync(file, 0o4751);
  fs.utimesSync(file, 1_700_000_000, 1_700_000_000);
  for (const format of ["ustar", "gnu", "posix"]) {
    const r = spawnSync("tar", [`--format=${format}`, "--owner=4242", "--group=77", "-C", dir, "-cf", "-", "f"]);
    if (r.status !== 0) return skipTest(t, `tar: ${r.stderr}`);
    assert.deepEqual(decodeTarHeader(findEntryHeader(r.stdout)), { mode: 0o4751, uid: 4242, gid: 77, size: 3000, mtime: 1_700_000_000, checksumOk: true }, format);
  }
});

/** The header of the file entry (a PAX tar puts an extended header and its body first). */
function findEntryHeader(tar: Buffer): Buffer {
  for (let at = 0; at < tar.length; at += 512) if (tar[at + 156] === 0x30) return tar.subarray(at, at + 512);
  throw new Error("no file entry");
}
