// Running a cache daemon with the FUSE frontend for tests (test/helpers/fuse-daemon.ts in a child process),
// optionally on a /dev/fuse fd this process holds, as the holder would.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { daemonAlive, socketPathOf } from "../../src/daemon/client.ts";
import { REPO } from "./cli.ts";

const children = new Set<ChildProcess>();
process.on("exit", () => { for (const c of children) c.kill("SIGKILL"); });

export interface FuseDaemon {
  child: ChildProcess;
  /** Resolves with the exit code (or the signal) once the daemon is gone. */
  exited: Promise<number | string | null>;
}

/**
 * Starts the daemon of `cache` unless one answers on its socket, and waits until it does. `heldFd`: a
 * /dev/fuse fd of this process, passed as fd 3 (EOD_FUSE_FD=3). Its log goes to <cache>/daemon.log.
 */
export async function startFuseDaemon(cache: string, heldFd?: number, env: Record<string, string> = {}): Promise<FuseDaemon | null> {
  if (await daemonAlive(socketPathOf(cache))) return null;
  fs.mkdirSync(cache, { recursive: true, mode: 0o700 });
  const log = fs.openSync(path.join(cache, "daemon.log"), "a");
  const stdio: Array<"ignore" | number> = ["ignore", log, log];
  if (heldFd !== undefined) stdio.push(heldFd);
  const child = spawn(process.execPath, [path.join(REPO, "test/helpers/fuse-daemon.ts"), cache], {
    stdio, env: { ...process.env, ...env, ...(heldFd !== undefined ? { EOD_FUSE_FD: "3" } : {}) },
  });
  fs.closeSync(log);
  children.add(child);
  const exited = new Promise<number | string | null>((resolve) => child.once("exit", (code, sig) => { children.delete(child); resolve(sig ?? code); }));
  let gone = false;
  void exited.then(() => { gone = true; });
  const deadline = Date.now() + 20_000;
  while (!(await daemonAlive(socketPathOf(cache)))) {
    if (gone) throw new Error(`the fuse test daemon of ${cache} exited before it answered; ${path.join(cache, "daemon.log")}:\n${fs.readFileSync(path.join(cache, "daemon.log"), "utf8").slice(-2000)}`);
    if (Date.now() > deadline) throw new Error(`the fuse test daemon of ${cache} did not answer within 20 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return { child, exited };
}
