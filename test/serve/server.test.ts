// eod serve: ranges, HEAD, path refusal, throttle, latency, faults and stats of the in-process server, then
// the command itself in a child process (started and stopped by pid).
import { after, before, beforeEach, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { randomImage } from "../helpers/random-image.ts";
import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { serveCommand } from "../../src/cli/serve.ts";
import { FaultSet, parseFaultSpec } from "../../src/serve/faults.ts";
import { parseRange, startServer, type RunningServer } from "../../src/serve/server.ts";

const REPO = path.resolve(import.meta.dirname, "../..");
let work: string;
let img: string;
let blob: string; // 300,000 random bytes, stored as is
let srv: RunningServer;

before(async () => {
  ({ work, img, blob } = await randomImage("eod-serve-", { big: 300_000 }));
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

interface Answer { status: number; headers: http.IncomingHttpHeaders; body: Buffer; error?: Error }

/**
 * One request with the raw target (no URL normalization, so "/../x" reaches the server as is) on its own
 * connection. A response cut short resolves with what arrived and `error` set; `abortAfterMs` gives up on
 * a stalled one.
 */
function request(base: string, target: string, opts: { method?: string; headers?: Record<string, string>; body?: string; abortAfterMs?: number } = {}): Promise<Answer> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path: target, method: opts.method ?? "GET", headers: opts.headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      const done = (error?: Error) => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts), error });
      res.on("data", (c: Buffer) => parts.push(c));
      res.on("end", () => done());
      res.on("error", (err) => done(err));
      res.on("aborted", () => done(new Error("aborted")));
      if (opts.abortAfterMs) setTimeout(() => { done(new Error("gave up")); req.destroy(); }, opts.abortAfterMs);
    });
    req.on("error", reject);
    req.end(opts.body);
  });
}

async function fresh(t: TestContext, opts: Parameters<typeof startServer>[0]): Promise<RunningServer> {
  const s = await startServer(opts);
  t.after(() => s.close());
  return s;
}

const fileBytes = (rel: string) => fs.readFileSync(path.join(img, rel));

test("parseRange() reads a-b, a- and -n, ignores what it does not support, and spots unsatisfiable ranges", () => {
  assert.deepEqual(parseRange(undefined, 100), { kind: "full" });
  assert.deepEqual(parseRange("bytes=0-9", 100), { kind: "range", start: 0, end: 9 });
  assert.deepEqual(parseRange("bytes=90-", 100), { kind: "range", start: 90, end: 99 });
  assert.deepEqual(parseRange("bytes=-5", 100), { kind: "range", start: 95, end: 99 });
  assert.deepEqual(parseRange("bytes=-500", 100), { kind: "range", start: 0, end: 99 });
  assert.deepEqual(parseRange("bytes=50-1000", 100), { kind: "range", start: 50, end: 99 });
  assert.deepEqual(parseRange("bytes=0-1,5-6", 100), { kind: "full" });
  assert.deepEqual(parseRange("items=0-1", 100), { kind: "full" });
  assert.deepEqual(parseRange("bytes=9-1", 100), { kind: "full" });
  assert.deepEqual(parseRange("bytes=100-", 100), { kind: "unsatisfiable" });
  assert.deepEqual(parseRange("bytes=100-200", 100), { kind: "unsatisfiable" });
  assert.deepEqual(parseRange("bytes=-0", 100), { kind: "unsatisfiable" });
  assert.deepEqual(parseRange("bytes=-1", 0), { kind: "unsatisfiable" });
});

