// What the fscache frontend supplies to the cache core's culling: the kernel's cachefiles owns the cache files,
// so whole files are evicted with the `inuse`/`cull` commands (the kernel buries an unused file in its
// graveyard; a file an erofs mount holds open is refused with EBUSY). When the cache's filesystem runs low
// (below `bcull`/`fcull`), the kernel sets its CULLING state, which poll() reports as POLLOUT on
// /dev/cachefiles; the core then culls the least recently used files until free space is back above
// `brun`/`frun`, the level at which the kernel clears the state on its next space check. Here: the limits'
// syntax and where the files are.
//
// Layout (fs/cachefiles, 5.17+): <dir>/cache/I<volume key>/@<hash>/D<cookie key> (or E…/S… for keys that are
// not plain text). For erofs the cookie key is the fsid (bootstrap) or the blob id (data blob).
import fs from "node:fs";
import path from "node:path";
import type { KernelObject } from "../../cache/object-eviction.ts";
import { EodError } from "../../errors.ts";
import type { CachefilesLimits } from "../../sys/cachefiles.ts";

/** Defaults of this daemon: those of cachefilesd's sample configuration (the kernel's own are 7/5/1). */
export const DEFAULT_LIMITS: Readonly<CachefilesLimits> = { brun: 10, bcull: 7, bstop: 3, frun: 10, fcull: 7, fstop: 3 };

/**
 * Parses `brun=10%,bcull=7%,bstop=3%,frun=…` (any subset, `%` optional, commas or spaces) over the defaults.
 * @throws EodError USAGE for an unknown name, a bad number, or limits that break stop < cull < run < 100
 * @example
 * parseLimits("bcull=20,brun=30"); // { brun: 30, bcull: 20, bstop: 3, frun: 10, fcull: 7, fstop: 3 }
 */
export function parseLimits(spec: string | undefined, base: Readonly<CachefilesLimits> = DEFAULT_LIMITS): CachefilesLimits {
  const out = { ...base };
  for (const part of (spec ?? "").split(/[,\s]+/).filter(Boolean)) {
    const m = /^(brun|bcull|bstop|frun|fcull|fstop)=(\d{1,2})%?$/.exec(part);
    if (!m) throw new EodError("USAGE", `Cannot parse fscache limit "${part}": expected one of brun, bcull, bstop, frun, fcull, fstop = a percent 0..99, e.g. bcull=7%`);
    out[m[1] as keyof CachefilesLimits] = Number(m[2]);
  }
  for (const p of ["b", "f"] as const) {
    const [run, cull, stop] = [out[`${p}run`], out[`${p}cull`], out[`${p}stop`]];
    if (!(stop < cull && cull < run && run < 100)) {
      throw new EodError("USAGE", `Cannot use fscache limits ${p}stop=${stop}% ${p}cull=${cull}% ${p}run=${run}%: need stop < cull < run < 100`);
    }
  }
  return out;
}

/** One cache file: where it is, and what the core's culling needs of it. */
export interface CacheFile extends KernelObject {
  /** The fan-out directory (`cull` and `inuse` resolve the name in the daemon's cwd). */
  dir: string;
  /** The file's name (`D<cookie>`); the key is the cookie key for `D` names (blob id or fsid), else the name. */
  name: string;
}

/** Every cache file under `<fscacheDir>/cache/I*` (all volumes), in no particular order. */
export function cacheFiles(fscacheDir: string): CacheFile[] {
  const out: CacheFile[] = [];
  const cache = path.join(fscacheDir, "cache");
  const list = (d: string): fs.Dirent[] => { try { return fs.readdirSync(d, { withFileTypes: true }); } catch { return []; } };
  for (const vol of list(cache)) {
    if (!vol.isDirectory() || !vol.name.startsWith("I")) continue;
    for (const fan of list(path.join(cache, vol.name))) {
      if (!fan.isDirectory() || !fan.name.startsWith("@")) continue;
      const dir = path.join(cache, vol.name, fan.name);
      for (const f of list(dir)) {
        if (!f.isFile()) continue;
        let st: fs.Stats;
        try { st = fs.statSync(path.join(dir, f.name)); } catch { continue; }
        const key = f.name.startsWith("D") ? f.name.slice(1) : f.name;
        out.push({ dir, name: f.name, key, mtimeMs: st.mtimeMs, bytes: st.blocks * 512 });
      }
    }
  }
  return out;
}
