// Observability: GET /metrics (control socket and --metrics-listen) is valid Prometheus text and its counters
// move with reads; eod status --json has the fields scripts use, and on a terminal draws bars; every daemon
// log line is JSON with time, level and msg. The exposition format is checked by a small parser here.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { eodOk, REPO } from "../helpers/cli.ts";
import { haveRoot, tempDir } from "../helpers/kernel.ts";
import { cleanup, eodAsync } from "../helpers/lazy.ts";
import { kernelSupportsPreContent } from "../../src/sys/fanotify.ts";
import { DaemonMetrics, type BlobCounters } from "../../src/daemon/metrics.ts";
import { parseListen } from "../../src/config/values.ts";
import { unavailable } from "../helpers/skip.ts";

// ---- a small checker of the text exposition format (0.0.4) ----

interface Sample { name: string; labels: Record<string, string>; value: number }

const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"`;
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(${LABEL}(?:,${LABEL})*)?\\})? (\\S+)(?: -?\\d+)?$`);

/** Parses the text and checks what Prometheus would reject or misread; returns samples and family types. */
function parseExposition(text: string): { samples: Sample[]; types: Map<string, string> } {
  assert.ok(text.endsWith("\n"), "ends with a newline");
  const types = new Map<string, string>();
  const helped = new Set<string>();
  const samples: Sample[] = [];
  const seen = new Set<string>();
  const familyOf = (name: string) => {
    for (const suffix of ["_bucket", "_sum", "_count"]) {
      const base = name.slice(0, -suffix.length);
      if (name.endsWith(suffix) && types.get(base) === "histogram") return base;
    }
    return name;
  };
  for (const line of text.slice(0, -1).split("\n")) {
    if (line.startsWith("# HELP ")) {
      const name = line.split(" ")[2];
      assert.match(name, new RegExp(`^${NAME}$`));
      assert.ok(!helped.has(name), `one HELP for ${name}`);
      helped.add(name);
      continue;
    }
    if (line.startsWith("# TYPE ")) {
      const [, , name, type] = line.split(" ");
      assert.ok(["counter", "gauge", "histogram", "summary", "untyped"].includes(type), `type of ${name}: ${type}`);
      assert.ok(!types.has(name), `one TYPE for ${name}`);
      assert.ok(!samples.some((s) => familyOf(s.name) === name), `TYPE of ${name} before its samples`);
      types.set(name, type);
      continue;
    }
    assert.ok(!line.startsWith("#") && line.trim() !== "", `unexpected line ${JSON.stringify(line)}`);
    const m = SAMPLE.exec(line);
    assert.ok(m, `sample line ${JSON.stringify(line)}`);
    const value = m[3] === "+Inf" ? Infinity : m[3] === "-Inf" ? -Infinity : Number(m[3]);
    assert.ok(m[3] === "NaN" || !Number.isNaN(value), `value of ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").match(new RegExp(LABEL, "g")) ?? []) {
      const eq = l.indexOf("=");
      labels[l.slice(0, eq)] = l.slice(eq + 2, -1).replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    }
    const key = `${m[1]}${JSON.stringify(labels)}`;
    assert.ok(!seen.has(key), `duplicate series ${key}`);
    seen.add(key);
    const type = types.get(familyOf(m[1]));
    assert.ok(type, `${m[1]} has a TYPE`);
    if (type === "counter") {
      assert.ok(m[1].endsWith("_total"), `counter ${m[1]} ends in _total`);
      assert.ok(value >= 0, `counter ${m[1]} is not negative`);
    }
    samples.push({ name: m[1], labels, value });
  }
  for (const [name, type] of types) {
    if (type !== "histogram") continue;
    const buckets = samples.filter((s) => s.name === `${name}_bucket`);
    assert.ok(buckets.length > 0 && buckets.at(-1)!.labels.le === "+Inf", `${name} ends with le="+Inf"`);
    for (let i = 1; i < buckets.length; i++) {
      assert.ok(Number(buckets[i].labels.le.replace("+Inf", "Infinity")) > Number(buckets[i - 1].labels.le), `${name} buckets ascend`);
      assert.ok(buckets[i].value >= buckets[i - 1].value, `${name} buckets are cumulative`);
    }
    assert.equal(buckets.at(-1)!.value, samples.find((s) => s.name === `${name}_count`)?.value, `${name} +Inf bucket = count`);
  }
  return { samples, types };
}

