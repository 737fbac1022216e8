// One remote stack: the HTTP remote and the registry remote read ranges through the same reader
// (src/remote/range-reader.ts) and retry through the same loop (src/remote/retry.ts). Each test runs the
// same case against both: a loopback HTTP server, and the real registry behind a loopback proxy that
// injects the fault (pacing, an ignored Range, 503 with Retry-After).
import { after, before, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { registryProxy, startRegistry, type RegistryProxy, type RunningRegistry } from "../helpers/registry.ts";
import { openRemote, type Remote } from "../../src/remote/index.ts";
import { RegistryClient, RegistryRemote, staticCredentials } from "../../src/remote/registry/index.ts";

/** The fault of the current test, applied by both servers to blob GETs. */
interface Fault {
  /** Send the first half of the answer, then the rest once `release` is called (or after 5 s). */
  paced?: { release: Promise<void>; sentFirstHalf: () => void };
  /** Answer 200 with the whole blob, as a server that ignores Range does. */
  ignoreRange?: boolean;
  /** Answer the next `count` requests with 503 and this Retry-After. */
  busy?: { retryAfter: string; count: number };
}

const blob = randomBytes(300_000);
let fault: Fault = {};
/** Blob GETs that reached a server: when, the Range asked, and how many body bytes the server sent. */
const seen: Array<{ at: number; range?: string; sent: number }> = [];

let reg: RunningRegistry;
let proxy: RegistryProxy | undefined;
let httpServer: http.Server | undefined;
let client: RegistryClient;
const remotes: Array<{ kind: string; remote: Remote; path: string }> = [];

/** Applies the fault to a blob answer; `whole` is the blob, `range` the Range header. Returns false to answer normally. */
function faulty(req: http.IncomingMessage, res: http.ServerResponse): boolean {
  seen.push({ at: Date.now(), range: req.headers.range, sent: 0 });
  const busy = fault.busy;
  if (busy && busy.count > 0) {
    busy.count--;
    req.resume();
    res.writeHead(503, { "retry-after": busy.retryAfter, "content-type": "application/json" }).end('{"errors":[{"code":"UNAVAILABLE","message":"busy"}]}');
    return true;
  }
  return false;
}

/** Writes `body`, paced when the test asks: half, then the rest once released. */
function send(res: http.ServerResponse, body: Buffer): void {
  seen.at(-1)!.sent = body.length;
  const paced = fault.paced;
  if (!paced) { res.end(body); return; }
  const half = body.length >> 1;
  res.write(body.subarray(0, half), () => paced.sentFirstHalf());
  const timeout = new Promise<void>((resolve) => setTimeout(resolve, 5000).unref());
  void Promise.race([paced.release, timeout]).then(() => res.end(body.subarray(half)));
}

before(async () => {
  reg = await startRegistry();
  const setup = new RegistryClient({ credentials: staticCredentials({}) });
  const repo = { registry: reg.host, repository: "eod/ranges" };
  const pushed = await setup.pushBlob(repo, blob);
  await setup.close();
  proxy = await registryProxy(reg.host, {
    before(req, res) {
      if (!/\/blobs\/sha256:/.test(req.url!) || req.method !== "GET") return false;
      if (faulty(req, res)) return true;
      if (fault.ignoreRange) delete req.headers.range;
      return false;
    },
    body(req, res, body) {
      if (/\/blobs\/sha256:/.test(req.url!) && req.method === "GET") send(res, body);
      else res.end(body);
    },
  });
  client = new RegistryClient({ credentials: staticCredentials({}), backoff: { baseMs: 5, capMs: 20 } });
  remotes.push({ kind: "registry", remote: new RegistryRemote(client, { registry: proxy.host, repository: repo.repository }), path: pushed.digest });

  httpServer = http.createServer((req, res) => {
    if (faulty(req, res)) return;
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "");
    if (!m || fault.ignoreRange) {
      res.writeHead(200, { "content-length": blob.length });
      send(res, blob);
      return;
    }
    const [a, b] = [Number(m[1]), Math.min(Number(m[2]), blob.length - 1)];
    res.writeHead(206, { "content-range": `bytes ${a}-${b}/${blob.length}`, "content-length": b - a + 1 });
    send(res, blob.subarray(a, b + 1));
  });
  await new Promise<void>((resolve) => httpServer!.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}/`;
  remotes.push({ kind: "http", remote: openRemote(url), path: "blob" });
});

after(async () => {
  for (const { remote } of remotes) await remote.close();
  await client?.close();
  await new Promise<void>((resolve) => { if (!httpServer) resolve(); else { httpServer.close(() => resolve()); httpServer.closeAllConnections(); } });
  await proxy?.close();
  await reg?.stop();
});

beforeEach(() => { fault = {}; seen.length = 0; });

test("a miss reads only the requested range and hands its bytes over as they arrive", async () => {
  for (const { kind, remote, path } of remotes) {
    seen.length = 0;
    let release!: () => void;
    let firstHalfSent = false;
    let receivedWhenHalfSent = -1;
    fault.paced = { release: new Promise<void>((resolve) => { release = resolve; }), sentFirstHalf: () => { firstHalfSent = true; } };
    const [offset, length] = [123_456, 100_000];
    const before = remote.stats().bytes;
    const got = await remote.readRange(path, offset, length, {
      onData: (bytes, received) => {
        // The first half is usable before the server has sent the second one.
        if (firstHalfSent && received >= length >> 1 && receivedWhenHalfSent < 0) {
          receivedWhenHalfSent = received;
          assert.deepEqual(Buffer.from(bytes.subarray(0, received)), blob.subarray(offset, offset + received));
          release();
        }
      },
    });
    assert.deepEqual(Buffer.from(got), blob.subarray(offset, offset + length), kind);
    assert.ok(receivedWhenHalfSent >= length >> 1 && receivedWhenHalfSent < length, `${kind}: the first half arrived through onData before the rest was sent (${receivedWhenHalfSent})`);
    assert.deepEqual(seen.map((s) => [s.range, s.sent]), [[`bytes=${offset}-${offset + length - 1}`, length]], `${kind}: one request, for the range, answered with its bytes only`);
    assert.equal(remote.stats().bytes - before, length, kind);
  }
});

test("a 200 to a Range request: used from offset 0 up to the range, refused elsewhere without a retry", async () => {
  fault.ignoreRange = true;
  for (const { kind, remote, path } of remotes) {
    seen.length = 0;
    assert.deepEqual(Buffer.from(await remote.readRange(path, 0, 1000)), blob.subarray(0, 1000), kind);
    await assert.rejects(remote.readRange(path, 4096, 1000), { code: "REMOTE_STATUS", status: 200, message: /ignored the range/ }, kind);
    await assert.rejects(remote.readRange(path, 0, blob.length + 1), { code: "IMAGE_INVALID", message: /past the end/ }, kind);
    assert.equal(seen.length, 3, `${kind}: none of them retried`);
  }
});

test("the one retry loop waits for a 503's Retry-After, and gives up at once on one too long", async () => {
  for (const { kind, remote, path } of remotes) {
    seen.length = 0;
    fault.busy = { retryAfter: "1", count: 1 };
    const retries = remote.stats().retries;
    assert.deepEqual(Buffer.from(await remote.readRange(path, 10, 20)), blob.subarray(10, 30), kind);
    assert.equal(seen.length, 2, kind);
    assert.ok(seen[1].at - seen[0].at >= 950, `${kind}: waited ${seen[1].at - seen[0].at} ms for Retry-After: 1`);
    assert.equal(remote.stats().retries - retries, 1, kind);

    seen.length = 0;
    fault.busy = { retryAfter: "3600", count: 1 };
    await assert.rejects(remote.readRange(path, 10, 20), { code: "REMOTE_STATUS", status: 503, message: /asks to wait 3600 s \(Retry-After\)/ }, kind);
    assert.equal(seen.length, 1, `${kind}: not retried`);
  }
});
