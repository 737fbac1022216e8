// Choosing the kernel frontend. `auto` takes fscache where the kernel has cachefiles on-demand and erofs over
// fscache (hits never leave the kernel, and a holder keeps the cache alive across daemon restarts), else
// fanotify (file-backed erofs + pre-content events), and otherwise says exactly which features are missing.
// Only the kernel probes are loaded here (the holder chooses; the daemon builds the frontend: ./select.ts).
import { EodError } from "../errors.ts";
import { kernelSupportsFscache } from "./fscache/device.ts";
import { kernelSupportsPreContent } from "../sys/fanotify.ts";
import type { FrontendKind } from "./frontend.ts";

/** The frontend `kind` resolves to on this kernel, or an error naming the missing kernel features. */
export function resolveFrontend(kind: FrontendKind, cacheDir: string): "fanotify" | "fscache" {
  const fscache = kind === "fanotify" ? null : kernelSupportsFscache();
  if (fscache?.ok) return "fscache";
  const fan = kind === "fscache" ? null : kernelSupportsPreContent(cacheDir);
  if (fan?.ok) return "fanotify";
  const missing = [...(fscache ? [`fscache: ${fscache.missing.join("; ")}`] : []), ...(fan ? [`fanotify: ${fan.missing.join("; ")}`] : [])];
  throw new EodError("KERNEL_UNSUPPORTED", `${kind === "auto" ? "No frontend" : `The ${kind} frontend`} can run on this kernel; missing: ${missing.join(" | ")}`);
}
