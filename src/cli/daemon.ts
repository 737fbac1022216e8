// eod daemon --cache-dir <dir>: runs the cache daemon in the foreground (eod mount starts it this way).
import fs from "node:fs";
import { FRONTEND_KINDS, type FrontendKind } from "../frontend/frontend.ts";
import { resolveFrontend } from "../frontend/resolve.ts";
import { jsonLog } from "../util/log.ts";
import { EodError } from "../errors.ts";
import { parse } from "./args.ts";
import { cacheDirOf } from "./cache-dir.ts";
import { parseLimits } from "../frontend/fscache/cull.ts";
import { budgetToEnv, BUDGET_OPTIONS, BUDGET_USAGE } from "./cache-budget.ts";
import { parseListen } from "../daemon/metrics-http.ts";

export const DAEMON_USAGE = `Usage: eod daemon [--cache-dir <dir>] [--frontend auto|fanotify|fscache] [--log-file <file>] [--fscache-limits <spec>]
                  [--cache-size <size> [--cache-high <pct>] [--cache-low <pct>]] [--metrics-listen <host:port>]

       eod daemon restart [--cache-dir <dir>]

Runs the cache daemon of a cache directory in the foreground (eod mount starts one in the background).
It re-attaches to the mounts recorded in the cache directory that still exist, and exits when the last
mount is gone or on SIGTERM (then mounts stay; a restarted daemon re-attaches).

This process is a small holder that keeps the kernel end of the cache open (the fanotify group, or
/dev/cachefiles) and runs the daemon as its child, restarting it if it dies: readers then wait instead of
failing or reading zeros. --no-holder runs the daemon in this process instead (a killed daemon then lets
fanotify readers through to unfetched zeros, and fails fscache reads).

restart: hands the mounts over to a new daemon without unmounting (after an upgrade): the old daemon answers
what it has in flight and exits, the holder starts a new one; reads meanwhile wait.

--fscache-limits brun=10%,bcull=7%,bstop=3%,frun=10%,fcull=7%,fstop=3%  (the defaults; any subset; also
$EOD_FSCACHE_LIMITS): free-space levels of the fscache cache's filesystem, in percent of its blocks (b) and
files (f). Below cull the kernel signals low space and the daemon culls the least recently used cache files
no mount uses, until free space is back at run; below stop the kernel stops caching.

--metrics-listen 127.0.0.1:9187  (also $EOD_METRICS_LISTEN): serve Prometheus metrics (GET /metrics) over TCP
as well as on the control socket. The text holds counts only, no paths; bind it to loopback unless the
scraper is elsewhere.

${BUDGET_USAGE}`;

export async function daemonCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { "cache-dir": { type: "string" }, frontend: { type: "string" }, "log-file": { type: "string" }, "fscache-limits": { type: "string" }, "no-holder": { type: "boolean" }, "metrics-listen": { type: "string" }, ...BUDGET_OPTIONS, help: { type: "boolean", short: "h" } }, DAEMON_USAGE);
  if (values.help) { console.log(DAEMON_USAGE); return 0; }
  const frontend = (values.frontend ?? "auto") as FrontendKind;
  if (!FRONTEND_KINDS.includes(frontend)) throw new EodError("USAGE", `--frontend must be one of ${FRONTEND_KINDS.join(", ")}`);
  const cacheDir = cacheDirOf(values["cache-dir"]);
  if (positionals[0] === "restart" && positionals.length === 1) return (await import("../daemon/restart.ts")).restartDaemon(cacheDir);
  if (positionals.length) throw new EodError("USAGE", `Unknown argument ${JSON.stringify(positionals[0])}\n\n${DAEMON_USAGE}`);
  if (values["fscache-limits"] !== undefined) {
    parseLimits(values["fscache-limits"]); // checked here; the holder and the daemon read the environment
    process.env.EOD_FSCACHE_LIMITS = values["fscache-limits"];
  }
  budgetToEnv(values); // checked here; the holder and the daemon read the environment
  if (values["metrics-listen"] !== undefined) {
    parseListen(values["metrics-listen"]); // checked here; the daemon (the holder's child) reads the environment
    process.env.EOD_METRICS_LISTEN = values["metrics-listen"];
  }
  if (process.env.EOD_CACHEFILES_FD === undefined && process.env.EOD_FANOTIFY_FD === undefined && !values["no-holder"]) {
    // This process becomes the holder of the kernel end and runs the daemon as its child (src/daemon/holder.ts).
    fs.mkdirSync(cacheDir, { recursive: true, mode: 0o700 }); // before resolveFrontend: its probe file goes there
    const chosen = resolveFrontend(frontend, cacheDir);
    const logFd = values["log-file"] ? fs.openSync(values["log-file"], "a", 0o600) : 2;
    const daemonArgs = ["--cache-dir", cacheDir, ...(values["log-file"] ? ["--log-file", values["log-file"]] : [])];
    // The holder only holds the device and restarts its child: it loads none of the daemon's modules.
    const { runHolder } = await import("../daemon/holder.ts");
    return runHolder(cacheDir, chosen, daemonArgs, jsonLog((line) => fs.writeSync(logFd, line)));
  }
  const { runDaemon } = await import("../daemon/run.ts");
  await runDaemon({ cacheDir, frontend, logFile: values["log-file"] });
  await new Promise(() => {}); // serve until the daemon exits the process
  return 0;
}
