// eod serve <image-dir>: parses the options, starts src/serve/server.ts, prints the base URL as the one
// line on stdout (tests and scripts read it to learn the port) and runs until SIGTERM or SIGINT.
import { EodError } from "../errors.ts";
import { parseFaultSpec, type FaultRule } from "../serve/faults.ts";
import { DEFAULT_LISTEN_HOST, DEFAULT_LISTEN_PORT, isLoopbackHost, startServer, type RunningServer } from "../serve/server.ts";
import { parseListen } from "../config/values.ts";
import { parse, parseSize } from "./args.ts";

export const SERVE_USAGE = `Usage: eod serve <image-dir> [options]

Serves an image directory over HTTP (GET and HEAD, byte ranges, keep-alive) for demos, tests and
benchmarks. Prints one line, the base URL (e.g. http://127.0.0.1:8080/), then serves until SIGTERM or
SIGINT. Only loopback addresses unless --allow-remote: the server has no authentication.

Options:
  --listen <host:port>   address to listen on (default ${DEFAULT_LISTEN_HOST}:${DEFAULT_LISTEN_PORT}; port 0 = any free port;
                         IPv6 as [::1]:port)
  --allow-remote         allow a non-loopback listen address
  --rate <bytes/s>       total bandwidth of all responses, e.g. 10M (default unlimited)
  --latency <ms>         delay before each response's headers
  --fault <spec>         inject faults (repeatable): <mode>[,status=N][,match=S][,count=N][,probability=P]
                         mode: corrupt | stall | drop | status, e.g. status,status=503,count=2
  --json                 print {"url": …, "pid": …} instead of the bare URL

Control endpoints (JSON, not files): POST/DELETE/GET /_eod/faults, GET /_eod/stats, POST /_eod/stats/reset.
POST /_eod/faults takes {"mode", "status"?, "match"?, "count"?, "probability"?} or an array of them.`;

/** Runs `eod serve`; resolves (with exit status 0) only when the server has stopped. */
export async function serveCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    listen: { type: "string" }, "allow-remote": { type: "boolean" }, rate: { type: "string" }, latency: { type: "string" },
    fault: { type: "string", multiple: true }, json: { type: "boolean" }, help: { type: "boolean", short: "h" },
  }, SERVE_USAGE);
  if (values.help) { console.log(SERVE_USAGE); return 0; }
  if (positionals.length !== 1) throw new EodError("USAGE", `Give one image directory\n\n${SERVE_USAGE}`);
  const { host, port } = parseListen(values.listen ?? `${DEFAULT_LISTEN_HOST}:${DEFAULT_LISTEN_PORT}`, "--listen", DEFAULT_LISTEN_HOST);
  const allowRemote = values["allow-remote"] ?? false;
  if (!allowRemote && !isLoopbackHost(host)) {
    throw new EodError("USAGE", `Refusing to listen on ${host}: not a loopback address (the server has no authentication; add --allow-remote to serve the network)`);
  }
  const rateBytesPerS = values.rate === undefined ? undefined : parseSize(values.rate, "--rate");
  if (rateBytesPerS === 0) throw new EodError("USAGE", "--rate must be more than 0");
  const latencyMs = values.latency === undefined ? undefined : Number(values.latency);
  if (latencyMs !== undefined && !(Number.isFinite(latencyMs) && latencyMs >= 0)) throw new EodError("USAGE", `--latency must be a number of milliseconds, got ${values.latency}`);
  const faults: FaultRule[] = [];
  for (const spec of values.fault ?? []) {
    try {
      faults.push(...parseFaultSpec(spec));
    } catch (err) {
      throw new EodError("USAGE", `--fault: ${(err as Error).message}`);
    }
  }
  let server: RunningServer;
  try {
    server = await startServer({ root: positionals[0], host, port, rateBytesPerS, latencyMs, faults, allowRemote });
  } catch (err) {
    if (err instanceof TypeError || (err as NodeJS.ErrnoException).code === "ENOENT") {
      throw new EodError("USAGE", `Cannot serve ${positionals[0]}: not a directory`, { cause: err });
    }
    throw err;
  }
  const stop = () => { void server.close(); };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  process.stdout.write(values.json ? `${JSON.stringify({ url: server.url, pid: process.pid })}\n` : `${server.url}\n`);
  try {
    await server.closed;
  } finally {
    process.off("SIGTERM", stop);
    process.off("SIGINT", stop);
  }
  return 0;
}

