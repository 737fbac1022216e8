// Our DEFLATE/gzip decoder (src/image/inflate.ts) against node:zlib and gzip(1): the same bytes from every
// kind of block and header, in any push sizes; block starts where zlib can resume; corrupt input refused.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { gunzip, inflateRaw, Inflater, type BlockStart } from "../../src/image/inflate.ts";
import { hasTool } from "../helpers/layer-spans.ts";
import { unavailable } from "../helpers/skip.ts";

function textOf(lines: number): Buffer {
  return Buffer.from(Array.from({ length: lines }, (_, i) => `${i} ${["usr/lib/x86_64-linux-gnu", "etc/ssl/certs", "bin"][i % 3]}/${(i * 7919) % 1000}.so mode 0644\n`).join(""));
}

const DATA: Record<string, Buffer> = {
  random: randomBytes(200_000),
  text: textOf(20_000),
  repetitive: Buffer.alloc(3_000_000, "ab"), // 258-byte matches at distance 2: blocks of megabytes
  tiny: Buffer.from("a"),
  empty: Buffer.alloc(0),
};

function pushed(inf: Inflater, data: Uint8Array, step: number): Buffer {
  const out: Uint8Array[] = [];
  for (let at = 0; at < data.length; at += step) out.push(...inf.push(data.subarray(at, at + step)));
  out.push(...inf.finish());
  return Buffer.concat(out);
}

test("inflateRaw() and gunzip() equal node:zlib at levels 0 (stored), 1, 6, 9 and with fixed blocks only", () => {
  for (const [name, data] of Object.entries(DATA)) {
    for (const opts of [{ level: 0 }, { level: 1 }, { level: 6 }, { level: 9 }, { level: 6, strategy: zlib.constants.Z_FIXED }]) {
      assert.deepEqual(Buffer.from(inflateRaw(zlib.deflateRawSync(data, opts))), data, `${name} raw ${JSON.stringify(opts)}`);
      assert.deepEqual(Buffer.from(gunzip(zlib.gzipSync(data, opts))), data, `${name} gzip ${JSON.stringify(opts)}`);
    }
  }
});

test("Inflater gives the same bytes whatever the push sizes (1 byte, 7 bytes, 64 KiB)", () => {
  const gz = zlib.gzipSync(Buffer.concat([DATA.text, DATA.random.subarray(0, 50_000), DATA.text]), { level: 6 });
  const want = zlib.gunzipSync(gz);
  for (const step of [1, 7, 65536]) assert.deepEqual(pushed(new Inflater({ format: "gzip" }), gz, step), want, `step ${step}`);
});

test("gunzip() decodes concatenated members, each trailer checked, and ignores zero padding after the last", () => {
  const parts = [DATA.text, DATA.empty, DATA.random.subarray(0, 1000), DATA.tiny];
  const gz = Buffer.concat(parts.map((p, k) => zlib.gzipSync(p, { level: 1 + 4 * (k % 3) })));
  assert.deepEqual(Buffer.from(gunzip(gz)), Buffer.concat(parts));
  assert.deepEqual(Buffer.from(gunzip(Buffer.concat([gz, Buffer.alloc(1000)]))), Buffer.concat(parts));
});

