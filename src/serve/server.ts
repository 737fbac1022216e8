// `eod serve`: a static HTTP server of an image directory for demos, tests and benchmarks. GET and HEAD of
// files with single byte ranges (what a lazy-loading client sends), keep-alive, no directory listings, no
// path that leaves the directory. Optional shared bandwidth limit (throttle.ts) and per-response latency
// make a laptop look like a registry far away; fault rules (faults.ts), switchable at run time through
// /_eod/faults, make it look like a bad one. /_eod/stats counts what clients really fetched.
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { EodError } from "../errors.ts";
import { corruptSlice, FaultSet, parseFaultRules, type FaultRule } from "./faults.ts";
import { createThrottle, sleep, type Throttle } from "../remote/throttle.ts";

export interface ServeOptions {
  /** The image directory; every file under it is served (manifest.json, bootstrap.erofs, blobs/…). */
  root: string;
  /** Address to listen on, default 127.0.0.1; anything not loopback needs `allowRemote`. */
  host?: string;
  /** Port, default 8080; 0 picks a free one (read it from `url`). */
  port?: number;
  /** Total bandwidth of all responses in bytes per second; omitted = unlimited. */
  rateBytesPerS?: number;
  /** Delay before each file response's headers, in ms. */
  latencyMs?: number;
  /** Fault rules active from the start. */
  faults?: FaultRule[];
  /** Allow a non-loopback listen address (the server has no authentication). */
  allowRemote?: boolean;
}

/** What clients fetched: `bytes` are body bytes written; `byPath` is keyed by relative path. */
export interface ServeStats {
  requests: number;
  bytes: number;
  byPath: Record<string, { requests: number; bytes: number }>;
  /** File requests being answered now (a stalled one stays until its socket closes). */
  inFlight: number;
  /** Highest `inFlight` since start or the last reset. */
  maxInFlight: number;
}

export interface RunningServer {
  /** Base URL with a trailing slash, e.g. http://127.0.0.1:34567/ */
  url: string;
  /** Replaces the fault rules (null or [] = none). */
  setFaults(rules: FaultRule | FaultRule[] | null): void;
  stats(): ServeStats;
  resetStats(): void;
  /** Stops listening and closes every connection, stalled ones included. */
  close(): Promise<void>;
  /** Resolves once the server has stopped, whoever stopped it. */
  readonly closed: Promise<void>;
}

export const DEFAULT_LISTEN_HOST = "127.0.0.1";
export const DEFAULT_LISTEN_PORT = 8080;
const CONTROL_PREFIX = "/_eod/";
const MAX_CONTROL_BODY = 64 * 1024;

/** Whether `host` is a loopback address or name (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/**
 * Starts serving `opts.root` and resolves once it listens.
 *
 * @example
 * const srv = await startServer({ root: "img", port: 0, rateBytesPerS: 1 << 20 });
 * srv.setFaults({ mode: "status", status: 503, count: 1 });
 * // … fetch from srv.url …
 * await srv.close();
 */
export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  const host = opts.host ?? DEFAULT_LISTEN_HOST;
  const port = opts.port ?? DEFAULT_LISTEN_PORT;
  if (!opts.allowRemote && !isLoopbackHost(host)) {
    throw new RangeError(`Refusing to listen on ${host}: not a loopback address (the server has no authentication; allowRemote overrides)`);
  }
  const root = fs.realpathSync(opts.root);
  if (!fs.statSync(root).isDirectory()) throw new TypeError(`Cannot serve ${opts.root}: not a directory`);
  const ctx: Ctx = {
    root,
    throttle: createThrottle(opts.rateBytesPerS),
    latencyMs: opts.latencyMs ?? 0,
    faults: new FaultSet(opts.faults ?? []),
    stats: emptyStats(),
    inFlight: 0,
  };
  // HTTP keep-alive is Node's default (keepAliveTimeout 5 s), so a client's pool reuses its connections.
  const server = http.createServer((req, res) => {
    handle(ctx, req, res).catch((err: unknown) => {
      // A bug or an I/O error after the headers went out: the client sees a cut connection, which is honest.
      if (!res.headersSent) sendText(res, 500, `Internal error: ${(err as Error).message}\n`);
      else res.destroy();
    });
  });
  const closed = new Promise<void>((resolve) => server.once("close", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) => {
      reject(new EodError("SYS", `Cannot listen on ${host}:${port}: ${err.code ?? err.message}`, { cause: err }));
    });
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const url = `http://${addr.family === "IPv6" ? `[${addr.address}]` : addr.address}:${addr.port}/`;
  return {
    url,
    setFaults: (rules) => ctx.faults.set(rules === null ? [] : parseFaultRules(rules)),
    stats: () => structuredClone(ctx.stats),
    resetStats: () => resetStats(ctx),
    async close() {
      if (!server.listening) return closed;
      server.close();
      // close() alone waits for idle keep-alive and stalled sockets; a test server must stop now.
      server.closeAllConnections();
      return closed;
    },
    closed,
  };
}

