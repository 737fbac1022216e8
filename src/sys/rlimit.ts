// getrlimit/setrlimit, for the open-file limit of a daemon that serves many blobs: each open blob holds its
// cache file's descriptor and, with fanotify, one event fd kept as its write descriptor (~2 per blob).
// Node already raises the soft limit to the hard one at start-up; only root (CAP_SYS_RESOURCE) can raise
// the hard limit, up to /proc/sys/fs/nr_open.
import fs from "node:fs";
import { check, libc } from "./libc.ts";
import { SysError } from "../errors.ts";

/** RLIMIT_NOFILE (asm-generic/resource.h; the same on x86_64 and arm64). */
export const RLIMIT_NOFILE = 7;
const RLIM_INFINITY = 0xffff_ffff_ffff_ffffn;

export interface Rlimit {
  /** Infinity for RLIM_INFINITY. */
  soft: number;
  hard: number;
}

const toNum = (v: bigint) => (v === RLIM_INFINITY ? Infinity : Number(v));
const toBig = (v: number) => (v === Infinity ? RLIM_INFINITY : BigInt(v));

export function getRlimit(resource: number): Rlimit {
  const buf = Buffer.alloc(16);
  check(libc().getrlimit(resource, buf), "getrlimit", String(resource));
  return { soft: toNum(buf.readBigUInt64LE(0)), hard: toNum(buf.readBigUInt64LE(8)) };
}

/** @throws SysError (EPERM raising the hard limit without CAP_SYS_RESOURCE, EINVAL soft > hard) */
export function setRlimit(resource: number, limit: Rlimit): void {
  const buf = Buffer.alloc(16);
  buf.writeBigUInt64LE(toBig(limit.soft), 0);
  buf.writeBigUInt64LE(toBig(limit.hard), 8);
  check(libc().setrlimit(resource, buf), "setrlimit", `${resource} ${limit.soft}/${limit.hard}`);
}

/**
 * Makes at least `want` descriptors available if it can: the soft limit up to the hard one, and the hard
 * one up to `want` (capped by fs.nr_open) when allowed. Never lowers a limit. Returns the limits now in force.
 */
export function raiseNofile(want: number): Rlimit {
  const cur = getRlimit(RLIMIT_NOFILE);
  if (cur.soft >= want) return cur;
  if (cur.hard < want) {
    let nrOpen = want;
    try { nrOpen = Number(fs.readFileSync("/proc/sys/fs/nr_open", "utf8")); } catch { /* keep want */ }
    const target = Math.min(want, nrOpen);
    try {
      setRlimit(RLIMIT_NOFILE, { soft: target, hard: Math.max(target, cur.hard) });
      return getRlimit(RLIMIT_NOFILE);
    } catch (err) {
      if (!(err instanceof SysError && err.errno === "EPERM")) throw err;
    }
  }
  setRlimit(RLIMIT_NOFILE, { soft: Math.min(want, cur.hard), hard: cur.hard });
  return getRlimit(RLIMIT_NOFILE);
}