test("GET answers ranges with 206 and Content-Range, whole files with 200", async () => {
  const all = fileBytes(blob);
  const size = all.length;
  const cases: Array<[string, number, number]> = [["bytes=0-9", 0, 9], ["bytes=299990-", 299_990, size - 1], ["bytes=-7", size - 7, size - 1], ["bytes=1000-999999", 1000, size - 1]];
  for (const [range, a, b] of cases) {
    const r = await request(srv.url, `/${blob}`, { headers: { range } });
    assert.equal(r.status, 206, range);
    assert.equal(r.headers["content-range"], `bytes ${a}-${b}/${size}`);
    assert.equal(r.headers["content-length"], String(b - a + 1));
    assert.deepEqual(r.body, all.subarray(a, b + 1));
  }
  const whole = await request(srv.url, "/manifest.json");
  assert.equal(whole.status, 200);
  assert.equal(whole.headers["accept-ranges"], "bytes");
  assert.equal(whole.headers["content-type"], "application/json");
  assert.deepEqual(whole.body, fileBytes("manifest.json"));
});

test("an unsatisfiable range is 416 with bytes */size", async () => {
  const size = fileBytes(blob).length;
  for (const range of [`bytes=${size}-`, "bytes=-0", `bytes=${size + 5}-${size + 10}`]) {
    const r = await request(srv.url, `/${blob}`, { headers: { range } });
    assert.equal(r.status, 416, range);
    assert.equal(r.headers["content-range"], `bytes */${size}`);
  }
});

test("HEAD gives the headers and no body", async () => {
  const r = await request(srv.url, `/${blob}`, { method: "HEAD" });
  assert.equal(r.status, 200);
  assert.equal(r.headers["content-length"], String(fileBytes(blob).length));
  assert.equal(r.body.length, 0);
  const ranged = await request(srv.url, `/${blob}`, { method: "HEAD", headers: { range: "bytes=5-9" } });
  assert.equal(ranged.status, 206);
  assert.equal(ranged.headers["content-length"], "5");
  assert.equal(srv.stats().bytes, 0);
});

test("paths that leave the directory, directories and other methods are refused", async (t) => {
  fs.writeFileSync(path.join(work, "secret"), "outside\n");
  const withLink = path.join(work, "linked");
  fs.mkdirSync(withLink);
  fs.symlinkSync(path.join(work, "secret"), path.join(withLink, "escape"));
  const s2 = await fresh(t, { root: withLink, port: 0 });
  for (const target of ["/../secret", "/blobs/../manifest.json", "/%2e%2e/secret", "/blobs%2f..%2fmanifest.json", "//etc/passwd", "/./manifest.json", "/a%00b"]) {
    assert.equal((await request(srv.url, target)).status, 400, target);
  }
  for (const target of ["/", "/blobs", "/blobs/", "/nope"]) {
    assert.equal((await request(srv.url, target)).status, 404, target);
  }
  assert.equal((await request(s2.url, "/escape")).status, 404); // a symlink out of the root
  const put = await request(srv.url, "/manifest.json", { method: "PUT", body: "x" });
  assert.equal(put.status, 405);
  assert.equal(put.headers.allow, "GET, HEAD");
});

test("--rate throttles: 200 KB at 1 MB/s takes at least 150 ms, two at once share the rate", async (t) => {
  const slow = await fresh(t, { root: img, port: 0, rateBytesPerS: 1_000_000 });
  let t0 = performance.now();
  const r = await request(slow.url, `/${blob}`, { headers: { range: "bytes=0-199999" } });
  let ms = performance.now() - t0;
  assert.equal(r.body.length, 200_000);
  assert.ok(ms >= 150 && ms < 1000, `took ${ms.toFixed(0)} ms`);
  t0 = performance.now();
  await Promise.all([0, 1].map(() => request(slow.url, `/${blob}`, { headers: { range: "bytes=0-99999" } })));
  ms = performance.now() - t0;
  assert.ok(ms >= 150 && ms < 1000, `two took ${ms.toFixed(0)} ms`);
});

test("--latency delays each response's headers", async (t) => {
  const far = await fresh(t, { root: img, port: 0, latencyMs: 150 });
  const t0 = performance.now();
  assert.equal((await request(far.url, "/manifest.json")).status, 200);
  assert.ok(performance.now() - t0 >= 145);
  const c0 = performance.now();
  await request(far.url, "/_eod/stats"); // control requests are never delayed
  assert.ok(performance.now() - c0 < 100);
});

