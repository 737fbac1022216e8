// Building the kernel frontend the daemon runs (the choice itself: ./resolve.ts). A daemon run by a holder
// takes the frontend of the fd it was handed, with the holder's reason; one without a holder chooses itself.
import type { CachefilesLimits } from "../sys/cachefiles.ts";
import type { Log } from "../util/log.ts";
import { FanotifyFrontend } from "./fanotify/service.ts";
import { FscacheFrontend } from "./fscache/service.ts";
import { FuseFrontend } from "./fuse/service.ts";
import type { Frontend, FrontendKind, HandOver } from "./frontend.ts";
import { resolveFrontend, type FrontendChoice } from "./resolve.ts";

export interface FrontendSettings {
  /** The kernel end a holder passed on (src/daemon/holder.ts): a fanotify group, a bound /dev/cachefiles, /dev/fuse. */
  handOver?: HandOver;
  /** fscache: the free-space limits to bind with (config fscache.limits). */
  limits?: CachefilesLimits;
  /** fscache: the domain every image shares (config fscache.domain). */
  domain?: string;
  /** The choice made already (chooseFrontend), so the kernel is not probed twice. */
  choice?: FrontendChoice;
}

/** The frontend this daemon runs and why: the held fd's, else `kind` resolved on this kernel. */
export function chooseFrontend(kind: FrontendKind, cacheDir: string, held?: HandOver): FrontendChoice {
  const heldKind = held?.fanotifyFd !== undefined ? "fanotify" : held?.cachefilesFd !== undefined ? "fscache" : held?.fuseFd !== undefined ? "fuse" : null;
  if (heldKind) return { kind: heldKind, reason: held?.reason ?? "the holder's" };
  return resolveFrontend(kind, cacheDir);
}

export function createFrontend(kind: FrontendKind, log: Log, cacheDir: string, s: FrontendSettings = {}): Frontend {
  const held = s.handOver;
  const chosen = (s.choice ?? chooseFrontend(kind, cacheDir, held)).kind;
  if (chosen === "fanotify") return held?.fanotifyFd !== undefined ? new FanotifyFrontend(log, { inheritedFd: held.fanotifyFd, cacheDir }) : new FanotifyFrontend(log);
  if (chosen === "fscache") return new FscacheFrontend(log, { cacheDir, inheritedFd: held?.cachefilesFd, restore: held?.restore ?? false, limits: s.limits, domain: s.domain });
  return new FuseFrontend(log, { cacheDir, inheritedFd: held?.fuseFd });
}
