// The cache directory a command works on: --cache-dir, else $EOD_CACHE_DIR, else /var/cache/erofs-ondemand.
import path from "node:path";

export const DEFAULT_CACHE_DIR = "/var/cache/erofs-ondemand";

export function cacheDirOf(flag: string | undefined): string {
  return path.resolve(flag ?? process.env.EOD_CACHE_DIR ?? DEFAULT_CACHE_DIR);
}
