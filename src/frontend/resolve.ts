// Choosing the kernel frontend. `auto` takes the first one this kernel can run, in this order:
// * fanotify (file-backed erofs + pre-content events, 6.14+): hits never leave the kernel, no extra mount;
// * fscache (cachefiles on-demand, 5.19–7.1 where the distribution enables it): hits never leave the kernel;
// * fuse (any kernel with erofs and FUSE; before 6.12 through loop devices): hits of the page cache stay in
//   the kernel, but a page-cache miss of a present chunk is a FUSE round trip through the daemon.
// The choice keeps its reason (which ones came first and what each lacked), for `eod status`, and the error
// when none is possible names what each one lacks. Only the kernel probes are loaded here (the holder
// chooses; the daemon builds the frontend: ./select.ts).
import fs from "node:fs";
import os from "node:os";
import { EodError } from "../errors.ts";
import { kernelSupportsFscache } from "./fscache/device.ts";
import { kernelSupportsPreContent } from "../sys/fanotify.ts";
import type { FrontendKind } from "./frontend.ts";

export type ResolvedFrontend = Exclude<FrontendKind, "auto">;

/** The order `auto` tries them in. */
export const AUTO_ORDER: readonly ResolvedFrontend[] = ["fanotify", "fscache", "fuse"];

export interface FrontendChoice {
  kind: ResolvedFrontend;
  /** Why this one: asked for, or (auto) what the ones tried before it lacked. */
  reason: string;
}

export interface Support {
  ok: boolean;
  missing: string[];
}

/**
 * The frontend `kind` resolves to on this kernel and why, or an error naming the missing kernel features.
 * `probe` asks the kernel (tests give their own answers).
 */
export function resolveFrontend(kind: FrontendKind, cacheDir: string, probe: (kind: ResolvedFrontend, cacheDir: string) => Support = support): FrontendChoice {
  const tried: string[] = [];
  for (const candidate of kind === "auto" ? AUTO_ORDER : [kind]) {
    const s = probe(candidate, cacheDir);
    if (s.ok) {
      const reason = kind !== "auto" ? `asked for (--frontend ${kind})` : tried.length ? `auto: ${tried.join("; ")}` : `auto: ${candidate} is tried first and works here`;
      return { kind: candidate, reason };
    }
    tried.push(`${candidate} not possible (missing ${s.missing.join("; ")})`);
  }
  const what = kind === "auto" ? `No frontend (${AUTO_ORDER.join(", ")}) can run` : `The ${kind} frontend cannot run`;
  throw new EodError("KERNEL_UNSUPPORTED", `${what} on this kernel: ${tried.join(" | ")}`);
}

function support(kind: ResolvedFrontend, cacheDir: string): Support {
  if (kind === "fanotify") return kernelSupportsPreContent(cacheDir);
  if (kind === "fscache") return kernelSupportsFscache();
  return kernelSupportsFuse();
}

/**
 * Whether the fuse frontend can run: /dev/fuse, FUSE and erofs registered, and where erofs cannot mount files
 * (before Linux 6.12) loop devices to mount it from.
 */
export function kernelSupportsFuse(): Support {
  const missing: string[] = [];
  let filesystems = "";
  try {
    filesystems = fs.readFileSync("/proc/filesystems", "utf8");
  } catch { /* no /proc: cannot tell, so do not claim support */ }
  const has = (name: string) => new RegExp(`\\t${name}$`, "m").test(filesystems);
  try {
    fs.accessSync("/dev/fuse", fs.constants.R_OK | fs.constants.W_OK);
  } catch {
    missing.push("/dev/fuse");
  }
  if (!has("fuse")) missing.push("FUSE (CONFIG_FUSE_FS: no fuse in /proc/filesystems)");
  if (!has("erofs")) missing.push("erofs (CONFIG_EROFS_FS: no erofs in /proc/filesystems)");
  if (!atLeast(os.release(), 6, 12) && !fs.existsSync("/dev/loop-control")) {
    missing.push("loop devices (/dev/loop-control, CONFIG_BLK_DEV_LOOP): erofs before Linux 6.12 mounts only block devices");
  }
  return { ok: missing.length === 0, missing };
}

function atLeast(release: string, major: number, minor: number): boolean {
  const m = /^(\d+)\.(\d+)/.exec(release);
  return !!m && (Number(m[1]) > major || (Number(m[1]) === major && Number(m[2]) >= minor));
}
