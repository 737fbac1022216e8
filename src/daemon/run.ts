// Running a daemon in this process: pick the frontend, start the Daemon, log to a file or stderr, and exit
// when it becomes idle or on SIGTERM/SIGINT (mounts are left for a restarted daemon to re-attach).
import fs from "node:fs";
import path from "node:path";
import { createFrontend } from "../frontend/select.ts";
import type { FrontendKind } from "../frontend/frontend.ts";
import { Daemon } from "./daemon.ts";
import { jsonLog, type Log } from "../util/log.ts";
import type { RemoteOptions } from "../remote/remote.ts";
import type { CacheOptions } from "../cache/core.ts";
import { EodError } from "../errors.ts";
import { parseBudget } from "../cache/cull-plan.ts";
import { raiseNofile } from "../sys/rlimit.ts";
import { listenMetrics } from "./metrics-http.ts";

/** Descriptors a daemon asks for: ~2 per open blob (cache file + fanotify write fd), for thousands of blobs. */
const NOFILE_WANT = 65536;

export interface RunOptions {
  cacheDir: string;
  frontend: FrontendKind;
  /** Append JSON log lines here instead of stderr. */
  logFile?: string;
}

export async function runDaemon(opts: RunOptions, afterStart?: (d: Daemon) => Promise<void>): Promise<Daemon> {
  fs.mkdirSync(opts.cacheDir, { recursive: true, mode: 0o700 });
  const logFd = opts.logFile ? fs.openSync(opts.logFile, "a", 0o600) : 2;
  const log: Log = jsonLog((line) => fs.writeSync(logFd, line));
  let daemon: Daemon | null = null;
  let stopping: Promise<void> | null = null;
  const stop = (why: string) => {
    stopping ??= (async () => {
      log("info", "daemon stopping", { why, mounts: daemon?.mounts.length ?? 0 });
      await daemon?.stop();
      fs.rmSync(path.join(opts.cacheDir, "daemon.pid"), { force: true });
      log("info", "daemon stopped");
    })();
    return stopping;
  };
  const exitAfterFailedStop = (err: unknown) => { log("error", "daemon stop failed", { err }); process.exit(1); };
  const nofile = raiseNofile(NOFILE_WANT);
  if (nofile.soft < 4096) log("warn", "open-file limit is low: each open blob takes ~2 descriptors", { soft: nofile.soft, hard: nofile.hard });
  const frontend = createFrontend(opts.frontend, log, opts.cacheDir);
  daemon = new Daemon({
    cacheDir: opts.cacheDir, frontend, log, remote: remoteOptionsFromEnv(), cache: cacheOptionsFromEnv(),
    onIdle: () => { stop("idle").then(() => process.exit(0), exitAfterFailedStop); },
  });
  process.once("SIGTERM", () => { stop("SIGTERM").then(() => process.exit(0), exitAfterFailedStop); });
  process.once("SIGINT", () => { stop("SIGINT").then(() => process.exit(0), exitAfterFailedStop); });
  // A crash leaves its reason in the log as one JSON line too (stderr may be /dev/null: eod mount's daemons).
  process.once("uncaughtException", (err) => {
    log("error", "uncaught exception: the daemon exits", { err, stack: err.stack?.split("\n").slice(1, 8).map((l) => l.trim()) });
    process.exit(1);
  });
  await daemon.start();
  const metricsListen = process.env.EOD_METRICS_LISTEN;
  if (metricsListen) { // optional: a failure (a port in use) is logged, the daemon serves on
    const d = daemon;
    await listenMetrics(metricsListen, () => d.metricsText()).then(
      (srv) => log("info", "metrics listening", { address: srv.address() }),
      (err: unknown) => log("warn", "cannot listen for metrics", { address: metricsListen, err }),
    );
  }
  fs.writeFileSync(path.join(opts.cacheDir, "daemon.pid"), `${process.pid}\n`, { mode: 0o600 });
  log("info", "daemon started", { pid: process.pid, cacheDir: opts.cacheDir, frontend: frontend.name, mounts: daemon.mounts.length, nofile: nofile.soft });
  await afterStart?.(daemon);
  // Restarted by its holder with no mount to re-attach: either they went while no daemon ran, or the daemon died
  // while starting, before the mount that started it (under qemu's TCG, V8 now and then does) and that mount's
  // `eod mount` is waiting for this one. Stay a moment for it; then nothing to serve.
  if (process.env.EOD_DAEMON_RESTARTED === "1" && daemon.mounts.length === 0) {
    const d = daemon;
    setTimeout(() => d.stopIfIdle(), RESTARTED_IDLE_GRACE_MS);
  }
  return daemon;
}

/** How long a daemon restarted with no mounts waits for a mount before it exits. */
const RESTARTED_IDLE_GRACE_MS = 10_000;

/** Remote tuning for tests and operators: EOD_REMOTE_TIMEOUT_MS, EOD_REMOTE_RETRIES, EOD_REMOTE_CONCURRENCY. */
function remoteOptionsFromEnv(): RemoteOptions {
  return defined({ timeoutMs: envNum("EOD_REMOTE_TIMEOUT_MS"), retries: envNum("EOD_REMOTE_RETRIES"), concurrency: envNum("EOD_REMOTE_CONCURRENCY") });
}

/**
 * Cache tuning: EOD_MIN_FETCH, EOD_MAX_FETCH, EOD_PREFETCH_FETCH, EOD_MEMORY_BUDGET (bytes), EOD_PREFETCH_SLOTS;
 * the size budget EOD_CACHE_SIZE (e.g. 20G) with EOD_CACHE_HIGH / EOD_CACHE_LOW (percent), EOD_CULL_GRACE_MS.
 */
export function cacheOptionsFromEnv(): CacheOptions {
  const budget = parseBudget(process.env.EOD_CACHE_SIZE, process.env.EOD_CACHE_HIGH, process.env.EOD_CACHE_LOW);
  return defined({
    cacheSize: budget.size, cacheHighPct: budget.highPct, cacheLowPct: budget.lowPct, cullGraceMs: envNum("EOD_CULL_GRACE_MS"),
    minFetch: envNum("EOD_MIN_FETCH"), maxFetch: envNum("EOD_MAX_FETCH"), memoryBudget: envNum("EOD_MEMORY_BUDGET"),
    prefetchSlots: envNum("EOD_PREFETCH_SLOTS"), prefetchFetch: envNum("EOD_PREFETCH_FETCH"),
  });
}

function envNum(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new EodError("USAGE", `${name} must be a non-negative number, got ${JSON.stringify(v)}`);
  return n;
}

/** Drops undefined fields, so they do not override defaults when spread. */
function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
