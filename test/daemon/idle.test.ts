// A daemon that went idle refuses new mounts and pulls (it is about to stop: nothing may land on it), and the
// CLI then asks a fresh daemon once; a refusal from a daemon that serves on stands.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { Daemon } from "../../src/daemon/daemon.ts";
import { callStartedDaemon } from "../../src/daemon/spawn.ts";
import type { Frontend } from "../../src/frontend/frontend.ts";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "eod-idle-"));
after(() => fs.rmSync(root, { recursive: true, force: true }));

/** Never reached: the daemon refuses before it prepares anything. */
const frontend = {
  name: "fake",
  prepare: () => Promise.reject(new Error("not expected")),
  release: () => {},
  close: () => Promise.resolve(),
  stats: () => ({}),
} as unknown as Frontend;

test("an idle daemon refuses a mount and a pull with a DAEMON error instead of serving them while it stops", async () => {
  let idle = () => {};
  const idled = new Promise<void>((resolve) => { idle = resolve; });
  const daemon = new Daemon({ cacheDir: path.join(root, "cache"), frontend, log: () => {}, onIdle: () => idle() });
  try {
    daemon.stopIfIdle();
    await idled;
    await assert.rejects(daemon.mount({ source: root, mountPoint: root }), { code: "DAEMON", message: /is stopping/ });
    await assert.rejects(daemon.pull({ source: root }), { code: "DAEMON", message: /is stopping/ });
  } finally {
    await daemon.stop();
  }
});

/** A control socket that answers every request with this error, and can go away. */
async function fakeDaemon(name: string, answer: (req: http.IncomingMessage) => { status: number; body: unknown }): Promise<{ sock: string; close(): Promise<void> }> {
  const sock = path.join(root, `${name}.sock`);
  const server = http.createServer((req, res) => {
    const a = answer(req);
    res.writeHead(a.status, { "content-type": "application/json" }).end(JSON.stringify(a.body));
  });
  await new Promise<void>((resolve) => server.listen(sock, resolve));
  return { sock, close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }) };
}

const stopping = { status: 400, body: { error: { code: "DAEMON", message: "The daemon is stopping" } } };
const status = { status: 200, body: {} };

test("callStartedDaemon() asks a fresh daemon once when the first one refused and went away", async () => {
  let gone: (() => Promise<void>) | null = null;
  const first = await fakeDaemon("first", (req) => {
    if (req.url === "/status") return status;
    setImmediate(() => void gone?.());
    return stopping;
  });
  gone = first.close;
  const second = await fakeDaemon("second", (req) => (req.url === "/status" ? status : { status: 200, body: { mounted: true } }));
  const socks = [first.sock, second.sock];
  try {
    const r = await callStartedDaemon<{ mounted: boolean }>(async () => socks.shift()!, "POST", "/mounts", {});
    assert.deepEqual(r, { sock: second.sock, answer: { mounted: true } });
  } finally {
    await second.close();
  }
});

test("callStartedDaemon() keeps the refusal of a daemon that serves on", async () => {
  const d = await fakeDaemon("stays", (req) => (req.url === "/status" ? status : stopping));
  let starts = 0;
  try {
    await assert.rejects(callStartedDaemon(async () => { starts++; return d.sock; }, "POST", "/mounts", {}), { code: "DAEMON" });
    assert.equal(starts, 1);
  } finally {
    await d.close();
  }
});
