// Real fanotify pre-content groups on this kernel: the primitives the fanotify frontend is built from.
// A marked sparse file stands for a blob cache file; a child process is the reader, and this test
// process (on its event loop, through pollReadable) is the daemon that fills ranges and answers.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { encodeResponse, FanotifyParseError, parseEvents, type PreAccessEvent } from "../../src/frontend/fanotify/protocol.ts";
import {
  AT_FDCWD,
  FAN_CLASS_PRE_CONTENT,
  FAN_CLOEXEC,
  FAN_MARK_ADD,
  FAN_MARK_REMOVE,
  FAN_NONBLOCK,
  FAN_PRE_ACCESS,
  fanotifyInit,
  fanotifyMark,
  kernelSupportsPreContent,
} from "../../src/sys/fanotify.ts";
import { pollReadable, type PollHandle } from "../../src/sys/poll.ts";
import { eodOk } from "../helpers/cli.ts";
import { haveRoot, mountErofs, tempDir, type MountedImage } from "../helpers/kernel.ts";
import { unavailable } from "../helpers/skip.ts";

const MiB = 1 << 20;
const { EIO } = os.constants.errno;

// The probe marks a file in the directory the tests use: pre-content support depends on its filesystem.
const work = haveRoot() ? tempDir("eod-fanotify-") : "";
const support = work ? kernelSupportsPreContent(work) : null;
const fanMissing = support?.missing.filter((m) => !/erofs/.test(m)) ?? [];
const SKIP_FAN = unavailable(!haveRoot() ? "needs root (fanotify pre-content groups)" : fanMissing.length ? `kernel lacks: ${fanMissing.join("; ")}` : false);
const SKIP_EROFS = unavailable(SKIP_FAN || (support && !support.ok ? `kernel lacks: ${support.missing.join("; ")}` : false));

