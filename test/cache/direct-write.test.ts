// fscache's direct writes (src/cache/direct-write.ts) run on the thread pool: while one is in progress the
// event loop keeps answering the kernel. Made deterministic with a write that cannot finish until this very
// thread answers a request: the file is watched by a fanotify pre-content group, so the write waits for the
// group's permission answer, which only the event loop gives. A write on the event loop would wait forever.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { writeDirect } from "../../src/cache/direct-write.ts";
import {
  AT_FDCWD, FAN_CLASS_PRE_CONTENT, FAN_CLOEXEC, FAN_MARK_ADD, FAN_NONBLOCK, FAN_PRE_ACCESS, fanotifyInit, fanotifyMark, kernelSupportsPreContent,
} from "../../src/sys/fanotify.ts";
import { pollReadable } from "../../src/sys/poll.ts";
import { encodeResponse, parseEvents } from "../../src/frontend/fanotify/protocol.ts";
import { haveRoot, tempDir } from "../helpers/kernel.ts";
import { unavailable } from "../helpers/skip.ts";

const work = haveRoot() ? tempDir("eod-direct-") : "";
const support = haveRoot() ? kernelSupportsPreContent(work) : { ok: false, missing: ["root"] };
const skip = unavailable(!haveRoot() ? "needs root for fanotify" : !support.ok && `kernel lacks: ${support.missing.join("; ")}`);

test("writeDirect: page-aligned, zero-padded, and the event loop answers the kernel while the write waits", { skip, timeout: 30_000 }, async () => {
  const file = path.join(work, "cache-file");
  fs.writeFileSync(file, Buffer.alloc(64 << 10, 0xee));
  const group = fanotifyInit(FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK, fs.constants.O_RDWR);
  fanotifyMark(group, FAN_MARK_ADD, FAN_PRE_ACCESS, AT_FDCWD, file);
  const fd = fs.openSync(file, fs.constants.O_RDWR); // opened after the mark: its writes raise events
  let writing = true;
  let answeredWhileWriting = 0;
  const buf = Buffer.alloc(64 * 1024);
  const poll = pollReadable(group, () => {
    for (;;) {
      let n: number;
      try { n = fs.readSync(group, buf, 0, buf.length, null); } catch { return; } // EAGAIN: drained
      for (const ev of parseEvents(buf, n)) {
        if (writing) answeredWhileWriting++;
        fs.writeSync(group, encodeResponse(ev.fd, "allow"));
        fs.closeSync(ev.fd);
      }
    }
  });
  const data = Buffer.alloc(5000, 0xab); // not a whole page: the tail is padded with zeros
  try {
    await writeDirect(fd, data, 8192);
    writing = false;
    assert.ok(answeredWhileWriting > 0, "the permission event of the write was answered while the write was in progress");
    await assert.rejects(writeDirect(fd, data, 100), RangeError, "an unaligned position is refused");
  } finally {
    poll.stop();
    fs.closeSync(fd);
    fs.closeSync(group); // before reading the file here: a read raises an event too, which this thread would wait for
  }
  const got = fs.readFileSync(file);
  assert.ok(got.subarray(8192, 8192 + 5000).equals(data));
  assert.ok(got.subarray(8192 + 5000, 16384).every((b) => b === 0), "padded to the page with zeros");
  assert.equal(got[16384], 0xee, "nothing beyond the page");
});
