// The control API: a small JSON-over-HTTP server on <cache-dir>/daemon.sock (mode 0600).
//   GET  /status            mounts, blobs, remotes, frontend counters
//   POST /mounts            {source, mountPoint, frontend}  -> the mount record
//   POST /umount            {mountPoint}
//   POST /shutdown          stop serving (mounts are left in place; a restarted daemon re-attaches)
//   POST /resolve           {source?, insecureRegistries, form} -> {source (pinned), form: converted|indexed|ordinary}
//   GET  /metrics           Prometheus text format (metrics.ts)
import fs from "node:fs";
import http from "node:http";
import { EodError } from "../errors.ts";
import { errorFields } from "../util/log.ts";

export type Handler = (body: unknown) => Promise<unknown>;

/** A handler's answer sent as is, not as JSON (the Prometheus text of GET /metrics). */
export class RawReply {
  readonly contentType: string;
  readonly body: string;

  constructor(contentType: string, body: string) {
    this.contentType = contentType;
    this.body = body;
  }
}

export async function startControl(socketPath: string, routes: Record<string, Handler>): Promise<http.Server> {
  fs.rmSync(socketPath, { force: true }); // a stale socket of a dead daemon
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on("data", (c: Buffer) => parts.push(c));
    req.on("end", () => {
      const handler = routes[`${req.method} ${req.url}`];
      const reply = (status: number, value: unknown) => {
        const raw = value instanceof RawReply;
        const body = Buffer.from(raw ? value.body : JSON.stringify(value));
        res.writeHead(status, { "content-type": raw ? value.contentType : "application/json", "content-length": body.length }).end(body);
      };
      if (!handler) return reply(404, { error: { code: "USAGE", message: `No such control route: ${req.method} ${req.url}` } });
      let body: unknown;
      try {
        body = parts.length ? JSON.parse(Buffer.concat(parts).toString("utf8")) : undefined;
      } catch {
        return reply(400, { error: { code: "USAGE", message: "Request body is not JSON" } });
      }
      handler(body).then((v) => reply(200, v ?? {}), (err: unknown) => {
        const e = err instanceof Error ? errorFields(err) : { message: String(err) };
        reply(err instanceof EodError ? 400 : 500, { error: e });
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, () => resolve());
  });
  fs.chmodSync(socketPath, 0o600);
  return server;
}
