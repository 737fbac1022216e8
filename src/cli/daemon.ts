// eod daemon --cache-dir <dir>: runs the cache daemon in the foreground (eod mount starts it this way).
import { FRONTEND_KINDS, type FrontendKind } from "../frontend/select.ts";
import { EodError } from "../errors.ts";
import { runDaemon } from "../daemon/run.ts";
import { parse } from "./args.ts";
import { cacheDirOf } from "./cache-dir.ts";

export const DAEMON_USAGE = `Usage: eod daemon [--cache-dir <dir>] [--frontend auto|fanotify] [--log-file <file>]

Runs the cache daemon of a cache directory in the foreground (eod mount starts one in the background).
It re-attaches to the mounts recorded in the cache directory that still exist, and exits when the last
mount is gone or on SIGTERM (then mounts stay; a restarted daemon re-attaches).`;

export async function daemonCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { "cache-dir": { type: "string" }, frontend: { type: "string" }, "log-file": { type: "string" }, help: { type: "boolean", short: "h" } }, DAEMON_USAGE);
  if (values.help) { console.log(DAEMON_USAGE); return 0; }
  const frontend = (values.frontend ?? "auto") as FrontendKind;
  if (!FRONTEND_KINDS.includes(frontend)) throw new EodError("USAGE", `--frontend must be one of ${FRONTEND_KINDS.join(", ")}`);
  await runDaemon({ cacheDir: cacheDirOf(values["cache-dir"]), frontend, logFile: values["log-file"] });
  await new Promise(() => {}); // serve until the daemon exits the process
  return 0;
}
