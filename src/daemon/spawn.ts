// Starting the daemon of a cache directory in the background (once), for `eod mount`.
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { EodError } from "../errors.ts";
import { daemonAlive } from "./client.ts";
import { holderPidFile, socketPathOf } from "./client.ts";

const EOD_BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../bin/eod.mjs");

/** Returns the socket of a running daemon for `cacheDir`, starting one detached if none answers. */
export async function ensureDaemon(cacheDir: string, frontend: string, timeoutMs = Number(process.env.EOD_DAEMON_START_TIMEOUT_MS ?? 30_000)): Promise<string> {
  const sock = socketPathOf(cacheDir);
  if (await daemonAlive(sock)) return sock;
  if (holderAlive(cacheDir)) { // its daemon is restarting: wait for it instead of starting a second holder
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && holderAlive(cacheDir)) {
      if (await daemonAlive(sock)) return sock;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  fs.mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
  const logFile = path.join(cacheDir, "daemon.log");
  const before = fs.existsSync(logFile) ? fs.statSync(logFile).size : 0;
  const child = spawn(process.execPath, [EOD_BIN, "daemon", "--cache-dir", cacheDir, "--frontend", frontend, "--log-file", logFile], {
    detached: true, stdio: "ignore",
  });
  let exited: string | null = null;
  child.once("exit", (code, signal) => { exited = signal ?? `exit code ${code}`; });
  child.unref();
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await daemonAlive(sock)) return sock;
    if (exited) break;
    await new Promise((r) => setTimeout(r, 10)); // a connect() to the socket is cheap; start-up is on the cold path
  }
  const tail = fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8").slice(before).trim().split("\n").slice(-5).join("\n") : "";
  throw new EodError("DAEMON", `The daemon for ${cacheDir} did not start (${exited ?? "no answer"})${tail ? `:\n${tail}` : ""}`);
}

function holderAlive(cacheDir: string): boolean {
  try {
    const pid = Number(fs.readFileSync(holderPidFile(cacheDir), "utf8"));
    if (!(pid > 1)) return false;
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