test("gunzip() reads gzip(1)'s headers: -n (no name), with FNAME, and every optional field (FEXTRA, FCOMMENT, FHCRC)", { skip: unavailable(!hasTool("gzip") && "needs gzip(1)") }, (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "eod-inflate-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, "layer.tar");
  fs.writeFileSync(file, DATA.text);
  for (const args of [["-n", "-c", file], ["-N", "-c", file], ["-c", "-9"]]) {
    const gz = execFileSync("gzip", args, args.includes(file) ? {} : { input: DATA.text });
    assert.equal(gz[3] & 8, args[0] === "-N" ? 8 : 0, `FNAME with ${args.join(" ")}`);
    assert.deepEqual(Buffer.from(gunzip(gz)), DATA.text);
  }
  // A header with every field, made by hand: FLG = FHCRC | FEXTRA | FNAME | FCOMMENT.
  const body = zlib.deflateRawSync(DATA.text);
  const head = Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 2 | 4 | 8 | 16, 0, 0, 0, 0, 0, 3]), Buffer.from([4, 0, 0x41, 0x42, 2, 0]), Buffer.from("layer.tar\0comment\0")]);
  const crc16 = Buffer.alloc(2);
  crc16.writeUInt16LE(zlib.crc32(head) & 0xffff);
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(zlib.crc32(DATA.text), 0);
  trailer.writeUInt32LE(DATA.text.length, 4);
  const full = Buffer.concat([head, crc16, body, trailer]);
  assert.deepEqual(zlib.gunzipSync(full), DATA.text, "zlib agrees the file is valid");
  assert.deepEqual(pushed(new Inflater({ format: "gzip" }), full, 3), DATA.text);
  const badHcrc = Buffer.from(full);
  badHcrc[head.length] ^= 1;
  assert.throws(() => gunzip(badHcrc), { code: "SOURCE_INVALID", message: /header CRC/ });
});

for (const level of [6, 0]) test(`block starts (level ${level}) are where zlib can resume: from a byte-aligned start, primed with the window`, () => {
  const data = Buffer.concat([DATA.text, DATA.random.subarray(0, 100_000), DATA.text.subarray(0, 300_000)]);
  const raw = zlib.deflateRawSync(data, { level });
  const starts: (BlockStart & { window: Uint8Array })[] = [];
  const inf: Inflater = new Inflater({ format: "raw", onBlock: (b) => starts.push({ ...b, window: inf.window(b.history) }) });
  assert.deepEqual(pushed(inf, raw, 4096), data);
  assert.ok(starts.length > 3, `${starts.length} blocks`);
  assert.deepEqual([starts[0].bit, starts[0].out, starts[0].memberStart], [0, 0, true]);
  for (const s of starts.slice(1)) {
    assert.equal(s.memberStart, false);
    assert.equal(s.history, Math.min(32768, s.out));
    assert.deepEqual(Buffer.from(s.window), data.subarray(s.out - s.history, s.out));
  }
  // Those on a byte boundary resume directly (the others need gzip-span.ts's prefix: test/image/gzip-span.test.ts).
  const aligned = starts.filter((b) => b.bit % 8 === 0 && b.out > 0);
  if (level === 0) assert.equal(aligned.length, starts.length - 1, "stored blocks start on bytes");
  for (const s of aligned) {
    const rest = zlib.inflateRawSync(raw.subarray(s.bit / 8), { dictionary: s.window });
    assert.deepEqual(rest, data.subarray(s.out));
  }
});

