// `eod daemon --metrics-listen <host:port>`: GET /metrics over TCP for a Prometheus scraper (the control
// socket serves the same text to root only). Meant for 127.0.0.1 (a node exporter style local scrape); the
// text names no paths or image sources, only counts.
import type { Server } from "node:http";
import { parseListen } from "../config/values.ts";

/** The content type of the text exposition format. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Serves GET /metrics with `render()`; resolves once listening (its address() says the port). */
export async function listenMetrics(spec: string, render: () => string): Promise<Server> {
  const { host, port } = parseListen(spec, "--metrics-listen");
  const { createServer } = await import("node:http"); // not at the top: `eod daemon` parses --metrics-listen in its holder, which serves nothing
  const server = createServer((req, res) => {
    if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("only GET /metrics here\n");
      return;
    }
    let body: Buffer;
    try {
      body = Buffer.from(render());
    } catch (err) {
      res.writeHead(500, { "content-type": "text/plain" }).end(`${(err as Error).message}\n`);
      return;
    }
    res.writeHead(200, { "content-type": METRICS_CONTENT_TYPE, "content-length": body.length }).end(body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    // reusePort: a daemon handed over by `eod daemon restart` listens while its predecessor still does.
    server.listen({ port, host, reusePort: true }, () => { server.off("error", reject); resolve(); });
  });
  server.unref(); // never what keeps the daemon alive
  return server;
}