after(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

type Verdict = "allow" | { denyErrno: number } | "hold";

/** What the test daemon saw of one event. */
interface Seen { pid: number; offset: number; count: number }

/**
 * A pre-content group served on this event loop. `handle` decides each event (and may fill the file
 * through ev.fd); "hold" leaves the event unanswered, its fd in `held`.
 */
class Group {
  readonly fd: number;
  readonly seen: Seen[] = [];
  readonly held: number[] = [];
  errors: unknown[] = [];
  handle: (ev: PreAccessEvent) => Verdict = () => "allow";
  private readonly poll: PollHandle;
  private readonly buf = Buffer.alloc(64 * 1024);
  private closed = false;

  constructor() {
    // O_RDWR: the event fds must be writable, since filling goes through them (they are FMODE_NONOTIFY).
    this.fd = fanotifyInit(FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK, fs.constants.O_RDWR);
    this.poll = pollReadable(this.fd, () => this.drain(), (err) => this.errors.push(err));
  }

  mark(file: string): void {
    fanotifyMark(this.fd, FAN_MARK_ADD, FAN_PRE_ACCESS, AT_FDCWD, file);
  }

  unmark(file: string): void {
    fanotifyMark(this.fd, FAN_MARK_REMOVE, FAN_PRE_ACCESS, AT_FDCWD, file);
  }

  /** Stops serving and closes the group: the kernel then allows whatever is still pending. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.poll.stop();
    for (const fd of this.held.splice(0)) fs.closeSync(fd);
    fs.closeSync(this.fd);
  }

  private drain(): void {
    for (;;) {
      let n: number;
      try {
        n = fs.readSync(this.fd, this.buf, 0, this.buf.length, null);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "EAGAIN") return;
        throw err;
      }
      let events: PreAccessEvent[];
      try {
        events = parseEvents(this.buf, n);
      } catch (err) {
        this.errors.push(err);
        if (!(err instanceof FanotifyParseError)) throw err;
        events = err.parsed;
        if (err.badFd !== null) this.answer(err.badFd, { denyErrno: EIO });
      }
      for (const ev of events) this.serve(ev);
    }
  }

  private serve(ev: PreAccessEvent): void {
    if (ev.fd < 0) {
      this.errors.push(new Error(`event without fd, mask 0x${ev.mask.toString(16)}`));
      return;
    }
    this.seen.push({ pid: ev.pid, offset: ev.range?.offset ?? -1, count: ev.range?.count ?? -1 });
    let verdict: Verdict = { denyErrno: EIO };
    try {
      verdict = this.handle(ev);
    } catch (err) {
      this.errors.push(err);
    }
    if (verdict === "hold") this.held.push(ev.fd);
    else this.answer(ev.fd, verdict);
  }

  private answer(fd: number, verdict: "allow" | { denyErrno: number }): void {
    try {
      fs.writeSync(this.fd, encodeResponse(fd, verdict));
    } finally {
      fs.closeSync(fd);
    }
  }
}

/** Copies the event's range (clipped to `size`) from `sourceFd` into the marked file, through the event fd. */
function fillFrom(sourceFd: number, size: number, ev: PreAccessEvent): void {
  if (!ev.range) throw new Error("pre-content event without a range record");
  const end = Math.min(ev.range.offset + ev.range.count, size);
  if (end <= ev.range.offset) return;
  const chunk = Buffer.alloc(end - ev.range.offset);
  assert.equal(fs.readSync(sourceFd, chunk, 0, chunk.length, ev.range.offset), chunk.length);
  assert.equal(fs.writeSync(ev.fd, chunk, 0, chunk.length, ev.range.offset), chunk.length);
}

const children = new Set<ChildProcess>();

interface ChildResult { code: number | null; pid: number; stdout: Buffer; stderr: string }

// The reader: another process, so that this one can serve its events. Prints the bytes it read, or
// the error code on stderr (exit 2).
const READER = `
const fs = require("node:fs");
const [file, offset, length] = process.argv.slice(1);
try {
  const fd = fs.openSync(file, "r");
  const buf = Buffer.alloc(Number(length));
  let n = 0;
  while (n < buf.length) {
    const r = fs.readSync(fd, buf, n, buf.length - n, Number(offset) + n);
    if (r === 0) break;
    n += r;
  }
  process.stdout.write(buf.subarray(0, n));
} catch (err) {
  process.stderr.write(String(err.code));
  process.exit(2);
}`;

/** Reads [offset, offset+length) of `file` in a child process; rejects after `ms`. */
function readInChild(file: string, offset: number, length: number, ms = 15_000): Promise<ChildResult> {
  const child = spawn(process.execPath, ["-e", READER, file, String(offset), String(length)], { stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  const out: Buffer[] = [];
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => out.push(d));
  child.stderr!.on("data", (d: Buffer) => (stderr += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`reader of ${file} [${offset}, +${length}) did not finish in ${ms} ms`));
    }, ms);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, pid: child.pid ?? -1, stdout: Buffer.concat(out), stderr });
    });
  });
}

/** Kills every reader still running and waits (briefly) for each to go. */
async function killChildren(): Promise<void> {
  await Promise.all([...children].map((c) => new Promise<void>((resolve) => {
    if (c.exitCode !== null || c.signalCode !== null) return resolve();
    const t = setTimeout(resolve, 2000);
    c.once("close", () => { clearTimeout(t); resolve(); });
    c.kill("SIGKILL");
  })));
  children.clear();
}

function sparseFile(name: string, size: number): string {
  const file = path.join(work, name);
  fs.rmSync(file, { force: true });
  const fd = fs.openSync(file, "w");
  fs.ftruncateSync(fd, size);
  fs.closeSync(fd);
  return file;
}

function pattern(offset: number, length: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = ((offset + i) * 7 + 13) & 0xff;
  return b;
}

/** Runs `body` with a fresh group; always kills readers, then closes the group. */
async function withGroup(body: (g: Group) => Promise<void>): Promise<void> {
  const g = new Group();
  try {
    await body(g);
    assert.deepEqual(g.errors, []);
  } finally {
    await killChildren();
    g.close();
  }
}

function ranges(seen: Seen[]): string {
  return seen.map((s) => `[${s.offset}, +${s.count}]`).join(" ");
}

