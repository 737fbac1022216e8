// Talking to the daemon's control socket: JSON over HTTP on a Unix socket (mode 0600, root only).
import net from "node:net";
import path from "node:path";
import { EodError, type ErrorCode } from "../errors.ts";

/** The control socket of the daemon of `cacheDir`. */
export function socketPathOf(cacheDir: string): string {
  return path.join(cacheDir, "daemon.sock");
}

/** `<cache-dir>/holder.pid`: the holder process of a cache directory (src/daemon/holder.ts; SIGHUP restarts its daemon). */
export function holderPidFile(cacheDir: string): string {
  return path.join(cacheDir, "holder.pid");
}

export async function callDaemon<T>(socketPath: string, method: string, route: string, body?: unknown, timeoutMs = 120_000): Promise<T> {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const http = await import("node:http"); // ~40 ms to load: not before a cold `eod mount` has started the daemon
  return new Promise<T>((resolve, reject) => {
    const req = http.request({
      socketPath, method, path: route, timeout: timeoutMs,
      headers: payload ? { "content-type": "application/json", "content-length": payload.length } : {},
    }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (c: Buffer) => parts.push(c));
      res.on("end", () => {
        let json: unknown;
        try {
          json = JSON.parse(Buffer.concat(parts).toString("utf8") || "null");
        } catch {
          return reject(new EodError("DAEMON", `The daemon at ${socketPath} sent an unreadable answer`));
        }
        if (res.statusCode === 200) return resolve(json as T);
        const e = (json as { error?: { code?: string; message?: string } })?.error;
        reject(new EodError((e?.code ?? "DAEMON") as ErrorCode, e?.message ?? `The daemon answered HTTP ${res.statusCode}`));
      });
    });
    req.on("timeout", () => req.destroy(new EodError("DAEMON", `The daemon at ${socketPath} did not answer within ${timeoutMs} ms`)));
    req.on("error", (err) => reject(err instanceof EodError ? err : new EodError("DAEMON", `Cannot reach the daemon at ${socketPath}: ${(err as NodeJS.ErrnoException).code ?? err.message}`, { cause: err })));
    req.end(payload);
  });
}

/** Whether a daemon answers on `socketPath`. */
export async function daemonAlive(socketPath: string): Promise<boolean> {
  if (!(await listening(socketPath))) return false; // the common cold case, answered without loading node:http
  try {
    await callDaemon(socketPath, "GET", "/status", undefined, 5000);
    return true;
  } catch {
    return false;
  }
}

/** Whether something accepts connections on `socketPath` (no socket file, or a stale one: no). */
function listening(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(socketPath);
    c.once("connect", () => { c.destroy(); resolve(true); });
    c.once("error", () => resolve(false));
  });
}