const value = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;

// ---- without a kernel ----

const blob = (id: string, over: Partial<BlobCounters> = {}): BlobCounters => ({
  id, hits: 0, misses: 0, fetches: 0, fetchedBytes: 0, readaheads: 0, prefetches: 0, corrupt: 0, errors: 0, inFlight: 0, cachedBytes: 0, totalBytes: 100, ...over,
});

test("the exposition parses; counters of a blob that closed are kept; label values are escaped", () => {
  const m = new DaemonMetrics();
  const frontend = { name: 'we"ird\\name\n', events: 3, denied: 1 };
  let text = m.render({ mounts: [{}], blobs: [blob("a", { hits: 5, misses: 2, fetchedBytes: 1000 }), blob("b", { hits: 1 })], remotes: [{ requests: 4, bytes: 10, retries: 1, errors: 2 }], frontend });
  let { samples, types } = parseExposition(text);
  assert.equal(value(samples, "eod_cache_hits_total"), 6);
  assert.equal(value(samples, "eod_errors_total", { kind: "remote_attempt" }), 2);
  assert.equal(value(samples, "eod_errors_total", { kind: "read_denied" }), 1);
  assert.equal(value(samples, "eod_frontend_events_total", { frontend: frontend.name }), 3, "escaped label value round-trips");
  assert.equal(types.get("eod_fetch_duration_seconds"), "histogram");
  m.observeBlobs([blob("b", { hits: 2 })]); // a closed
  text = m.render({ mounts: [], blobs: [], remotes: [], frontend: { name: "x" } });
  ({ samples } = parseExposition(text));
  assert.equal(value(samples, "eod_cache_hits_total"), 7, "a's 5 and b's last 2");
  assert.equal(value(samples, "eod_fetched_bytes_total"), 1000);
  assert.equal(value(samples, "eod_blobs_open"), 0);
});

test("--metrics-listen addresses", () => {
  assert.deepEqual(parseListen("127.0.0.1:9187", "--metrics-listen"), { host: "127.0.0.1", port: 9187 });
  assert.deepEqual(parseListen("[::1]:0", "--metrics-listen"), { host: "::1", port: 0 });
  for (const bad of ["9187", "host:", "h:99999", ":1"]) assert.throws(() => parseListen(bad, "--metrics-listen"), { code: "USAGE" });
});

// ---- with a daemon and a real mount ----

const support = haveRoot() ? kernelSupportsPreContent() : { ok: false, missing: ["root"] };
const skip = unavailable(!haveRoot() ? "needs root to mount" : !support.ok ? `kernel lacks: ${support.missing.join("; ")}` : false);
let work = "";
let cache = "";
let daemonPid = 0;

before(() => { if (!skip) { work = tempDir("eod-metrics-"); cache = path.join(work, "cache"); } });
after(() => {
  if (!work) return;
  cleanup(work, cache);
  if (daemonPid) { try { process.kill(daemonPid, "SIGKILL"); } catch { /* gone */ } }
  fs.rmSync(work, { recursive: true, force: true });
});

function get(opts: http.RequestOptions): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    http.get(opts, (res) => {
      let body = "";
      res.on("data", (c: Buffer) => { body += c; });
      res.on("end", () => resolve({ status: res.statusCode!, type: String(res.headers["content-type"]), body }));
    }).on("error", reject);
  });
}

