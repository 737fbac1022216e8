// The holder for the fscache frontend: a tiny parent process that opens and binds /dev/cachefiles, then runs
// the real daemon as its child with the device as fd 3. If the daemon dies (crash, kill -9), the holder
// still has the device open, so the cache does not die and readers stay blocked instead of failing; it starts
// a new daemon with EOD_CACHEFILES_RESTORE=1, which sends `restore`: the kernel hands out the requests the dead
// daemon had taken again, and re-sends OPEN for objects whose fds died (Linux 6.8+). When the daemon exits
// normally (its last mount is gone), the holder exits too.
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { bindCachefiles } from "../frontend/fscache/service.ts";
import type { Log } from "./log.ts";

const EOD_BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../bin/eod.mjs");
/** More restarts than this within a minute means the daemon cannot run: give up. */
const MAX_RESTARTS_PER_MINUTE = 5;

export async function runHolder(cacheDir: string, logFile: string | undefined, log: Log): Promise<number> {
  const dev = bindCachefiles(cacheDir);
  fs.writeFileSync(path.join(cacheDir, "holder.pid"), `${process.pid}\n`, { mode: 0o600 });
  const restarts: number[] = [];
  let stopping = false;
  let child: ReturnType<typeof spawn> | null = null;
  const forward = (sig: NodeJS.Signals) => { stopping = true; child?.kill(sig); };
  process.on("SIGTERM", () => forward("SIGTERM"));
  process.on("SIGINT", () => forward("SIGINT"));
  for (let restore = false; ; restore = true) {
    const args = [EOD_BIN, "daemon", "--cache-dir", cacheDir, "--frontend", "fscache", ...(logFile ? ["--log-file", logFile] : [])];
    child = spawn(process.execPath, args, {
      stdio: ["ignore", "inherit", "inherit", dev],
      env: { ...process.env, EOD_CACHEFILES_FD: "3", EOD_CACHEFILES_RESTORE: restore ? "1" : "0" },
    });
    const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child!.once("exit", (c, s) => resolve({ code: c, signal: s })));
    if (stopping || code === 0) break;
    const now = Date.now();
    restarts.push(now);
    while (restarts.length && restarts[0] < now - 60_000) restarts.shift();
    log("warn", "fscache daemon died; restarting it on the held /dev/cachefiles", { code, signal, restarts: restarts.length });
    if (restarts.length > MAX_RESTARTS_PER_MINUTE) {
      log("error", "fscache daemon keeps dying; the holder gives up (the cache goes away with it)");
      break;
    }
  }
  fs.rmSync(path.join(cacheDir, "holder.pid"), { force: true });
  fs.closeSync(dev);
  return 0;
}
