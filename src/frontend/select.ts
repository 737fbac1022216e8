// Building the kernel frontend the daemon runs (the choice itself: ./resolve.ts).
import type { Log } from "../util/log.ts";
import { FanotifyFrontend } from "./fanotify/service.ts";
import { FscacheFrontend } from "./fscache/service.ts";
import type { Frontend, FrontendKind } from "./frontend.ts";
import { resolveFrontend } from "./resolve.ts";

/** A /dev/cachefiles fd handed over by the holder (EOD_CACHEFILES_FD), and whether to send `restore`. */
function inherited(): { fd?: number; restore: boolean } {
  const fd = process.env.EOD_CACHEFILES_FD;
  return { fd: fd === undefined ? undefined : Number(fd), restore: process.env.EOD_CACHEFILES_RESTORE === "1" };
}

export function createFrontend(kind: FrontendKind, log: Log, cacheDir: string): Frontend {
  const fanFd = process.env.EOD_FANOTIFY_FD; // a pre-content group held by the holder (src/daemon/holder.ts)
  if (fanFd !== undefined && kind !== "fscache") return new FanotifyFrontend(log, { inheritedFd: Number(fanFd), cacheDir });
  const chosen = resolveFrontend(kind, cacheDir);
  if (chosen === "fanotify") return new FanotifyFrontend(log);
  const h = inherited();
  return new FscacheFrontend(log, { cacheDir, inheritedFd: h.fd, restore: h.restore, domain: process.env.EOD_FSCACHE_DOMAIN });
}
