// The slow link of the registry benchmarks: a loopback proxy in front of a registry that shares one 20 MB/s
// token bucket between all answers and waits 20 ms before each (bench/lib/cold-start.ts's RATE and
// LATENCY_MS, bench:lazy's link), counting what it sent and logging each request (the bench's timelines).
import http from "node:http";
import type { AddressInfo } from "node:net";
import { LATENCY_MS, RATE } from "./cold-start.ts";
import { createThrottle, sleep } from "../../src/remote/throttle.ts";

export interface ThrottledProxy {
  /** "127.0.0.1:<port>": the registry host to name in references. */
  host: string;
  /** Body bytes sent since the last reset. */
  bytes(): number;
  /** Requests answered since the last reset. */
  requests(): number;
  /** The requests since the last reset, in the order they arrived. */
  log(): ProxiedRequest[];
  reset(): void;
  close(): Promise<void>;
}

/** One request through the proxy: wall-clock times (Date.now()) of its arrival and of its answer's end. */
export interface ProxiedRequest {
  method: string;
  url: string;
  status: number | null;
  bytes: number;
  startMs: number;
  endMs: number | null;
}

/** A throttled proxy for the registry at `target` ("127.0.0.1:<port>"). */
export async function throttledProxy(target: string): Promise<ThrottledProxy> {
  const [, port] = target.split(":");
  const throttle = createThrottle(RATE);
  let bytes = 0;
  let requests = 0;
  let log: ProxiedRequest[] = [];
  const server = http.createServer((req, res) => {
    const entry: ProxiedRequest = { method: req.method ?? "", url: req.url ?? "", status: null, bytes: 0, startMs: Date.now(), endMs: null };
    log.push(entry);
    const up = http.request({ host: "127.0.0.1", port: Number(port), method: req.method, path: req.url, headers: req.headers }, (ur) => { (async () => {
      await sleep(LATENCY_MS);
      requests++;
      entry.status = ur.statusCode!;
      res.writeHead(ur.statusCode!, ur.headers);
      for await (const c of ur as AsyncIterable<Buffer>) {
        for (let at = 0; at < c.length; at += throttle.sliceBytes) {
          const piece = c.subarray(at, at + throttle.sliceBytes);
          await throttle.take(piece.length);
          bytes += piece.length;
          entry.bytes += piece.length;
          if (!res.write(piece)) await new Promise((r) => res.once("drain", r));
        }
      }
      res.end();
      entry.endMs = Date.now();
    })().catch(() => res.destroy()); });
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    bytes: () => bytes,
    requests: () => requests,
    log: () => log,
    reset: () => { bytes = 0; requests = 0; log = []; },
    close: () => new Promise<void>((resolve) => { server.close(() => resolve()); server.closeAllConnections(); }),
  };
}
