// --cache-size / --cache-high / --cache-low of eod daemon and eod mount (parsed with the other settings by
// src/config: config keys cache.size, cache.high_percent, cache.low_percent).

export const BUDGET_OPTIONS = {
  "cache-size": { type: "string" }, "cache-high": { type: "string" }, "cache-low": { type: "string" },
} as const;

export const BUDGET_USAGE = `--cache-size <size>  (config cache.size; default: no budget) bytes of cached blob data the cache
directory may hold, e.g. 20G. Above --cache-high (default 95%) of it, the least recently used chunks of any
blob are culled (holes punched; fetched again when read) down to --cache-low (default 85%). With the
fscache frontend whole cache files no mount uses are culled instead. A full cache filesystem also culls.`;
