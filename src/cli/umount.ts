// eod umount <mountpoint>
import path from "node:path";
import { EodError } from "../errors.ts";
import { callDaemon, daemonAlive } from "../daemon/client.ts";
import { socketPathOf } from "../daemon/client.ts";
import { mountAt } from "../daemon/mountinfo.ts";
import { umount } from "../sys/mount.ts";
import { parse } from "./args.ts";
import { cacheDirOf } from "./cache-dir.ts";

export const UMOUNT_USAGE = `Usage: eod umount <mountpoint> [--cache-dir <dir>]

Unmounts an image mounted with eod mount. The daemon exits when nothing is mounted any more. If no daemon
answers (it crashed), the mount is removed directly.`;

export async function umountCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { "cache-dir": { type: "string" }, help: { type: "boolean", short: "h" } }, UMOUNT_USAGE);
  if (values.help) { console.log(UMOUNT_USAGE); return 0; }
  if (positionals.length !== 1) throw new EodError("USAGE", UMOUNT_USAGE);
  const mountPoint = path.resolve(positionals[0]);
  const sock = socketPathOf(cacheDirOf(values["cache-dir"]));
  if (await daemonAlive(sock)) {
    await callDaemon(sock, "POST", "/umount", { mountPoint });
  } else {
    if (!mountAt(mountPoint)) throw new EodError("USAGE", `${mountPoint} is not mounted`);
    umount(mountPoint);
  }
  console.log(`unmounted ${mountPoint}`);
  return 0;
}