test("a daemon's /metrics (socket and TCP) parses and its counters move with reads; status --json; JSON logs", { skip, timeout: 120_000 }, async () => {
  const src = path.join(work, "src");
  fs.mkdirSync(src);
  const data = randomBytes(3 << 20);
  fs.writeFileSync(path.join(src, "big"), data);
  fs.writeFileSync(path.join(src, "small"), "hello\n");
  const img = path.join(work, "img");
  eodOk("build", src, "-o", img);
  const mnt = path.join(work, "mnt");
  fs.mkdirSync(mnt);
  const log = path.join(work, "daemon.log");

  const d = spawn(process.execPath, [path.join(REPO, "bin/eod.mjs"), "daemon", "--cache-dir", cache, "--frontend", "fanotify", "--log-file", log, "--metrics-listen", "127.0.0.1:0"], { stdio: "ignore" });
  daemonPid = d.pid!;
  let port = 0;
  for (let i = 0; i < 300 && !port; i++) {
    await new Promise((r) => setTimeout(r, 50));
    const line = fs.existsSync(log) ? fs.readFileSync(log, "utf8").split("\n").find((l) => l.includes('"metrics listening"')) : undefined;
    if (line) port = JSON.parse(line).address.port;
  }
  assert.ok(port > 0, "the daemon logged its metrics port");
  const r = await eodAsync(["mount", img, mnt, "--cache-dir", cache]);
  assert.equal(r.status, 0, r.stderr);
  try {
    const sock = { socketPath: path.join(cache, "daemon.sock"), path: "/metrics" };
    const before = await get(sock);
    assert.equal(before.status, 200);
    assert.match(before.type, /^text\/plain; version=0\.0\.4/);
    const b = parseExposition(before.body).samples;
    assert.equal(value(b, "eod_mounts"), 1);
    assert.equal(value(b, "eod_fetched_bytes_total"), 0, "nothing fetched at mount");

    assert.ok(fs.readFileSync(path.join(mnt, "big")).equals(data));
    fs.readFileSync(path.join(mnt, "big")); // page cache: no new event
    const tcp = await get({ host: "127.0.0.1", port, path: "/metrics" });
    assert.equal(tcp.status, 200);
    const a = parseExposition(tcp.body).samples;
    assert.ok(value(a, "eod_cache_misses_total")! > 0, "misses counted");
    assert.ok(value(a, "eod_fetched_bytes_total")! > 0, "fetched bytes counted");
    assert.ok(value(a, "eod_fetches_total")! > 0);
    assert.ok(value(a, "eod_fetch_duration_seconds_count")! > 0, "fetch latency observed");
    assert.ok(value(a, "eod_cache_bytes")! >= data.length, "the cache holds the file");
    assert.equal(value(a, "eod_fetches_in_flight"), 0);
    assert.equal(value(a, "eod_cache_evictions_total"), 0);
    assert.equal(value(a, "eod_errors_total", { kind: "digest_mismatch" }), 0);
    assert.ok(value(a, "process_resident_memory_bytes")! > 0);
    assert.equal((await get({ host: "127.0.0.1", port, path: "/other" })).status, 404);

    const st = JSON.parse((await eodAsync(["status", "--cache-dir", cache, "--json"])).stdout);
    assert.equal(st.running, true);
    assert.equal(st.pid > 0, true);
    assert.equal(st.frontend.name, "fanotify");
    assert.equal(st.mounts.length, 1);
    assert.equal(st.mounts[0].mountPoint, mnt);
    assert.equal(st.mounts[0].blobs.length, 1);
    const blobSt = st.blobs[0];
    for (const k of ["id", "chunks", "presentChunks", "totalBytes", "cachedBytes", "fetchedBytes", "fetches", "misses", "hits", "inFlight", "corrupt", "errors"]) assert.ok(k in blobSt, `blob field ${k}`);
    assert.equal(blobSt.cachedBytes, blobSt.totalBytes, "the one blob is complete");
    assert.ok(Array.isArray(st.remotes) && st.remotes[0].requests > 0);

    // On a terminal (script(1) gives it one): a bar per mount and per blob.
    const tty = spawnSync("script", ["-qec", `${process.execPath} ${path.join(REPO, "bin/eod.mjs")} status --cache-dir ${cache}`, "/dev/null"], { encoding: "utf8", env: { ...process.env, COLUMNS: "160" } });
    if (tty.status === 0) {
      assert.match(tty.stdout, new RegExp(`${mnt.replace(/[/.]/g, "\\$&")} \\[[█]+\\] 100%`), tty.stdout);
      assert.match(tty.stdout, new RegExp(`${blobSt.id.slice(0, 12)} \\[`));
    }
  } finally {
    const u = await eodAsync(["umount", mnt, "--cache-dir", cache]);
    assert.equal(u.status, 0, u.stderr);
  }
  // The daemon exits after the last umount; every line it logged is structured.
  for (let i = 0; i < 100 && d.exitCode === null; i++) await new Promise((r) => setTimeout(r, 50));
  const lines = fs.readFileSync(log, "utf8").trim().split("\n");
  assert.ok(lines.length >= 3);
  for (const l of lines) {
    const o = JSON.parse(l);
    assert.equal(typeof o.msg, "string", l);
    assert.ok(["debug", "info", "warn", "error"].includes(o.level), l);
    assert.ok(!Number.isNaN(Date.parse(o.time)), l);
  }
});