test("a read of a hole waits for the daemon, which fills the range through the event fd", { skip: SKIP_FAN, timeout: 60_000 }, async (t) => {
  const file = sparseFile("fill.bin", 8 * MiB);
  await withGroup(async (g) => {
    g.mark(file);
    g.handle = (ev) => {
      assert.ok(ev.range);
      assert.equal(ev.mask & FAN_PRE_ACCESS, FAN_PRE_ACCESS);
      const data = pattern(ev.range.offset, ev.range.count);
      assert.equal(fs.writeSync(ev.fd, data, 0, data.length, ev.range.offset), data.length); // no new event: FMODE_NONOTIFY
      return "allow";
    };
    const r = await readInChild(file, MiB, 4096);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.equals(pattern(MiB, 4096)), "the reader got the bytes written during the event");
    assert.deepEqual(g.seen, [{ pid: r.pid, offset: MiB, count: 4096 }]);

    // A range already filled raises the event again on every read (the mark turns readahead off too).
    const again = await readInChild(file, MiB + 100, 50);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(g.seen.slice(1), [{ pid: again.pid, offset: MiB, count: 4096 }], "unaligned read → page-aligned range");
    t.diagnostic(`ranges: ${ranges(g.seen)}`);
  });
});

test("a deny with FAN_DENY_ERRNO(EIO) fails the reader's read with EIO", { skip: SKIP_FAN, timeout: 60_000 }, async () => {
  const file = sparseFile("deny.bin", 8 * MiB);
  await withGroup(async (g) => {
    g.mark(file);
    g.handle = () => ({ denyErrno: EIO });
    const r = await readInChild(file, 3 * MiB, 4096);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, "EIO");
    assert.equal(g.seen.length, 1);
    g.handle = () => ({ denyErrno: 0 }); // plain FAN_DENY
    const r2 = await readInChild(file, 3 * MiB, 4096);
    assert.equal(r2.stderr, "EPERM");
  });
});

test("once the mark is removed (FAN_MARK_REMOVE), reads no longer raise events", { skip: SKIP_FAN, timeout: 60_000 }, async () => {
  const file = sparseFile("unmark.bin", 8 * MiB);
  await withGroup(async (g) => {
    g.mark(file);
    g.handle = (ev) => {
      const data = pattern(ev.range!.offset, ev.range!.count);
      fs.writeSync(ev.fd, data, 0, data.length, ev.range!.offset);
      return "allow";
    };
    const r = await readInChild(file, 2 * MiB, 8192);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(g.seen.length, 1);
    g.unmark(file);
    assert.throws(() => g.unmark(file), { errno: "ENOENT" });
    g.handle = () => ({ denyErrno: EIO }); // an event now would fail the reader
    const after = await readInChild(file, 2 * MiB, 8192);
    assert.equal(after.code, 0, after.stderr);
    assert.ok(after.stdout.equals(pattern(2 * MiB, 8192)));
    const hole = await readInChild(file, 5 * MiB, 4096);
    assert.ok(hole.stdout.equals(Buffer.alloc(4096)), "an unmarked hole reads as zeros");
    assert.equal(g.seen.length, 1);
  });
});

test("the listener's own fd opened after the mark raises FAN_PRE_ACCESS on write too (fill through the event fd)", { skip: SKIP_FAN, timeout: 60_000 }, async () => {
  const file = sparseFile("self.bin", 8 * MiB);
  await withGroup(async (g) => {
    g.mark(file);
    const own = fs.openSync(file, "r+");
    try {
      // Asynchronous (libuv threadpool), so that this thread can answer: done synchronously it would
      // wait on itself forever.
      const wrote = await new Promise<number>((resolve, reject) =>
        fs.write(own, Buffer.alloc(4096, 1), 0, 4096, 4 * MiB + 4096, (err, n) => (err ? reject(err) : resolve(n))));
      assert.equal(wrote, 4096);
    } finally {
      fs.closeSync(own);
    }
    assert.deepEqual(g.seen, [{ pid: process.pid, offset: 4 * MiB + 4096, count: 4096 }]);
  });
});

test("closing the group fd allows the pending events: the reader gets the hole's zeros (fail-open)", { skip: SKIP_FAN, timeout: 60_000 }, async () => {
  const file = sparseFile("failopen.bin", 8 * MiB);
  const g = new Group();
  try {
    g.mark(file);
    g.handle = () => "hold";
    const reading = readInChild(file, 6 * MiB, 4096);
    while (g.seen.length === 0) await new Promise((r) => setTimeout(r, 10));
    g.close();
    const r = await reading;
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.equals(Buffer.alloc(4096)));
  } finally {
    await killChildren();
    g.close();
  }
});

