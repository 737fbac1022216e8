// Picking the kernel frontend: `auto` takes the best one this kernel supports and otherwise says exactly
// which kernel features are missing.
import { EodError } from "../errors.ts";
import type { Log } from "../daemon/log.ts";
import type { Frontend } from "./frontend.ts";
import { FanotifyFrontend } from "./fanotify/service.ts";
import { kernelSupportsPreContent } from "../sys/fanotify.ts";

export const FRONTEND_KINDS = ["auto", "fanotify"] as const;
export type FrontendKind = (typeof FRONTEND_KINDS)[number];

export function createFrontend(kind: FrontendKind, log: Log): Frontend {
  const fan = kernelSupportsPreContent();
  if (fan.ok) return new FanotifyFrontend(log);
  throw new EodError("KERNEL_UNSUPPORTED", `${kind === "auto" ? "No frontend" : "The fanotify frontend"} can run on this kernel; missing: ${fan.missing.join("; ")}`);
}
