// Picking the kernel frontend. `auto` takes fscache where the kernel has cachefiles on-demand and erofs over
// fscache (hits never leave the kernel, and a holder keeps the cache alive across daemon restarts), else
// fanotify (file-backed erofs + pre-content events), and otherwise says exactly which features are missing.
import { EodError } from "../errors.ts";
import type { Log } from "../daemon/log.ts";
import type { Frontend } from "./frontend.ts";
import { FanotifyFrontend } from "./fanotify/service.ts";
import { FscacheFrontend, kernelSupportsFscache } from "./fscache/service.ts";
import { kernelSupportsPreContent } from "../sys/fanotify.ts";

export const FRONTEND_KINDS = ["auto", "fanotify", "fscache"] as const;
export type FrontendKind = (typeof FRONTEND_KINDS)[number];

/** The frontend `kind` resolves to on this kernel, or an error naming the missing kernel features. */
export function resolveFrontend(kind: FrontendKind, cacheDir: string): "fanotify" | "fscache" {
  const fscache = kind === "fanotify" ? null : kernelSupportsFscache();
  if (fscache?.ok) return "fscache";
  const fan = kind === "fscache" ? null : kernelSupportsPreContent(cacheDir);
  if (fan?.ok) return "fanotify";
  const missing = [...(fscache ? [`fscache: ${fscache.missing.join("; ")}`] : []), ...(fan ? [`fanotify: ${fan.missing.join("; ")}`] : [])];
  throw new EodError("KERNEL_UNSUPPORTED", `${kind === "auto" ? "No frontend" : `The ${kind} frontend`} can run on this kernel; missing: ${missing.join(" | ")}`);
}

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