test("status faults through /_eod/faults honour match and count", async () => {
  const set = await request(srv.url, "/_eod/faults", { method: "POST", body: JSON.stringify({ mode: "status", status: 503, match: "manifest", count: 2 }) });
  assert.equal(set.status, 200);
  assert.deepEqual(JSON.parse(set.body.toString()), { faults: [{ mode: "status", status: 503, match: "manifest", count: 2 }] });
  assert.equal((await request(srv.url, "/bootstrap.erofs")).status, 200);
  assert.equal((await request(srv.url, "/manifest.json")).status, 503);
  assert.equal((await request(srv.url, "/manifest.json", { method: "HEAD" })).status, 503);
  assert.equal((await request(srv.url, "/manifest.json")).status, 200);
  assert.deepEqual(JSON.parse((await request(srv.url, "/_eod/faults")).body.toString()).faults[0].count, 0);

  await request(srv.url, "/_eod/faults", { method: "POST", body: JSON.stringify({ mode: "status", status: 429 }) });
  assert.equal((await request(srv.url, "/manifest.json")).status, 429);
  assert.equal((await request(srv.url, "/_eod/faults", { method: "DELETE" })).status, 200);
  assert.equal((await request(srv.url, "/manifest.json")).status, 200);

  const bad = await request(srv.url, "/_eod/faults", { method: "POST", body: JSON.stringify({ mode: "explode" }) });
  assert.equal(bad.status, 400);
  assert.match(JSON.parse(bad.body.toString()).error, /mode must be one of/);
  assert.equal((await request(srv.url, "/_eod/faults", { method: "POST", body: "{" })).status, 400);
  assert.equal((await request(srv.url, "/_eod/nothing")).status, 404);
});

test("corrupt keeps the length, drop cuts the body, stall stops sending", async () => {
  const all = fileBytes(blob);
  srv.setFaults({ mode: "corrupt", count: 1 });
  const c = await request(srv.url, `/${blob}`, { headers: { range: "bytes=10-5009" } });
  assert.equal(c.status, 206);
  assert.equal(c.body.length, 5000);
  assert.notDeepEqual(c.body, all.subarray(10, 5010));
  let diff = 0;
  for (let i = 0; i < 5000; i++) if (c.body[i] !== all[10 + i]) diff++;
  assert.ok(diff >= 4 && diff <= 6, `${diff} bytes flipped`); // one per KiB

  srv.setFaults({ mode: "drop", count: 1 });
  const d = await request(srv.url, `/${blob}`);
  assert.equal(d.status, 200);
  assert.ok(d.error, "the connection was cut");
  assert.ok(d.body.length < all.length);

  srv.setFaults({ mode: "stall", count: 1 });
  const s = await request(srv.url, `/${blob}`, { abortAfterMs: 300 });
  assert.equal(s.status, 200);
  assert.equal(s.error?.message, "gave up");
  assert.equal(s.body.length, all.length / 2);

  assert.deepEqual((await request(srv.url, `/${blob}`)).body, all); // counts used up
});

test("probability 0 never fires and does not use up the count", () => {
  const f = new FaultSet([{ mode: "drop", probability: 0, count: 1 }, { mode: "corrupt", match: "blobs/" }]);
  assert.equal(f.pick("manifest.json", true), undefined);
  assert.equal(f.pick("blobs/x", true)?.mode, "corrupt");
  assert.equal(f.pick("blobs/x", false), undefined); // HEAD: nothing to corrupt
  assert.equal(f.list()[0].count, 1);
  assert.deepEqual(parseFaultSpec("status,status=503,count=2,match=blobs/"), [{ mode: "status", status: 503, count: 2, match: "blobs/" }]);
  assert.deepEqual(parseFaultSpec('{"mode":"stall"}'), [{ mode: "stall" }]);
  assert.throws(() => parseFaultSpec("drop,probability=2"), RangeError);
  assert.throws(() => parseFaultSpec("drop,colour=red"), TypeError);
});

