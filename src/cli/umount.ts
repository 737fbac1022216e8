// eod umount <mountpoint>
import path from "node:path";
import { EodError } from "../errors.ts";
import { callDaemon, daemonAlive } from "../daemon/client.ts";
import { socketPathOf } from "../daemon/client.ts";
import { daemonServing } from "../daemon/locate.ts";
import { mountAt } from "../daemon/mountinfo.ts";
import { umount } from "../sys/mount.ts";
import { parse } from "./args.ts";
import { loadConfig } from "../config/config.ts";

export const UMOUNT_USAGE = `Usage: eod umount <mountpoint> [--cache-dir <dir>]

Unmounts an image mounted with eod mount, through the daemon that serves it (found from the mount when
--cache-dir is not given). The daemon exits when nothing is mounted any more. If no daemon answers (it
crashed), the mount is removed directly.`;

export async function umountCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { config: { type: "string" }, "cache-dir": { type: "string" }, help: { type: "boolean", short: "h" } }, UMOUNT_USAGE);
  if (values.help) { console.log(UMOUNT_USAGE); return 0; }
  if (positionals.length !== 1) throw new EodError("USAGE", UMOUNT_USAGE);
  const mountPoint = path.resolve(positionals[0]);
  // --cache-dir names the daemon; without it, the daemon that has this mount, whatever its cache directory.
  const named = values["cache-dir"] !== undefined ? socketPathOf(loadConfig(values).cacheDir) : null;
  const sock = named ?? await daemonServing(mountPoint);
  if (sock !== null && await daemonAlive(sock)) {
    await callDaemon(sock, "POST", "/umount", { mountPoint });
  } else {
    if (!mountAt(mountPoint)) throw new EodError("USAGE", `${mountPoint} is not mounted`);
    umount(mountPoint);
  }
  console.log(`unmounted ${mountPoint}`);
  return 0;
}
