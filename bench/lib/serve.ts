// `eod serve` as a benchmark's remote: started on a free loopback port, asked for the bytes it sent
// (GET /_eod/stats), which a lazy mount's cost is measured by.
import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import { pipeline } from "node:stream/promises";
import { EOD, NODE } from "./paths.ts";

export interface Server { url: string; pid: number; stop(): void }
export interface ServeStats { requests: number; bytes: number; byPath: Record<string, { requests: number; bytes: number }> }

/** Pids of the servers running now: what an interrupted bench stops before it cleans up. */
export const runningServers = new Set<number>();

/** `eod serve <root> <extra>` on 127.0.0.1; resolves once it printed its URL. */
export async function startServer(root: string, extra: string[] = []): Promise<Server> {
  const child = spawn(NODE, [EOD, "serve", root, "--listen", "127.0.0.1:0", ...extra], { stdio: ["ignore", "pipe", "pipe"] });
  const pid = child.pid!;
  runningServers.add(pid);
  let err = "";
  child.stderr.setEncoding("utf8").on("data", (d: string) => { err += d; });
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      out += d;
      if (out.includes("\n")) resolve(out.split("\n")[0]!.trim());
    });
    child.once("exit", (code) => reject(new Error(`eod serve exited ${code}: ${err.trim()}`)));
  });
  child.stdout.resume();
  const stop = (): void => {
    try { process.kill(pid, "SIGTERM"); } catch { /* gone */ }
    runningServers.delete(pid);
  };
  return { url, pid, stop };
}

/**
 * One request on a fresh connection (no keep-alive: nothing of the bench's own lingers on the server);
 * with `sink`, a 200 body goes to that file.
 */
export function httpRequest(method: string, url: string, sink?: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent: false }, (res) => {
      if (sink && res.statusCode === 200) {
        pipeline(res, fs.createWriteStream(sink)).then(() => resolve({ status: 200, body: Buffer.alloc(0) }), reject);
        return;
      }
      const parts: Buffer[] = [];
      res.on("data", (c: Buffer) => parts.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

export async function serverStats(url: string): Promise<ServeStats> {
  const r = await httpRequest("GET", new URL("_eod/stats", url).href);
  return JSON.parse(r.body.toString("utf8")) as ServeStats;
}

export async function resetStats(url: string): Promise<void> {
  await httpRequest("POST", new URL("_eod/stats/reset", url).href);
}
