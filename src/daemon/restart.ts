// `eod daemon restart`: a planned hand-over to a new daemon (after an upgrade) without unmounting. SIGHUP asks
// the holder of the cache directory to stop its daemon gracefully (in-flight events answered) and start a new
// one on the same held fanotify group or /dev/cachefiles; reads meanwhile wait in the kernel.
import path from "node:path";
import { EodError } from "../errors.ts";
import { daemonAlive, holderPidFile, socketPathOf } from "./client.ts";
import { processAlive as alive, readPid } from "./pids.ts";

export async function restartDaemon(cacheDir: string, timeoutMs: number): Promise<number> {
  const holder = readPid(holderPidFile(cacheDir));
  if (holder === null || !alive(holder)) {
    throw new EodError("USAGE", `No holder runs for ${cacheDir}: a daemon started with --no-holder or eod mount --foreground cannot hand over (stop it and start eod daemon)`);
  }
  const old = readPid(path.join(cacheDir, "daemon.pid"));
  process.kill(holder, "SIGHUP");
  const sock = socketPathOf(cacheDir);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const now = readPid(path.join(cacheDir, "daemon.pid"));
    if (now !== null && now !== old && (await daemonAlive(sock))) {
      process.stdout.write(`restarted the daemon of ${cacheDir}: pid ${old ?? "?"} → ${now}\n`);
      return 0;
    }
    if (!alive(holder)) throw new EodError("DAEMON", `The holder of ${cacheDir} exited during the restart (see its log)`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new EodError("DAEMON", `The daemon of ${cacheDir} did not come back within ${timeoutMs} ms (see its log)`);
}
