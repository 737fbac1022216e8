// Running a daemon in this process: pick the frontend, start the Daemon, log to a file or stderr, and exit
// when it becomes idle or on SIGTERM/SIGINT (mounts are left for a restarted daemon to re-attach).
import fs from "node:fs";
import path from "node:path";
import { chooseFrontend, createFrontend } from "../frontend/select.ts";
import { Daemon } from "./daemon.ts";
import { jsonLog, type Log } from "../util/log.ts";
import type { EodConfig } from "../config/config.ts";
import type { HandOver } from "../frontend/frontend.ts";
import { raiseNofile } from "../sys/rlimit.ts";
import { listenMetrics } from "./metrics-http.ts";

/** Descriptors a daemon asks for: ~2 per open blob (cache file + fanotify write fd), for thousands of blobs. */
const NOFILE_WANT = 65536;

export interface RunOptions {
  config: EodConfig;
  /** The kernel end a holder passed on (none: this daemon opens its own). */
  handOver?: HandOver;
}

export async function runDaemon(opts: RunOptions, afterStart?: (d: Daemon) => Promise<void>): Promise<Daemon> {
  const { config } = opts;
  fs.mkdirSync(config.cacheDir, { recursive: true, mode: 0o700 });
  const logFd = config.logFile ? fs.openSync(config.logFile, "a", 0o600) : 2;
  const log: Log = jsonLog((line) => fs.writeSync(logFd, line));
  // A crash leaves its reason in the log as one JSON line too (stderr may be /dev/null: eod mount's daemons).
  process.once("uncaughtException", (err) => {
    log("error", "uncaught exception: the daemon exits", { err, stack: err.stack?.split("\n").slice(1, 8).map((l) => l.trim()) });
    process.exit(1);
  });
  try {
    return await startDaemon(opts, log, afterStart);
  } catch (err) {
    log("error", "the daemon cannot start", { err }); // `eod mount` shows the log's tail when the daemon it started exits
    throw err;
  }
}

async function startDaemon({ config, handOver }: RunOptions, log: Log, afterStart?: (d: Daemon) => Promise<void>): Promise<Daemon> {
  const { cacheDir } = config;
  let daemon: Daemon | null = null;
  let stopping: Promise<void> | null = null;
  const stop = (why: string) => {
    stopping ??= (async () => {
      log("info", "daemon stopping", { why, mounts: daemon?.mounts.length ?? 0 });
      await daemon?.stop();
      fs.rmSync(path.join(cacheDir, "daemon.pid"), { force: true });
      log("info", "daemon stopped");
    })();
    return stopping;
  };
  const exitAfterFailedStop = (err: unknown) => { log("error", "daemon stop failed", { err }); process.exit(1); };
  const nofile = raiseNofile(NOFILE_WANT);
  if (nofile.soft < 4096) log("warn", "open-file limit is low: each open blob takes ~2 descriptors", { soft: nofile.soft, hard: nofile.hard });
  const choice = chooseFrontend(config.frontend, cacheDir, handOver);
  const frontend = createFrontend(config.frontend, log, cacheDir, { handOver, choice, limits: config.fscache.limits, domain: config.fscache.domain });
  frontend.onFatal = () => { // logged by the frontend: nothing is answered any more, so exit for the holder to start a fresh daemon
    setTimeout(() => process.exit(1), FATAL_STOP_MS).unref();
    stop("the frontend failed").then(() => process.exit(1), exitAfterFailedStop);
  };
  daemon = new Daemon({
    cacheDir, frontend, log, remote: config.remote, cache: config.cache, loopDevices: config.mount.loopDevices, frontendReason: choice.reason,
    onIdle: () => { stop("idle").then(() => process.exit(0), exitAfterFailedStop); },
  });
  process.once("SIGTERM", () => { stop("SIGTERM").then(() => process.exit(0), exitAfterFailedStop); });
  process.once("SIGINT", () => { stop("SIGINT").then(() => process.exit(0), exitAfterFailedStop); });
  await daemon.start();
  const metricsListen = config.metricsListen;
  if (metricsListen) { // optional: a failure (a port in use) is logged, the daemon serves on
    const d = daemon;
    await listenMetrics(metricsListen, () => d.metricsText()).then(
      (srv) => log("info", "metrics listening", { address: srv.address() }),
      (err: unknown) => log("warn", "cannot listen for metrics", { address: metricsListen, err }),
    );
  }
  fs.writeFileSync(path.join(cacheDir, "daemon.pid"), `${process.pid}\n`, { mode: 0o600 });
  log("info", "daemon started", { pid: process.pid, cacheDir, configFile: config.file, frontend: frontend.name, why: choice.reason, mounts: daemon.mounts.length, nofile: nofile.soft });
  await afterStart?.(daemon);
  // Restarted by its holder with no mount to re-attach: either they went while no daemon ran, or the daemon died
  // while starting, before the mount that started it (under qemu's TCG, V8 now and then does) and that mount's
  // `eod mount` is waiting for this one. Stay a moment for it; then nothing to serve.
  if (handOver?.restarted && daemon.mounts.length === 0) {
    const d = daemon;
    setTimeout(() => d.stopIfIdle(), RESTARTED_IDLE_GRACE_MS);
  }
  return daemon;
}

/** A daemon whose frontend failed exits after at most this long, stopped or not. */
const FATAL_STOP_MS = 10_000;

/** How long a daemon restarted with no mounts waits for a mount before it exits. */
const RESTARTED_IDLE_GRACE_MS = 10_000;
