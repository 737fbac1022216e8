// Parsers of configuration values. Each takes what a source holds (a JSON value from the config file, a
// string from a flag or the environment) and returns the typed value, or throws a USAGE error that names the
// key and where the value came from.
import path from "node:path";
import { EodError } from "../errors.ts";
import { parseByteSize } from "../cache/cull-plan.ts";
import { parseLimits } from "../frontend/fscache/cull.ts";
import type { CachefilesLimits } from "../sys/cachefiles.ts";

/** Where a value was read: `--cache-size`, `$EOD_CACHE_SIZE`, or `cache.size in /etc/erofs-ondemand/config.json`. */
export type Parser<T> = (raw: unknown, where: string) => T;

function bad(where: string, raw: unknown, want: string): EodError {
  return new EodError("USAGE", `Bad value for ${where}: ${JSON.stringify(raw)}; expected ${want}`);
}

function text(raw: unknown, where: string, want: string): string {
  if (typeof raw === "string" && raw.trim() !== "") return raw.trim();
  throw bad(where, raw, want);
}

export const str: Parser<string> = (raw, where) => text(raw, where, "a non-empty string");

export const absPath: Parser<string> = (raw, where) => path.resolve(text(raw, where, "a path"));

export function oneOf<T extends string>(choices: readonly T[]): Parser<T> {
  return (raw, where) => {
    if (typeof raw === "string" && (choices as readonly string[]).includes(raw)) return raw as T;
    throw bad(where, raw, `one of ${choices.join(", ")}`);
  };
}

/** A whole number >= 0 (milliseconds, counts): a JSON number, or its decimal text. */
export const count: Parser<number> = (raw, where) => {
  const n = typeof raw === "number" ? raw : typeof raw === "string" && /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
  if (Number.isSafeInteger(n) && n >= 0) return n;
  throw bad(where, raw, "a whole number >= 0");
};

/** Bytes: a JSON number, or a text with an optional K/M/G/T suffix (powers of 1024), e.g. "20G". */
export const bytes: Parser<number> = (raw, where) => {
  if (typeof raw === "number") return count(raw, where);
  try {
    return parseByteSize(text(raw, where, "a size"), where);
  } catch {
    throw bad(where, raw, "a number of bytes with an optional K/M/G/T suffix, e.g. 20G");
  }
};

/** A percent in (0, 100]: a JSON number, or a text like "95" or "95%". */
export const percent: Parser<number> = (raw, where) => {
  const m = typeof raw === "number" ? [String(raw), String(raw)] : typeof raw === "string" ? /^\s*(\d{1,3}(?:\.\d+)?)%?\s*$/.exec(raw) : null;
  const n = m ? Number(m[1]) : NaN;
  if (n > 0 && n <= 100) return n;
  throw bad(where, raw, "a percent above 0 and at most 100, e.g. 95%");
};

/**
 * `host:port` (`[::1]:9187` for IPv6) → parts; port 0 picks a free one. Without `defaultHost` the host is
 * required (`:9187` is refused); `what` names the flag in the error.
 */
export function parseListen(spec: string, what: string, defaultHost?: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(spec.trim());
  const host = m ? (m[1] ?? m[2]) || defaultHost : undefined;
  const port = m ? Number(m[3]) : NaN;
  if (!host || !(port <= 65535)) throw new EodError("USAGE", `${what} wants host:port (e.g. 127.0.0.1:9187), got ${JSON.stringify(spec)}`);
  return { host, port };
}

/** `host:port` for the metrics listener. */
export const listen: Parser<string> = (raw, where) => {
  const spec = text(raw, where, "host:port");
  try {
    parseListen(spec, where);
  } catch {
    throw bad(where, raw, "host:port, e.g. 127.0.0.1:9187");
  }
  return spec;
};

/** fscache free-space limits: `"bcull=7%,brun=10%"` or `{"bcull": 7, "brun": 10}` (any subset, over the defaults). */
export const limits: Parser<CachefilesLimits> = (raw, where) => {
  const spec = typeof raw === "object" && raw !== null && !Array.isArray(raw)
    ? Object.entries(raw).map(([k, v]) => `${k}=${String(v)}`).join(",")
    : text(raw, where, "limits like bcull=7%,brun=10%");
  try {
    return parseLimits(spec);
  } catch (err) {
    throw new EodError("USAGE", `Bad value for ${where}: ${(err as Error).message}`);
  }
};

/** Registry names (host[:port]): a JSON list, or a comma-separated text. */
export const hostList: Parser<string[]> = (raw, where) => {
  const items = Array.isArray(raw) ? raw : typeof raw === "string" ? raw.split(",").map((s) => s.trim()).filter(Boolean) : null;
  if (items && items.every((h) => typeof h === "string" && /^[A-Za-z0-9.\-[\]:]+$/.test(h))) return items as string[];
  throw bad(where, raw, "registry names host[:port] (a list, or comma separated)");
};

/** A boolean: JSON true/false, or "1"/"0" (the hand-over variables). */
export const flag: Parser<boolean> = (raw, where) => {
  if (typeof raw === "boolean") return raw;
  if (raw === "1" || raw === "0") return raw === "1";
  throw bad(where, raw, "1 or 0");
};

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A duration in milliseconds: a text with a unit (`500ms`, `90s`, `10m`, `1h`), or a JSON number of seconds. */
export const duration: Parser<number> = (raw, where) => {
  const m = typeof raw === "string" ? /^\s*(\d+)\s*(ms|s|m|h)\s*$/.exec(raw) : null;
  const n = typeof raw === "number" ? raw * 1000 : m ? Number(m[1]) * DURATION_UNITS[m[2]] : NaN;
  if (Number.isSafeInteger(n) && n >= 0) return n;
  throw bad(where, raw, "a duration with a unit (ms, s, m, h), e.g. 10m, or a number of seconds");
};
