// eod daemon --cache-dir <dir>: runs the cache daemon in the foreground (eod mount starts it this way).
import fs from "node:fs";
import { resolveFrontend } from "../frontend/resolve.ts";
import { jsonLog } from "../util/log.ts";
import { EodError } from "../errors.ts";
import { parse } from "./args.ts";
import { forwardedFlags, handOverOf, holdsKernelFd, loadConfig } from "../config/config.ts";
import { BUDGET_OPTIONS, BUDGET_USAGE } from "./cache-budget.ts";

export const DAEMON_USAGE = `Usage: eod daemon [--config <file>] [--cache-dir <dir>] [--frontend auto|fanotify|fscache|fuse] [--log-file <file>]
                  [--fscache-limits <spec>] [--cache-size <size> [--cache-high <pct>] [--cache-low <pct>]]
                  [--metrics-listen <host:port>] [--insecure-registry <host[:port]>]...

       eod daemon restart [--cache-dir <dir>]

Runs the cache daemon of a cache directory in the foreground (eod mount starts one in the background).
It re-attaches to the mounts recorded in the cache directory that still exist, and exits when the last
mount is gone (unmounted with eod umount or by anything else) or on SIGTERM (then mounts stay; a restarted
daemon re-attaches).

This process is a small holder that keeps the kernel end of the cache open (the fanotify group,
/dev/cachefiles, or the /dev/fuse connection) and runs the daemon as its child, restarting it if it dies:
readers then wait instead of failing or reading zeros. --no-holder runs the daemon in this process instead
(a killed daemon then lets fanotify readers through to unfetched zeros, and fails fscache reads).

restart: hands the mounts over to a new daemon without unmounting (after an upgrade): the old daemon answers
what it has in flight and exits, the holder starts a new one; reads meanwhile wait.

Settings come from these flags, then EOD_* environment variables, then the config file (--config, else
$EOD_CONFIG, else /etc/erofs-ondemand/config.json if it exists); see docs/configuration.md.

--fscache-limits brun=10%,bcull=7%,bstop=3%,frun=10%,fcull=7%,fstop=3%  (the defaults; any subset; config
fscache.limits): free-space levels of the fscache cache's filesystem, in percent of its blocks (b) and
files (f). Below cull the kernel signals low space and the daemon culls the least recently used cache files
no mount uses, until free space is back at run; below stop the kernel stops caching.

--metrics-listen 127.0.0.1:9187  (config metrics.listen): serve Prometheus metrics (GET /metrics) over TCP
as well as on the control socket. The text holds counts only, no paths; bind it to loopback unless the
scraper is elsewhere.

--insecure-registry <host[:port]>  (config remote.insecure_registries): registries spoken to without TLS
verification (or plain HTTP), for every mount of this daemon; repeatable.

${BUDGET_USAGE}`;

const DAEMON_OPTIONS = {
  config: { type: "string" }, "cache-dir": { type: "string" }, frontend: { type: "string" }, "log-file": { type: "string" }, "fscache-limits": { type: "string" },
  "metrics-listen": { type: "string" }, "insecure-registry": { type: "string", multiple: true }, ...BUDGET_OPTIONS,
} as const;

export async function daemonCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { ...DAEMON_OPTIONS, "no-holder": { type: "boolean" }, help: { type: "boolean", short: "h" } }, DAEMON_USAGE);
  if (values.help) { console.log(DAEMON_USAGE); return 0; }
  const config = loadConfig(values);
  const { cacheDir } = config;
  if (positionals[0] === "restart" && positionals.length === 1) return (await import("../daemon/restart.ts")).restartDaemon(cacheDir, Math.max(60_000, config.daemonStartTimeoutMs)); // a hand-over waits for in-flight reads too
  if (positionals.length) throw new EodError("USAGE", `Unknown argument ${JSON.stringify(positionals[0])}\n\n${DAEMON_USAGE}`);
  const handOver = handOverOf();
  if (!holdsKernelFd(handOver) && !values["no-holder"]) {
    // This process becomes the holder of the kernel end and runs the daemon as its child (src/daemon/holder.ts).
    fs.mkdirSync(cacheDir, { recursive: true, mode: 0o700 }); // before resolveFrontend: its probe file goes there
    const chosen = resolveFrontend(config.frontend, cacheDir); // auto: fanotify, then fscache, then fuse
    const logFd = config.logFile ? fs.openSync(config.logFile, "a", 0o600) : 2;
    const daemonArgs = ["--cache-dir", cacheDir, ...forwardedFlags(values, ["cache-dir", "frontend"])];
    // The holder only holds the device and restarts its child: it loads none of the daemon's modules.
    const { runHolder } = await import("../daemon/holder.ts");
    const log = jsonLog((line) => fs.writeSync(logFd, line));
    return runHolder({ cacheDir, frontend: chosen.kind, reason: chosen.reason, daemonArgs, limits: config.fscache.limits, outputFd: config.logFile ? logFd : "inherit", log });
  }
  const { runDaemon } = await import("../daemon/run.ts");
  await runDaemon({ config, handOver });
  await new Promise(() => {}); // serve until the daemon exits the process
  return 0;
}
