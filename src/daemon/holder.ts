// The holder: a tiny parent process that owns the kernel end of the cache and runs the real daemon as its child
// with it as fd 3, so the cache outlives a daemon crash (kill -9) and readers wait instead of failing:
// * fscache: it opens and binds /dev/cachefiles; a restarted daemon is told to (src/config: handOverEnv) and sends
//   `restore`: the kernel hands out the requests the dead daemon had taken again, and re-sends OPEN for objects
//   whose fds died (Linux 6.8+).
// * fanotify: it makes the pre-content group (fanotify_init). The group, its marks, its queued events and the
//   events the dead daemon had read but not answered all live as long as some process holds the group's fd;
//   only the last close allows every pending event (fail-open). The restarted daemon answers what its
//   predecessor left from the journal (src/frontend/fanotify/journal.ts).
// * fuse: it opens /dev/fuse; the first daemon mounts its FUSE filesystem with it (`fd=3`). The connection, its
//   queued requests and those the dead daemon had read but not answered stay while some process holds the
//   fd: readers wait (never ENOTCONN), and the restarted daemon answers them on the same connection.
// If the daemon dies, the holder starts a new one; SIGHUP hands over to a new daemon on purpose (`eod daemon
// restart`: the old one answers what it has in flight and exits). When the daemon exits normally (its last
// mount is gone), the holder exits too. The first daemon exiting with an error before it came up (its own
// start failed: a config, a mount table, a kernel it cannot use) would fail the same way again: the holder
// exits at once, and `eod mount` quotes that error instead of waiting out restarts.
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { bindCachefiles } from "../frontend/fscache/device.ts";
import { handOverEnv } from "../config/config.ts";
import type { CachefilesLimits } from "../sys/cachefiles.ts";
import { FAN_CLASS_PRE_CONTENT, FAN_CLOEXEC, FAN_NONBLOCK, FAN_UNLIMITED_QUEUE, fanotifyInit } from "../sys/fanotify.ts";
import type { Log } from "../util/log.ts";
import { holderPidFile } from "./client.ts";
import { readPid } from "./pids.ts";

const EOD_BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../bin/eod.mjs");
/**
 * V8's young generation may grow to 3 × 16 MiB semi-spaces, and a daemon mounting 100 images over HTTP fills
 * it with short-lived request objects: peak RSS 238 MB with the default, 139 MB with 2 MiB (bench:many), at
 * the cost of more frequent (sub-millisecond) scavenges.
 */
const DAEMON_NODE_FLAGS = ["--max-semi-space-size=2"];
const FUSE_DEVICE = "/dev/fuse";
/** What the holder holds, and what its readers get when it lets go. */
const HELD = {
  fscache: { name: "/dev/cachefiles", lost: "the cache goes away with it" },
  fanotify: { name: "fanotify group", lost: "the group closes with it: pending reads are allowed" },
  fuse: { name: "/dev/fuse connection", lost: "the connection ends with it: readers get ENOTCONN" },
} as const;
/** More restarts than this within a minute means the daemon cannot run: give up. */
const MAX_RESTARTS_PER_MINUTE = 5;
/** How often the holder looks whether its child came up (wrote daemon.pid), until it has. */
const CAME_UP_POLL_MS = 100;

export interface HolderOptions {
  cacheDir: string;
  frontend: "fscache" | "fanotify" | "fuse";
  /** Why this frontend (src/frontend/resolve.ts): handed to each daemon for its status. */
  reason: string;
  /** The `eod daemon` arguments for the child (the frontend is added). */
  daemonArgs: string[];
  /** fscache: the free-space limits to bind with. */
  limits: CachefilesLimits;
  /** Where the daemon's stdout and stderr go (a crash before its log opens, V8's fatal errors): the log file. */
  outputFd: number | "inherit";
  log: Log;
}

/** Runs the holder until its daemon exits normally; 1 if it gave up on a daemon that keeps dying. */
export async function runHolder({ cacheDir, frontend, reason, daemonArgs, limits, outputFd, log }: HolderOptions): Promise<number> {
  // Close-on-exec only keeps it from other children: spawn dup2()s it onto the daemon's fd 3, which dup2 leaves inheritable.
  const held = frontend === "fscache" ? bindCachefiles(cacheDir, limits)
    : frontend === "fuse" ? fs.openSync(FUSE_DEVICE, fs.constants.O_RDWR | fs.constants.O_NONBLOCK)
    : fanotifyInit(FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK | FAN_UNLIMITED_QUEUE, fs.constants.O_RDWR);
  const what = HELD[frontend];
  fs.writeFileSync(holderPidFile(cacheDir), `${process.pid}\n`, { mode: 0o600 });
  const restarts: number[] = [];
  let status = 0;
  let stopping = false;
  let handingOver = false;
  let child: ReturnType<typeof spawn> | null = null;
  const forward = (sig: NodeJS.Signals) => { stopping = true; child?.kill(sig); };
  process.on("SIGTERM", () => forward("SIGTERM"));
  process.on("SIGINT", () => forward("SIGINT"));
  process.on("SIGHUP", () => {
    if (stopping || handingOver || !child) return;
    handingOver = true;
    log("info", "SIGHUP: handing over to a new daemon", { pid: child.pid });
    child.kill("SIGTERM"); // it answers what it has in flight, leaves the mounts and exits
  });
  for (let again = false; ; again = true) {
    child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, EOD_BIN, "daemon", ...daemonArgs, "--frontend", frontend], {
      stdio: ["ignore", outputFd, outputFd, held],
      env: { ...process.env, ...handOverEnv(frontend, again, reason) },
    });
    log("info", again ? "daemon restarted on the held cache" : "holder started its daemon", { frontend, pid: child.pid, holder: process.pid });
    const cameUp = watchCameUp(cacheDir, child.pid);
    const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child!.once("exit", (c, s) => resolve({ code: c, signal: s })));
    const up = cameUp();
    if (handingOver) { handingOver = false; continue; }
    if (stopping || code === 0) break;
    // Killed (a signal) it may come up next time; exiting with its own error before it came up, it will not.
    if (!again && !up && signal === null) {
      log("error", `${frontend} daemon could not start (exit code ${code}); the holder exits without restarting it`);
      status = 1;
      break;
    }
    const now = Date.now();
    restarts.push(now);
    while (restarts.length && restarts[0] < now - 60_000) restarts.shift();
    log("warn", `${frontend} daemon died; restarting it on the held ${what.name}`, { code, signal, restarts: restarts.length });
    if (restarts.length > MAX_RESTARTS_PER_MINUTE) {
      log("error", `${frontend} daemon keeps dying; the holder gives up (${what.lost})`);
      status = 1;
      break;
    }
  }
  fs.rmSync(holderPidFile(cacheDir), { force: true });
  fs.closeSync(held);
  return status;
}

/**
 * Whether the daemon `pid` came up: it writes daemon.pid once it serves (run.ts), and removes it when it stops,
 * so the file is looked at while the daemon runs. Returns the answer so far; looking stops at the first yes.
 */
function watchCameUp(cacheDir: string, pid: number | undefined): () => boolean {
  const file = path.join(cacheDir, "daemon.pid");
  let up = false;
  const look = () => {
    up = pid !== undefined && readPid(file) === pid;
    if (up) clearInterval(timer);
  };
  const timer = setInterval(look, CAME_UP_POLL_MS);
  return () => {
    if (!up) look(); // a daemon that came up and died within one poll
    clearInterval(timer);
    return up;
  };
}
