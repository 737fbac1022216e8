// Culling in the fscache frontend: the kernel's cachefiles owns the cache files, so the daemon evicts whole
// files with the `inuse`/`cull` commands (the kernel buries an unused file in its graveyard; a file an erofs
// mount holds open is refused with EBUSY). When the cache's filesystem runs low (below `bcull`/`fcull`), the
// kernel sets its CULLING state, which poll() reports as POLLOUT on /dev/cachefiles; the frontend then culls
// the least recently used files until free space is back above `brun`/`frun`, the level at which the kernel
// clears the state on its next space check.
//
// Layout (fs/cachefiles, 5.17+): <dir>/cache/I<volume key>/@<hash>/D<cookie key> (or E…/S… for keys that are
// not plain text). For erofs the cookie key is the fsid (bootstrap) or the blob id (data blob).
import fs from "node:fs";
import path from "node:path";
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

/** The limits the daemon of this process uses: $EOD_FSCACHE_LIMITS over the defaults. */
export function limitsFromEnv(env: NodeJS.ProcessEnv = process.env): CachefilesLimits {
  return parseLimits(env.EOD_FSCACHE_LIMITS);
}

/** Free space of the filesystem holding `dir`, as the kernel's space check sees it (f_bavail, f_ffree). */
export interface SpaceState {
  blocks: number;
  bavail: number;
  files: number;
  ffree: number;
}

export function spaceOf(dir: string): SpaceState {
  const s = fs.statfsSync(dir);
  return { blocks: s.blocks, bavail: s.bavail, files: s.files, ffree: s.ffree };
}

/**
 * Whether culling should go on: free blocks or files below the `run` level (cachefiles_has_space clears the
 * CULLING state only at or above brun and frun). A filesystem that reports no inode count (files = 0) is
 * judged on blocks alone.
 */
export function belowRun(s: SpaceState, l: CachefilesLimits): boolean {
  const blocksLow = s.bavail < Math.floor((s.blocks * l.brun) / 100);
  const filesLow = s.files > 0 && s.ffree < Math.floor((s.files * l.frun) / 100);
  return blocksLow || filesLow;
}

/** One cache file: where it is, its cookie key, and when it was last used. */
export interface CullCandidate {
  /** The fan-out directory (`cull` and `inuse` resolve the name in the daemon's cwd). */
  dir: string;
  /** The file's name (`D<cookie>`). */
  name: string;
  /** The cookie key for `D` names (blob id or fsid), else the raw name. */
  cookie: string;
  /** ms since the epoch: the later of the daemon's last OPEN/READ/CLOSE of the cookie and the file's mtime. */
  lastUsed: number;
  bytes: number;
}

/**
 * Every cache file under `<fscacheDir>/cache/I*` (all volumes), least recently used first. `lastUse` holds the
 * daemon's own last-use times by cookie key (files it has not seen since it started fall back to their mtime,
 * the time of their last fill).
 */
export function cullCandidates(fscacheDir: string, lastUse: ReadonlyMap<string, number>): CullCandidate[] {
  const out: CullCandidate[] = [];
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
        const cookie = f.name.startsWith("D") ? f.name.slice(1) : f.name;
        out.push({ dir, name: f.name, cookie, lastUsed: Math.max(lastUse.get(cookie) ?? 0, st.mtimeMs), bytes: st.blocks * 512 });
      }
    }
  }
  return out.sort((a, b) => a.lastUsed - b.lastUsed || a.name.localeCompare(b.name));
}