interface Ctx {
  root: string;
  throttle: Throttle;
  latencyMs: number;
  faults: FaultSet;
  /** Counters since start or the last reset; replaced (not zeroed) by a reset. */
  stats: ServeStats;
  /** File responses open now; lives outside `stats` because it is state, not a count to reset. */
  inFlight: number;
}

function emptyStats(): ServeStats {
  return { requests: 0, bytes: 0, byPath: {}, inFlight: 0, maxInFlight: 0 };
}

function resetStats(ctx: Ctx): ServeStats {
  ctx.stats = { ...emptyStats(), inFlight: ctx.inFlight, maxInFlight: ctx.inFlight };
  return ctx.stats;
}

/** Per-path counters of the current stats (a reset while a body is being sent starts a new entry). */
function perPath(ctx: Ctx, rel: string): { requests: number; bytes: number } {
  return (ctx.stats.byPath[rel] ??= { requests: 0, bytes: 0 });
}

function setInFlight(ctx: Ctx, delta: number): void {
  ctx.inFlight += delta;
  ctx.stats.inFlight = ctx.inFlight;
  ctx.stats.maxInFlight = Math.max(ctx.stats.maxInFlight, ctx.inFlight);
}

async function handle(ctx: Ctx, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  // The raw request target, not new URL(): "//x" would become a host and "/a/../b" would be normalized
  // away, and both must be refused, not rewritten.
  const target = (req.url ?? "").split("?")[0];
  if (target.startsWith(CONTROL_PREFIX) || target === "/_eod") return control(ctx, target, req, res);

  ctx.stats.requests++;
  setInFlight(ctx, +1);
  res.once("close", () => setInFlight(ctx, -1));
  if (ctx.latencyMs > 0) await sleep(ctx.latencyMs);

  if (req.method !== "GET" && req.method !== "HEAD") {
    res.setHeader("allow", "GET, HEAD");
    return sendText(res, 405, "Only GET and HEAD\n");
  }
  // A directory (or "/"): no listings, but not a malformed request either.
  if (target.endsWith("/") && (target === "/" || relPathOf(target.slice(0, -1)) !== null)) return sendText(res, 404, "Not found\n");
  const rel = relPathOf(target);
  if (rel === null) return sendText(res, 400, "Bad path\n");
  perPath(ctx, rel).requests++;
  const file = await openInside(ctx.root, rel);
  if (!file) return sendText(res, 404, "Not found\n");
  try {
    const size = (await file.stat()).size;
    const isGet = req.method === "GET";
    const fault = ctx.faults.pick(rel, isGet);
    if (fault?.mode === "status") {
      const status = fault.status ?? 503;
      return sendText(res, status, `Injected fault: HTTP ${status}\n`);
    }
    const range = parseRange(req.headers.range, size);
    res.setHeader("accept-ranges", "bytes");
    res.setHeader("content-type", rel.endsWith(".json") ? "application/json" : "application/octet-stream");
    if (range.kind === "unsatisfiable") {
      res.setHeader("content-range", `bytes */${size}`);
      return sendText(res, 416, "Range not satisfiable\n");
    }
    const [start, end] = range.kind === "range" ? [range.start, range.end] : [0, size - 1];
    const length = end - start + 1;
    if (range.kind === "range") res.setHeader("content-range", `bytes ${start}-${end}/${size}`);
    res.writeHead(range.kind === "range" ? 206 : 200, { "content-length": length });
    if (!isGet || length === 0) { res.end(); return; }

    // stall and drop send the first half of the body, so the client has started reading when it stops.
    const cut = fault?.mode === "stall" || fault?.mode === "drop" ? Math.floor(length / 2) : length;
    res.flushHeaders();
    const sent = await sendBody(ctx.throttle, res, file, start, cut, fault?.mode === "corrupt", (n) => {
      ctx.stats.bytes += n;
      perPath(ctx, rel).bytes += n;
    });
    if (!sent) return; // the client went away
    if (fault?.mode === "drop") res.destroy();
    else if (fault?.mode !== "stall") res.end(); // stall: keep the socket open and silent
  } finally {
    await file.close();
  }
}

/** The path relative to the root, or null when it is empty, absolute-form, or has `.`, `..` or odd characters. */
function relPathOf(target: string): string | null {
  if (!target.startsWith("/") || target === "/") return null;
  const segs: string[] = [];
  for (const raw of target.slice(1).split("/")) {
    let seg: string;
    try { seg = decodeURIComponent(raw); } catch { return null; }
    if (seg === "" || seg === "." || seg === ".." || /[/\\\0]/.test(seg)) return null;
    segs.push(seg);
  }
  return segs.join("/");
}

