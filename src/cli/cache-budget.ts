// --cache-size / --cache-high / --cache-low of eod daemon and eod mount: checked in the CLI, handed to the
// daemon (and the fscache holder's child) through its environment, like the other EOD_* tunables.
import { parseBudget } from "../cache/cull-plan.ts";

export const BUDGET_OPTIONS = {
  "cache-size": { type: "string" }, "cache-high": { type: "string" }, "cache-low": { type: "string" },
} as const;

export const BUDGET_USAGE = `--cache-size <size>  (also $EOD_CACHE_SIZE; default: no budget) bytes of cached blob data the cache
directory may hold, e.g. 20G. Above --cache-high (default 95%) of it, the least recently used chunks of any
blob are culled (holes punched; fetched again when read) down to --cache-low (default 85%). With the
fscache frontend whole cache files no mount uses are culled instead. A full cache filesystem also culls.`;

/** Validates the options and exports them as EOD_CACHE_SIZE/EOD_CACHE_HIGH/EOD_CACHE_LOW. */
export function budgetToEnv(values: { "cache-size"?: string; "cache-high"?: string; "cache-low"?: string }): void {
  const size = values["cache-size"] ?? process.env.EOD_CACHE_SIZE;
  const high = values["cache-high"] ?? process.env.EOD_CACHE_HIGH;
  const low = values["cache-low"] ?? process.env.EOD_CACHE_LOW;
  parseBudget(size, high, low);
  for (const [name, v] of [["EOD_CACHE_SIZE", size], ["EOD_CACHE_HIGH", high], ["EOD_CACHE_LOW", low]] as const) if (v !== undefined) process.env[name] = v;
}
