// Starting the daemon of a cache directory in the background (once), for `eod mount` and `eod pull`.
// Whatever stops it from starting reaches the CLI: the holder's and the daemon's own output (a crash before
// the log is open, V8's fatal errors) go to <cache-dir>/daemon.log, and the error quotes the log's new lines.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { DEFAULT_DAEMON_START_TIMEOUT_MS } from "../config/keys.ts";
import { EodError } from "../errors.ts";
import { callDaemon, daemonAlive, holderPidFile, socketPathOf } from "./client.ts";
import { processAlive, readPid } from "./pids.ts";

const EOD_BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../bin/eod.mjs");
/** Lines of the daemon's log an error quotes. */
const LOG_TAIL_LINES = 8;

export interface EnsureOptions {
  /** More `eod daemon` flags (src/config: forwardedFlags). */
  args?: string[];
  /** Default: config daemon.start_timeout_ms's. */
  timeoutMs?: number;
}

/** Returns the socket of a running daemon for `cacheDir`, starting one detached if none answers. */
export async function ensureDaemon(cacheDir: string, frontend: string, opts: EnsureOptions = {}): Promise<string> {
  const sock = socketPathOf(cacheDir);
  if (await daemonAlive(sock)) return sock;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_DAEMON_START_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  const logFile = path.join(cacheDir, "daemon.log");
  const before = fs.existsSync(logFile) ? fs.statSync(logFile).size : 0;
  const failed = (why: string) => {
    const tail = fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8").slice(before).trim().split("\n").filter(Boolean).slice(-LOG_TAIL_LINES).join("\n") : "";
    return new EodError("DAEMON", `The daemon for ${cacheDir} did not start (${why})${tail ? `; ${logFile} says:\n${tail}` : `; ${logFile} has nothing new`}`);
  };
  // Killed while waiting (a timeout of the caller, Ctrl-C): say what was waited for, as any other failure.
  const onSignal = (sig: NodeJS.Signals) => {
    process.stderr.write(`eod: ${failed(`${sig} while waiting for it`).message}\n`);
    process.exit(128 + (os.constants.signals[sig] ?? 0));
  };
  process.once("SIGTERM", onSignal).once("SIGINT", onSignal);
  try {
    while (Date.now() < deadline && holderAlive(cacheDir)) { // its daemon is restarting: wait for it instead of starting a second holder
      if (await daemonAlive(sock)) return sock;
      await new Promise((r) => setTimeout(r, 20));
    }
    if (Date.now() >= deadline) throw failed(`its holder ${readPid(holderPidFile(cacheDir))} runs, but no daemon answered within ${timeoutMs} ms`);
    fs.mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
    const out = fs.openSync(logFile, "a", 0o600);
    let exited = null as string | null;
    try {
      const child = spawn(process.execPath, [EOD_BIN, "daemon", "--cache-dir", cacheDir, "--frontend", frontend, "--log-file", logFile, ...(opts.args ?? [])], {
        detached: true, stdio: ["ignore", out, out],
      });
      child.once("exit", (code, signal) => { exited = signal ? `it was killed by ${signal}` : `it exited with code ${code}`; });
      child.unref();
    } finally {
      fs.closeSync(out);
    }
    while (Date.now() < deadline) {
      if (await daemonAlive(sock)) return sock;
      if (exited) throw failed(exited);
      await new Promise((r) => setTimeout(r, 10)); // a connect() to the socket is cheap; start-up is on the cold path
    }
    throw failed(`no answer on ${sock} within ${timeoutMs} ms`);
  } finally {
    process.off("SIGTERM", onSignal).off("SIGINT", onSignal);
  }
}

/** How long a daemon that failed a request may take to close its socket before it counts as still serving. */
const GOING_MS = 3000;

/**
 * callDaemon() on the daemon `start()` returns (ensureDaemon). If it fails with a DAEMON error and that daemon
 * is then gone (it went idle as the request came, or died), once more on a fresh one.
 */
export async function callStartedDaemon<T>(start: () => Promise<string>, method: string, route: string, body: unknown, timeoutMs?: number): Promise<{ sock: string; answer: T }> {
  const sock = await start();
  try {
    return { sock, answer: await callDaemon<T>(sock, method, route, body, timeoutMs) };
  } catch (err) {
    if (!(err instanceof EodError && err.code === "DAEMON")) throw err;
    const deadline = Date.now() + GOING_MS;
    while (await daemonAlive(sock)) {
      if (Date.now() > deadline) throw err; // it serves on: its refusal stands
      await new Promise((r) => setTimeout(r, 50));
    }
    const again = await start();
    return { sock: again, answer: await callDaemon<T>(again, method, route, body, timeoutMs) };
  }
}

function holderAlive(cacheDir: string): boolean {
  const pid = readPid(holderPidFile(cacheDir));
  return pid !== null && processAlive(pid);
}