/** Opens a regular file under root, or null; the real path must stay inside root (no symlink escapes). */
async function openInside(root: string, rel: string): Promise<fs.promises.FileHandle | null> {
  try {
    const real = await fs.promises.realpath(path.join(root, rel));
    if (!real.startsWith(root + path.sep)) return null;
    const fh = await fs.promises.open(real, "r");
    if (!(await fh.stat()).isFile()) { await fh.close(); return null; }
    return fh;
  } catch {
    return null;
  }
}

export type ByteRange = { kind: "full" } | { kind: "range"; start: number; end: number } | { kind: "unsatisfiable" };

/**
 * Interprets a Range header for a file of `size` bytes (RFC 9110 §14): `bytes=a-b`, `bytes=a-`, `bytes=-n`.
 * Syntax the server does not support (several ranges, other units, a > b) is ignored, which the RFC
 * allows; a well-formed range that starts past the end is unsatisfiable (416).
 */
export function parseRange(header: string | undefined, size: number): ByteRange {
  if (header === undefined) return { kind: "full" };
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return { kind: "full" };
  if (m[1] === "") {
    const n = Number(m[2]);
    if (n === 0 || size === 0) return { kind: "unsatisfiable" };
    return { kind: "range", start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Number(m[2]);
  if (end < start) return m[2] === "" ? { kind: "unsatisfiable" } : { kind: "full" };
  if (start >= size) return { kind: "unsatisfiable" };
  return { kind: "range", start, end: Math.min(end, size - 1) };
}

/**
 * Writes `length` bytes of `file` from `start` in throttle-sized slices, waiting for 'drain' when the
 * socket is full so a slow client holds back reads instead of filling memory. Resolves false when the
 * response closed early.
 */
async function sendBody(throttle: Throttle, res: http.ServerResponse, file: fs.promises.FileHandle, start: number, length: number, corrupt: boolean, onBytes: (n: number) => void): Promise<boolean> {
  let pos = 0;
  let flushed: Promise<unknown> = Promise.resolve();
  const closed = new Promise((resolve) => res.once("close", resolve));
  while (pos < length) {
    const n = Math.min(throttle.sliceBytes, length - pos);
    const buf = Buffer.allocUnsafe(n); // a fresh buffer each time: write() keeps it until sent
    let got = 0;
    while (got < n) {
      const { bytesRead } = await file.read(buf, got, n - got, start + pos + got);
      if (bytesRead === 0) throw new Error(`file shrank while being sent (at byte ${start + pos + got})`);
      got += bytesRead;
    }
    if (corrupt) corruptSlice(buf, pos);
    await throttle.take(n);
    if (res.destroyed) return false;
    const written = new Promise<void>((resolve) => res.write(buf, () => resolve()));
    onBytes(n);
    pos += n;
    if (pos === length) flushed = Promise.race([written, closed]);
    if (res.writableNeedDrain) {
      await new Promise<void>((resolve) => {
        const done = () => { res.off("drain", done); res.off("close", done); resolve(); };
        res.on("drain", done);
        res.on("close", done);
      });
    }
  }
  await flushed; // so a "drop" cuts the connection after the partial body reached the socket, not before
  return !res.destroyed;
}

function sendText(res: http.ServerResponse, status: number, text: string): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function sendJson(res: http.ServerResponse, status: number, value: unknown): void {
  const text = `${JSON.stringify(value)}\n`;
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), "cache-control": "no-store" });
  res.end(text);
}

/** The control endpoints: never files, never delayed, throttled, faulted or counted. */
async function control(ctx: Ctx, target: string, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const route = `${req.method} ${target}`;
  switch (route) {
    case "GET /_eod/faults":
      return sendJson(res, 200, { faults: ctx.faults.list() });
    case "DELETE /_eod/faults":
      ctx.faults.clear();
      return sendJson(res, 200, { faults: [] });
    case "POST /_eod/faults": {
      let rules: FaultRule[];
      try {
        rules = parseFaultRules(JSON.parse(await readSmallBody(req)));
      } catch (err) {
        return sendJson(res, 400, { error: (err as Error).message });
      }
      ctx.faults.set(rules);
      return sendJson(res, 200, { faults: ctx.faults.list() });
    }
    case "GET /_eod/stats":
      return sendJson(res, 200, ctx.stats);
    case "POST /_eod/stats/reset":
      return sendJson(res, 200, resetStats(ctx));
  }
  const known = ["/_eod/faults", "/_eod/stats", "/_eod/stats/reset"].includes(target);
  return sendJson(res, known ? 405 : 404, { error: known ? `Method ${req.method} not allowed on ${target}` : `No control endpoint ${target}` });
}

async function readSmallBody(req: http.IncomingMessage): Promise<string> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > MAX_CONTROL_BODY) throw new RangeError(`Request body is larger than ${MAX_CONTROL_BODY} bytes`);
    parts.push(chunk);
  }
  return Buffer.concat(parts).toString("utf8");
}