test("watch(): zlib fed the input up to the watched bit produces the watched output", () => {
  const data = DATA.text;
  const raw = zlib.deflateRawSync(data, { level: 9 });
  for (const at of [1, 4096, 100_000, 333_333, data.length]) {
    const inf = new Inflater({ format: "raw" });
    inf.watch(at);
    const bits: number[] = [];
    for (let p = 0; p < raw.length && !bits.length; p += 1000) {
      inf.push(raw.subarray(p, p + 1000));
      bits.push(...inf.takeWatched());
    }
    if (!bits.length) {
      inf.finish();
      bits.push(...inf.takeWatched());
    }
    assert.equal(bits.length, 1);
    const bit = bits[0];
    assert.ok(bit > 0);
    const got = zlib.inflateRawSync(raw.subarray(0, Math.ceil(bit / 8)), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    assert.ok(got.length >= at, `watch ${at}: zlib made ${got.length} from ${Math.ceil(bit / 8)} bytes`);
    assert.deepEqual(got.subarray(0, at), data.subarray(0, at));
  }
});

test("watch() many times: each bit is the one a single watch there gives, in order, through stored blocks too", () => {
  for (const level of [0, 6]) {
    const data = DATA.text;
    const raw = zlib.deflateRawSync(data, { level });
    const ats = [1, 2, 3, 4096, 8192, 100_000, 100_001, 333_333, data.length];
    const single = ats.map((at) => {
      const one = new Inflater({ format: "raw" });
      one.watch(at);
      one.push(raw);
      one.finish();
      return one.takeWatched()[0];
    });
    const inf = new Inflater({ format: "raw" });
    for (const at of ats) inf.watch(at);
    const got: number[] = [];
    for (let p = 0; p < raw.length; p += 777) {
      inf.push(raw.subarray(p, p + 777));
      got.push(...inf.takeWatched());
    }
    inf.finish();
    got.push(...inf.takeWatched());
    assert.deepEqual(got, single, `level ${level}`);
    assert.throws(() => inf.watch(5), RangeError);
  }
});

test("trackReach(): matches after a block start reach back before it, never further than its history", () => {
  const data = DATA.text;
  const raw = zlib.deflateRawSync(data, { level: 9 });
  const reaches: { out: number; history: number; r: { readonly reach: number } }[] = [];
  const inf: Inflater = new Inflater({ format: "raw", onBlock: (b) => reaches.push({ out: b.out, history: b.history, r: inf.trackReach(b.out) }) });
  pushed(inf, raw, 1 << 20);
  for (const { history, r } of reaches) assert.ok(r.reach <= history);
  assert.ok(reaches.slice(1).some(({ r }) => r.reach > 1000), "text refers back across block starts");
  assert.equal(reaches[0].r.reach, 0);
});

test("corrupt input is refused with SOURCE_INVALID and a message saying what and where, never a hang", () => {
  const gz = zlib.gzipSync(DATA.text, { level: 6 });
  const refuse = (bytes: Uint8Array, msg: RegExp) => assert.throws(() => gunzip(bytes), { code: "SOURCE_INVALID", message: msg });
  refuse(gz.subarray(0, gz.length - 1), /truncated gzip trailer/);
  refuse(gz.subarray(0, gz.length - 20), /truncated/);
  refuse(gz.subarray(0, 5), /truncated/);
  refuse(Buffer.alloc(0), /before the first member/);
  refuse(Buffer.from("not gzip at all"), /not gzip/);
  const crc = Buffer.from(gz);
  crc[crc.length - 8] ^= 1;
  refuse(crc, /CRC32/);
  const isize = Buffer.from(gz);
  isize[isize.length - 1] ^= 1;
  refuse(isize, /ISIZE/);
  refuse(Buffer.concat([gz, Buffer.from("garbage")]), /trailing garbage/);
  const method = Buffer.from(gz);
  method[2] = 7;
  refuse(method, /compression method 7/);
  refuse(Buffer.concat([gz.subarray(0, 10), Buffer.from([0x07])]), /truncated|invalid block type/); // BFINAL 1, BTYPE 11
  assert.throws(() => inflateRaw(Buffer.from([0x07, 0, 0])), { code: "SOURCE_INVALID", message: /invalid block type 3/ });
  assert.throws(() => inflateRaw(Buffer.from([0x01, 5, 0, 5, 0, 1])), { code: "SOURCE_INVALID", message: /does not match its complement/ }); // stored, NLEN wrong
  // A fixed block whose first symbol is a match at distance 1 with no history.
  assert.throws(() => inflateRaw(Buffer.from([0x03, 0x02, 0x00])), { code: "SOURCE_INVALID", message: /too far back/ });
  // Flipped bytes anywhere: an error or (rarely) other bytes, but always an answer.
  for (let k = 0; k < 300; k++) {
    const bad = Buffer.from(gz);
    bad[10 + ((k * 7919) % (bad.length - 18))] ^= 1 << k % 8;
    try {
      gunzip(bad);
    } catch (err) {
      assert.equal((err as { code?: string }).code, "SOURCE_INVALID");
    }
  }
});
