// HttpRemote (through openRemote, so with the retry wrapper) against an in-process `eod serve` of a real
// image, with faults switched on per test, plus a few hand-made servers for answers eod serve never gives.
import { after, before, beforeEach, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { randomImage } from "../helpers/random-image.ts";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { openRemote, type Remote, type RemoteOptions } from "../../src/remote/index.ts";
import { startServer, type RunningServer } from "../../src/serve/server.ts";

let work: string;
let img: string;
let blob: string; // "blobs/<id>", the remote form: 300,000 random bytes stored as is
let srv: RunningServer;

before(async () => {
  ({ work, img, blob } = await randomImage("eod-http-remote-", { big: 300_000, "d/small": "hello\n" }));
  srv = await startServer({ root: img, port: 0 });
});

after(async () => {
  await srv?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

beforeEach(() => {
  srv.setFaults(null);
  srv.resetStats();
});


/** A remote closed when the test ends, pass or fail. */
function open(t: TestContext, opts: RemoteOptions & { url?: string } = {}): Remote {
  const r = openRemote(opts.url ?? srv.url, opts);
  t.after(() => r.close());
  return r;
}

/** A one-off server on 127.0.0.1:0, closed when the test ends. */
async function tinyServer(t: TestContext, handler: http.RequestListener): Promise<string> {
  const s = http.createServer(handler);
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise<void>((resolve) => { s.close(() => resolve()); s.closeAllConnections(); }));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}/`;
}

const fileBytes = (rel: string) => new Uint8Array(fs.readFileSync(path.join(img, rel)));

test("readFile() and readRange() return the exact bytes", async (t) => {
  const r = open(t);
  assert.deepEqual(await r.readFile("manifest.json"), fileBytes("manifest.json"));
  assert.deepEqual(await r.readFile("bootstrap.erofs"), fileBytes("bootstrap.erofs"));
  const all = fileBytes(blob);
  assert.deepEqual(await r.readRange(blob, 1000, 5000), all.subarray(1000, 6000));
  assert.deepEqual(await r.readRange(blob, all.length - 7, 7), all.subarray(all.length - 7));
  assert.deepEqual(await r.readRange(blob, 0, all.length), all);
  assert.equal((await r.readRange(blob, 5, 0)).length, 0);
  const s = r.stats();
  assert.equal(s.requests, 5); // the empty range sends nothing
  assert.equal(s.bytes, fileBytes("manifest.json").length + fileBytes("bootstrap.erofs").length + 5000 + 7 + all.length);
  assert.equal(s.retries, 0);
  assert.equal(s.errors, 0);
});

test("readFile() refuses a file over maxBytes without retrying", async (t) => {
  const r = open(t);
  await assert.rejects(r.readFile("bootstrap.erofs", { maxBytes: 100 }), { code: "IMAGE_INVALID" });
  assert.equal(r.stats().retries, 0);
});

test("readRange() keeps at most `concurrency` requests in flight and queues the rest", async (t) => {
  const slow = await startServer({ root: img, port: 0, latencyMs: 60 });
  t.after(() => slow.close());
  const r = open(t, { url: slow.url, concurrency: 3 });
  const all = fileBytes(blob);
  const got = await Promise.all(Array.from({ length: 12 }, (_, i) => r.readRange(blob, i * 1000, 1000)));
  got.forEach((g, i) => assert.deepEqual(g, all.subarray(i * 1000, i * 1000 + 1000)));
  assert.equal(slow.stats().maxInFlight, 3);
  assert.equal(slow.stats().requests, 12);
});

test("a 503 is retried and the read then succeeds", async (t) => {
  srv.setFaults({ mode: "status", status: 503, count: 2, match: "blobs/" });
  const r = open(t);
  assert.deepEqual(await r.readRange(blob, 0, 4096), fileBytes(blob).subarray(0, 4096));
  assert.equal(r.stats().retries, 2);
  assert.equal(r.stats().errors, 2);
  assert.equal(srv.stats().byPath[blob].requests, 3);
});

test("a persistent 503 fails with REMOTE_STATUS after the retries", async (t) => {
  srv.setFaults({ mode: "status", status: 503 });
  const r = open(t, { retries: 2 });
  await assert.rejects(r.readFile("manifest.json"), (err: Error & { code?: string; status?: number }) => {
    assert.equal(err.code, "REMOTE_STATUS");
    assert.equal(err.status, 503);
    assert.match(err.message, /^GET http:\/\/127\.0\.0\.1:\d+\/manifest\.json: HTTP 503$/);
    return true;
  });
  assert.equal(r.stats().retries, 2);
});

test("a corrupt body comes back with the same length (digests are the cache's job)", async (t) => {
  srv.setFaults({ mode: "corrupt", count: 1 });
  const r = open(t);
  const got = await r.readRange(blob, 100, 10_000);
  assert.equal(got.length, 10_000);
  assert.notDeepEqual(got, fileBytes(blob).subarray(100, 10_100));
  assert.equal(r.stats().retries, 0);
});

test("a connection dropped mid-body is REMOTE_IO and retried", async (t) => {
  srv.setFaults({ mode: "drop", count: 1 });
  const r = open(t);
  assert.deepEqual(await r.readRange(blob, 0, 100_000), fileBytes(blob).subarray(0, 100_000));
  assert.equal(r.stats().retries, 1);

  srv.setFaults({ mode: "drop", count: 1 });
  const once = open(t, { retries: 0 });
  await assert.rejects(once.readRange(blob, 0, 100_000), { code: "REMOTE_IO" });
});

test("a stalled body times out (REMOTE_TIMEOUT), is retried, and gives up in bounded time", async (t) => {
  srv.setFaults({ mode: "stall", count: 1 });
  const r = open(t, { timeoutMs: 300 });
  let t0 = performance.now();
  assert.deepEqual(await r.readRange(blob, 0, 50_000), fileBytes(blob).subarray(0, 50_000));
  assert.ok(performance.now() - t0 >= 290, "the first attempt waited for its deadline");
  assert.equal(r.stats().retries, 1);

  srv.setFaults({ mode: "stall" });
  srv.resetStats();
  const r2 = open(t, { timeoutMs: 300, retries: 2 });
  t0 = performance.now();
  await assert.rejects(r2.readRange(blob, 0, 50_000), { code: "REMOTE_TIMEOUT" });
  const elapsed = performance.now() - t0;
  // 3 attempts × 300 ms + at most 50 + 100 ms of backoff, plus scheduling slack.
  assert.ok(elapsed >= 3 * 290 && elapsed < 1800, `gave up after ${elapsed.toFixed(0)} ms`);
  assert.equal(r2.stats().retries, 2);
  assert.equal(srv.stats().byPath[blob].requests, 3);
});

test("a body that trickles in forever times out too (the deadline covers the whole request)", async (t) => {
  // undici's bodyTimeout is the longest silence between chunks, so it never fires here.
  const url = await tinyServer(t, (_req, res) => {
    res.writeHead(206, { "content-range": "bytes 0-999/1000", "content-length": 1000 });
    const timer = setInterval(() => res.write("x"), 50);
    res.on("close", () => clearInterval(timer));
  });
  const r = open(t, { url, timeoutMs: 300, retries: 0 });
  const t0 = performance.now();
  await assert.rejects(r.readRange("x", 0, 1000), { code: "REMOTE_TIMEOUT" });
  assert.ok(performance.now() - t0 < 1000);
});

test("an aborted signal ends a stalled read at once and is not retried", async (t) => {
  srv.setFaults({ mode: "stall" });
  const r = open(t, { timeoutMs: 5000 });
  const ac = new AbortController();
  setTimeout(() => ac.abort(new Error("caller gave up")), 100);
  const t0 = performance.now();
  await assert.rejects(r.readRange(blob, 0, 50_000, { signal: ac.signal }), { message: "caller gave up" });
  assert.ok(performance.now() - t0 < 1000);
  assert.equal(r.stats().retries, 0);
  assert.equal(r.stats().errors, 0);
});

test("a 404 is REMOTE_STATUS and not retried", async (t) => {
  const r = open(t);
  await assert.rejects(r.readFile("blobs/nope"), { code: "REMOTE_STATUS", status: 404 });
  await assert.rejects(r.readRange("blobs/nope", 0, 10), { code: "REMOTE_STATUS", status: 404 });
  assert.equal(r.stats().retries, 0);
  assert.equal(srv.stats().requests, 2);
});

test("a range past the end is REMOTE_STATUS 416", async (t) => {
  const r = open(t);
  await assert.rejects(r.readRange(blob, 400_000, 10), { code: "REMOTE_STATUS", status: 416 });
});

test("a short body, a wrong Content-Range and an ignored Range away from offset 0 are refused", async (t) => {
  const url = await tinyServer(t, (req, res) => {
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "")!;
    const [a, b] = [Number(m[1]), Number(m[2])];
    if (req.url === "/short") { // Content-Range as asked, but fewer bytes, honestly declared
      res.writeHead(206, { "content-range": `bytes ${a}-${b}/1000`, "content-length": b - a + 1 - 10 });
      res.end(Buffer.alloc(b - a + 1 - 10));
    } else if (req.url === "/other") { // another range than asked
      res.writeHead(206, { "content-range": `bytes ${a + 1}-${b + 1}/1000`, "content-length": b - a + 1 });
      res.end(Buffer.alloc(b - a + 1));
    } else { // ignores Range
      res.writeHead(200, { "content-length": 1000 });
      res.end(Buffer.alloc(1000));
    }
  });
  const r = open(t, { url, retries: 0 });
  await assert.rejects(r.readRange("short", 0, 100), { code: "REMOTE_IO" });
  await assert.rejects(r.readRange("other", 10, 100), { code: "REMOTE_IO" });
  await assert.rejects(r.readRange("whole", 10, 100), { code: "REMOTE_STATUS", status: 200 });
  // A 200 from offset 0 is used as far as asked (range-reader.ts's one policy); past its end, the file is too short.
  assert.equal((await r.readRange("whole", 0, 100)).length, 100);
  assert.equal((await r.readRange("whole", 0, 1000)).length, 1000);
  await assert.rejects(r.readRange("whole", 0, 1001), { code: "IMAGE_INVALID" });
});

test("a body longer than asked is REMOTE_IO", async (t) => {
  const url = await tinyServer(t, (req, res) => {
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "")!;
    res.writeHead(206, { "content-range": `bytes ${m[1]}-${m[2]}/1000` }); // chunked, no length: the body decides
    res.end(Buffer.alloc(Number(m[2]) - Number(m[1]) + 2));
  });
  const r = open(t, { url, retries: 0 });
  await assert.rejects(r.readRange("x", 0, 100), { code: "REMOTE_IO" });
});

test("a base URL with a path prefix (with or without the trailing slash) works", async (t) => {
  const parent = await startServer({ root: work, port: 0 });
  t.after(() => parent.close());
  for (const url of [`${parent.url}img`, `${parent.url}img/`]) {
    const r = open(t, { url });
    assert.equal(r.location, `${parent.url}img/`);
    assert.deepEqual(await r.readFile("manifest.json"), fileBytes("manifest.json"));
    assert.deepEqual(await r.readRange(blob, 10, 20), fileBytes(blob).subarray(10, 30));
  }
  assert.equal(parent.stats().byPath["img/manifest.json"].requests, 2);
});

test("relative paths may not leave the image", async (t) => {
  const r = open(t);
  await assert.rejects(r.readFile("../etc/passwd"), TypeError);
  await assert.rejects(r.readFile("/etc/passwd"), TypeError);
  await assert.rejects(r.readRange("blobs//x", 0, 1), TypeError);
  assert.equal(srv.stats().requests, 0);
});

test("a refused connection is REMOTE_IO after the retries", async (t) => {
  // A loopback port nobody listens on: take one from a server, then close it.
  const s = http.createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  const r = open(t, { url: `http://127.0.0.1:${port}/`, retries: 1 });
  await assert.rejects(r.readFile("manifest.json"), { code: "REMOTE_IO" });
  assert.equal(r.stats().retries, 1);
});
