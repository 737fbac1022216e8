import { test } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { attachLoop, encodeLoopConfig, loopBackingFile, LOOP_CONFIG_SIZE, LO_FLAGS_AUTOCLEAR, LO_FLAGS_READ_ONLY } from "../../src/sys/loop.ts";
import { haveRoot, tempDir } from "../helpers/kernel.ts";
import { unavailable } from "../helpers/skip.ts";

const NEEDS = unavailable(!haveRoot() ? "loop devices need root" : !fs.existsSync("/dev/loop-control") && "needs /dev/loop-control (CONFIG_BLK_DEV_LOOP)");

test("encodeLoopConfig() lays out struct loop_config as include/uapi/linux/loop.h", () => {
  const buf = encodeLoopConfig(7, "/img/a.erofs");
  assert.equal(buf.length, LOOP_CONFIG_SIZE);
  const view = new DataView(buf.buffer);
  assert.equal(view.getUint32(0, true), 7, "fd");
  assert.equal(view.getUint32(4, true), 0, "block_size: kernel default");
  assert.equal(view.getUint32(8 + 52, true), LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR, "info.lo_flags");
  assert.equal(Buffer.from(buf.subarray(8 + 56, 8 + 56 + 12)).toString(), "/img/a.erofs", "info.lo_file_name");
  assert.equal(buf[8 + 56 + 12], 0);
  assert.ok(buf.subarray(8 + 232).every((b) => b === 0), "__reserved is zero");
});

test("encodeLoopConfig() cuts a long name to 63 bytes and keeps its NUL", () => {
  const buf = encodeLoopConfig(3, `/${"x".repeat(200)}`);
  assert.notEqual(buf[8 + 56 + 62], 0);
  assert.equal(buf[8 + 56 + 63], 0);
});

test("attachLoop() binds a file read-only; reads through the device give its bytes; autoclear after the last close", { skip: NEEDS }, async (t) => {
  const dir = tempDir("eod-loop-");
  const file = path.join(dir, "data.bin");
  const bytes = crypto.randomBytes(256 * 1024);
  fs.writeFileSync(file, bytes);
  const dev = await attachLoop(file);
  let closed = false;
  t.after(async () => { if (!closed) await dev.close(); });
  assert.match(dev.path, /^\/dev\/loop\d+$/);
  assert.equal(loopBackingFile(dev.number), file);
  assert.equal(fs.readFileSync(`/sys/block/loop${dev.number}/ro`, "utf8").trim(), "1", "read-only");
  const fd = fs.openSync(dev.path, "r");
  try {
    const got = Buffer.alloc(bytes.length);
    assert.equal(fs.readSync(fd, got, 0, got.length, 0), bytes.length);
    assert.ok(got.equals(bytes));
  } finally {
    fs.closeSync(fd);
  }
  await dev.close();
  closed = true;
  assert.equal(loopBackingFile(dev.number), null, "detached once the last opener closed it");
});

test("attachLoop() of two files at once gets two devices (the free-device race is retried)", { skip: NEEDS }, async (t) => {
  const dir = tempDir("eod-loop-");
  const files = [0, 1, 2, 3].map((i) => { const f = path.join(dir, `f${i}`); fs.writeFileSync(f, Buffer.alloc(4096, i)); return f; });
  const devs = await Promise.all(files.map((f) => attachLoop(f)));
  t.after(async () => { for (const d of devs) await d.close(); });
  assert.equal(new Set(devs.map((d) => d.number)).size, files.length);
  devs.forEach((d, i) => assert.equal(loopBackingFile(d.number), files[i]));
});

test("attachLoop() of a missing file fails with ENOENT and takes no device", { skip: NEEDS }, async () => {
  await assert.rejects(attachLoop(path.join(tempDir("eod-loop-"), "missing")), { code: "ENOENT" });
});
