// Building the kernel frontend the daemon runs (the choice itself: ./resolve.ts).
import type { CachefilesLimits } from "../sys/cachefiles.ts";
import type { Log } from "../util/log.ts";
import { FanotifyFrontend } from "./fanotify/service.ts";
import { FscacheFrontend } from "./fscache/service.ts";
import type { Frontend, FrontendKind, HandOver } from "./frontend.ts";
import { resolveFrontend } from "./resolve.ts";

export interface FrontendSettings {
  /** The kernel end a holder passed on (src/daemon/holder.ts): a fanotify group or a bound /dev/cachefiles. */
  handOver?: HandOver;
  /** fscache: the free-space limits to bind with (config fscache.limits). */
  limits?: CachefilesLimits;
  /** fscache: the domain every image shares (config fscache.domain). */
  domain?: string;
}

export function createFrontend(kind: FrontendKind, log: Log, cacheDir: string, s: FrontendSettings = {}): Frontend {
  const held = s.handOver;
  if (held?.fanotifyFd !== undefined && kind !== "fscache") return new FanotifyFrontend(log, { inheritedFd: held.fanotifyFd, cacheDir });
  const chosen = resolveFrontend(kind, cacheDir);
  if (chosen === "fanotify") return new FanotifyFrontend(log);
  return new FscacheFrontend(log, { cacheDir, inheritedFd: held?.cachefilesFd, restore: held?.restore ?? false, limits: s.limits, domain: s.domain });
}