test("a file-backed erofs mount with a marked device= file is served range by range", { skip: SKIP_EROFS, timeout: 120_000 }, async (t) => {
  const tree = path.join(work, "tree");
  fs.mkdirSync(path.join(tree, "sub"), { recursive: true });
  const big = crypto.randomBytes(3 * MiB + 12345);
  const mid = crypto.randomBytes(300_000);
  fs.writeFileSync(path.join(tree, "big.bin"), big);
  fs.writeFileSync(path.join(tree, "sub", "mid.bin"), mid);
  fs.writeFileSync(path.join(tree, "hello.txt"), "hello\n");
  const img = path.join(work, "img");
  eodOk("build", tree, "-o", img);
  const [bootstrap, data = ""] = eodOk("unpack", img, "--blobs-to", path.join(work, "kernel-form")).trim().split(" ");
  const devices = data.split(",").map((d) => d.slice("device=".length));
  assert.equal(devices.length, 1, `one blob expected, got ${data}`);
  const kernelForm = devices[0]!;
  const size = fs.statSync(kernelForm).size;
  const cache = sparseFile("blob-cache.bin", size);
  const src = fs.openSync(kernelForm, "r");
  const g = new Group();
  let m: MountedImage | undefined;
  try {
    g.handle = (ev) => {
      fillFrom(src, size, ev);
      return "allow";
    };
    g.mark(cache); // before the mount: erofs opens the device file then, and only fds opened after a mark raise events
    m = await mountErofs(bootstrap!, `device=${cache}`);
    const atMount = g.seen.splice(0);
    assert.deepEqual(fs.readdirSync(m.dir).sort(), ["big.bin", "hello.txt", "sub"]);
    assert.equal(fs.readFileSync(path.join(m.dir, "hello.txt"), "utf8"), "hello\n"); // inline: bootstrap only
    const atMetadata = g.seen.splice(0);

    const whole = await readInChild(path.join(m.dir, "big.bin"), 0, big.length);
    assert.equal(whole.code, 0, whole.stderr);
    assert.ok(whole.stdout.equals(big), "big.bin read through the mount equals the source");
    const wholeRanges = g.seen.splice(0);

    const small = await readInChild(path.join(m.dir, "sub", "mid.bin"), 40_960, 4096);
    assert.equal(small.code, 0, small.stderr);
    assert.ok(small.stdout.equals(mid.subarray(40_960, 40_960 + 4096)));
    const smallRanges = g.seen.splice(0);

    const reread = await readInChild(path.join(m.dir, "big.bin"), 0, big.length);
    assert.ok(reread.stdout.equals(big));
    const rereadRanges = g.seen.splice(0);

    assert.deepEqual(g.errors, []);
    for (const s of [...wholeRanges, ...smallRanges]) {
      assert.equal(s.offset % 4096, 0, `range ${s.offset} page aligned`);
      assert.equal(s.count % 4096, 0, `count ${s.count} page aligned`);
      assert.ok(s.count > 0 && s.offset + s.count <= size, `range [${s.offset}, +${s.count}) inside the ${size}-byte blob`);
    }
    assert.ok(wholeRanges.reduce((n, s) => n + s.count, 0) >= big.length, "the ranges cover big.bin");
    t.diagnostic(`blob kernel form ${size} bytes; events during mount: ${atMount.length}; during readdir + inline read: ${atMetadata.length}`);
    t.diagnostic(`big.bin (${big.length} B) read by pid ${whole.pid}: ${wholeRanges.length} events, pids ${[...new Set(wholeRanges.map((s) => s.pid))].join(",")}: ${ranges(wholeRanges)}`);
    t.diagnostic(`mid.bin 4 KiB at 40960 by pid ${small.pid}: ${ranges(smallRanges)}`);
    t.diagnostic(`big.bin read again: ${rereadRanges.length} events (erofs page cache)`);
  } finally {
    // Readers first, then the mount, and the group last: closing it allows whatever is pending, which
    // must not reach a live mount.
    await killChildren();
    try {
      m?.unmount();
    } finally {
      g.close();
      fs.closeSync(src);
    }
  }
});
