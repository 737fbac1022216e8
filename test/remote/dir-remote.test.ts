// DirRemote: the same Remote API on a local image directory, with the same error codes as HTTP.
import { after, before, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { randomImage } from "../helpers/random-image.ts";
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { DirRemote, openRemote, type Remote } from "../../src/remote/index.ts";

let work: string;
let img: string;
let blob: string;

before(async () => {
  ({ work, img, blob } = await randomImage("eod-dir-remote-", { big: 200_000 }));
});

after(() => fs.rmSync(work, { recursive: true, force: true }));

function track<T extends Remote>(t: TestContext, r: T): T {
  t.after(() => r.close());
  return r;
}

const fileBytes = (rel: string) => new Uint8Array(fs.readFileSync(path.join(img, rel)));

test("readRange() reads into the caller's buffer when it is large enough (openRemote's retry wrapper passes it on)", async (t) => {
  const r = track(t, openRemote(img));
  const all = fileBytes(blob);
  const into = new Uint8Array(10_000).fill(0xee);
  const got = await r.readRange(blob, 500, 4096, { into });
  assert.equal(got.buffer, into.buffer);
  assert.equal(got.byteOffset, into.byteOffset);
  assert.deepEqual(got, all.subarray(500, 500 + 4096));
  assert.equal(into[4096], 0xee, "nothing past the answer is written");
  const small = new Uint8Array(100);
  const other = await r.readRange(blob, 0, 200, { into: small }); // too small: a buffer of its own
  assert.notEqual(other.buffer, small.buffer);
  assert.deepEqual(other, all.subarray(0, 200));
});

test("readFile() and readRange() return the exact bytes and count them", async (t) => {
  const r = track(t, openRemote(img));
  assert.equal(r.location, img);
  assert.deepEqual(await r.readFile("manifest.json"), fileBytes("manifest.json"));
  const all = fileBytes(blob);
  assert.deepEqual(await r.readRange(blob, 12_345, 6789), all.subarray(12_345, 12_345 + 6789));
  assert.deepEqual(await r.readRange(blob, 0, all.length), all);
  assert.equal((await r.readRange(blob, all.length, 0)).length, 0);
  const parallel = await Promise.all(Array.from({ length: 20 }, (_, i) => r.readRange(blob, i * 100, 100)));
  parallel.forEach((g, i) => assert.deepEqual(g, all.subarray(i * 100, i * 100 + 100)));
  const s = r.stats();
  assert.equal(s.requests, 24);
  assert.equal(s.bytes, fileBytes("manifest.json").length + 6789 + all.length + 2000);
  assert.deepEqual([s.retries, s.errors], [0, 0]);
});

test("a file: URL opens the directory too", async (t) => {
  const r = track(t, openRemote(pathToFileURL(img).href));
  assert.deepEqual(await r.readFile("manifest.json"), fileBytes("manifest.json"));
});

test("a missing file is REMOTE_STATUS 404, not retried", async (t) => {
  const r = track(t, openRemote(img));
  await assert.rejects(r.readFile("blobs/nope"), { code: "REMOTE_STATUS", status: 404 });
  await assert.rejects(r.readRange("nope/deeper", 0, 1), { code: "REMOTE_STATUS", status: 404 });
  await assert.rejects(r.readFile("blobs"), { code: "REMOTE_STATUS", status: 404 }); // a directory is not a file
  assert.equal(r.stats().retries, 0);
});

test("a range past the end is REMOTE_IO (retried, then thrown)", async (t) => {
  const once = track(t, new DirRemote(img));
  const size = fileBytes(blob).length;
  await assert.rejects(once.readRange(blob, size - 10, 11), { code: "REMOTE_IO", message: /file ends after/ });
  await assert.rejects(once.readRange(blob, size + 100, 1), { code: "REMOTE_IO" });
  const retried = track(t, openRemote(img, { retries: 2 }));
  await assert.rejects(retried.readRange(blob, size, 1), { code: "REMOTE_IO" });
  assert.equal(retried.stats().retries, 2);
  assert.equal(retried.stats().errors, 3);
});

test("readFile() refuses a file over maxBytes", async (t) => {
  const r = track(t, openRemote(img));
  await assert.rejects(r.readFile(blob, { maxBytes: 1000 }), { code: "IMAGE_INVALID" });
});

test("a file that appears after a 404 can be read", async (t) => {
  const r = track(t, openRemote(img));
  const late = path.join(img, "late.txt");
  t.after(() => fs.rmSync(late, { force: true }));
  await assert.rejects(r.readFile("late.txt"), { code: "REMOTE_STATUS", status: 404 });
  fs.writeFileSync(late, "now\n");
  assert.equal(Buffer.from(await r.readFile("late.txt")).toString(), "now\n");
});

test("paths may not leave the image; bad ranges are RangeErrors", async (t) => {
  const r = track(t, openRemote(img));
  await assert.rejects(r.readFile("../img/manifest.json"), TypeError);
  await assert.rejects(r.readFile(path.join(img, "manifest.json")), TypeError);
  await assert.rejects(r.readRange(blob, -1, 10), RangeError);
  await assert.rejects(r.readRange(blob, 0, 1.5), RangeError);
  assert.equal(r.stats().requests, 0);
});

test("an aborted signal rejects with its reason", async (t) => {
  const r = track(t, openRemote(img));
  const ac = new AbortController();
  ac.abort(new Error("stop"));
  await assert.rejects(r.readRange(blob, 0, 10, { signal: ac.signal }), { message: "stop" });
  assert.equal(r.stats().retries, 0);
});

test("close() closes the cached handles; later reads fail", async () => {
  const r = openRemote(img);
  await r.readFile("manifest.json");
  await r.close();
  await assert.rejects(r.readFile("manifest.json"), { code: "REMOTE_IO", message: /closed/ });
  assert.equal(r.stats().retries, 0);
});