test("/_eod/stats counts requests and body bytes by path; reset starts again", async () => {
  await request(srv.url, `/${blob}`, { headers: { range: "bytes=0-999" } });
  await request(srv.url, `/${blob}`, { headers: { range: "bytes=-24" } });
  await request(srv.url, "/manifest.json", { method: "HEAD" });
  await request(srv.url, "/nope");
  const stats = JSON.parse((await request(srv.url, "/_eod/stats")).body.toString());
  assert.equal(stats.requests, 4);
  assert.equal(stats.bytes, 1024);
  assert.deepEqual(stats.byPath[blob], { requests: 2, bytes: 1024 });
  assert.deepEqual(stats.byPath["manifest.json"], { requests: 1, bytes: 0 });
  assert.deepEqual(stats.byPath.nope, { requests: 1, bytes: 0 });
  const reset = await request(srv.url, "/_eod/stats/reset", { method: "POST" });
  assert.equal(JSON.parse(reset.body.toString()).requests, 0);
  assert.deepEqual(srv.stats().byPath, {});
});

test("startServer() refuses a non-loopback address unless allowRemote", async () => {
  await assert.rejects(startServer({ root: img, host: "0.0.0.0", port: 0 }), RangeError);
  await assert.rejects(serveCommand([img, "--listen", "0.0.0.0:0"]), { code: "USAGE", message: /--allow-remote/ });
  await assert.rejects(serveCommand([img, "--listen", "nonsense"]), { code: "USAGE" });
  await assert.rejects(serveCommand([path.join(work, "no-such-dir"), "--listen", "127.0.0.1:0"]), { code: "USAGE" });
});

/** Starts `eod serve` in a child process through serveCommand (not yet wired into main.ts); killed by pid at the end. */
async function spawnServe(t: TestContext, args: string[]): Promise<{ line: string; exit: Promise<number | null>; pid: number }> {
  const script = `import { serveCommand } from ${JSON.stringify(path.join(REPO, "src/cli/serve.ts"))};\n` +
    "process.exitCode = await serveCommand(process.argv.slice(1));";
  const child = spawn(process.execPath, ["--input-type=module", "-e", script, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  const pid = child.pid!;
  const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  t.after(() => { if (child.exitCode === null && child.signalCode === null) process.kill(pid, "SIGKILL"); });
  let stderr = "";
  child.stderr.on("data", (c) => { stderr += c; });
  const line = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (c) => {
      out += c;
      if (out.includes("\n")) resolve(out.slice(0, out.indexOf("\n")));
    });
    child.once("exit", (code) => reject(new Error(`eod serve exited ${code} before printing its URL:\n${stderr}`)));
  });
  return { line, exit, pid };
}

test("eod serve prints its URL, serves files and exits 0 on SIGTERM", { timeout: 20_000 }, async (t) => {
  const { line, exit, pid } = await spawnServe(t, [img, "--listen", "127.0.0.1:0"]);
  assert.match(line, /^http:\/\/127\.0\.0\.1:\d+\/$/);
  const r = await request(line, "/manifest.json");
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, fileBytes("manifest.json"));
  process.kill(pid, "SIGTERM");
  assert.equal(await exit, 0);
});

test("eod serve --json --fault prints url and pid and starts with the fault on", { timeout: 20_000 }, async (t) => {
  const { line, exit, pid } = await spawnServe(t, [img, "--listen", "127.0.0.1:0", "--json", "--fault", "status,status=503,count=1"]);
  const info = JSON.parse(line);
  assert.equal(info.pid, pid);
  assert.match(info.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
  assert.equal((await request(info.url, "/manifest.json")).status, 503);
  assert.equal((await request(info.url, "/manifest.json")).status, 200);
  process.kill(pid, "SIGINT");
  assert.equal(await exit, 0);
});
