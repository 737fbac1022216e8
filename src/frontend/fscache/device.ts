// The kernel end of the fscache frontend before any request: whether this kernel has it, and binding an
// on-demand cache on /dev/cachefiles. Kept apart from the service so that the holder (which only binds and
// holds the device) and `eod mount`/`eod daemon` (which only choose a frontend) start without loading it.
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { cachefilesCommand, openCachefiles, setCachefilesLimits, type CachefilesLimits } from "../../sys/cachefiles.ts";
import { DEFAULT_LIMITS } from "./cull.ts";

/** Whether this kernel can run the fscache frontend, and if not, what is missing. */
export function kernelSupportsFscache(): { ok: boolean; missing: string[] } {
  const missing: string[] = [];
  if (!fs.existsSync("/dev/cachefiles")) missing.push("cachefiles on-demand (/dev/cachefiles, CONFIG_CACHEFILES_ONDEMAND, Linux 5.19+)");
  let config = "";
  try {
    config = zlib.gunzipSync(fs.readFileSync("/proc/config.gz")).toString("utf8");
  } catch { /* no IKCONFIG: cannot tell, so do not claim support */ }
  if (!/^CONFIG_EROFS_FS_ONDEMAND=y$/m.test(config)) missing.push("erofs over fscache (CONFIG_EROFS_FS_ONDEMAND, Linux 5.19–7.1)");
  return { ok: missing.length === 0, missing };
}

/**
 * Opens /dev/cachefiles and binds an on-demand cache in `<cacheDir>/fscache` with the given free-space limits
 * (default DEFAULT_LIMITS of ./cull.ts).
 */
export function bindCachefiles(cacheDir: string, limits: CachefilesLimits = DEFAULT_LIMITS): number {
  const dev = openCachefiles();
  try {
    const dir = path.join(cacheDir, "fscache");
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    cachefilesCommand(dev, `dir ${dir}`);
    cachefilesCommand(dev, "tag eod");
    setCachefilesLimits(dev, limits);
    cachefilesCommand(dev, "bind ondemand");
  } catch (err) {
    fs.closeSync(dev);
    throw err;
  }
  return dev;
}
