// The one place eod reads its settings: command-line flags, then EOD_* environment variables, then the config
// file (--config, $EOD_CONFIG, or /etc/erofs-ondemand/config.json if it exists), then defaults. The result is
// one typed EodConfig that callers pass down; no other module reads process.env for EOD_* variables.
// The holder hands its kernel fd to the daemon it runs through the environment too (handOverOf): a holder
// started before an upgrade still starts the new daemon that way.
import fs from "node:fs";
import path from "node:path";
import { BUDGET_DEFAULTS, checkWatermarks } from "../cache/cull-plan.ts";
import { EodError } from "../errors.ts";
import type { HandOver } from "../frontend/frontend.ts";
import { DEFAULT_CONFIG_FILE, defaultConfig, KEYS, type EodConfig } from "./keys.ts";
import { count, flag } from "./values.ts";

export { DEFAULT_CACHE_DIR, DEFAULT_CONFIG_FILE, type EodConfig } from "./keys.ts";

/** What a command's parseArgs() returned: only the config keys' flags (and --config) are looked at. */
export type Flags = Readonly<Record<string, string | boolean | string[] | undefined>>;
type Env = Readonly<Record<string, string | undefined>>;

/**
 * Builds the configuration: every key from the first source that has it (flags > env > file > default).
 * @throws EodError USAGE naming the key and its source for a bad value, an unknown key in the file, a file
 *   that cannot be read or is not JSON
 */
export function loadConfig(flags: Flags = {}, env: Env = process.env): EodConfig {
  const c = defaultConfig();
  const explicit = typeof flags.config === "string" ? flags.config : env.EOD_CONFIG || undefined;
  const file = explicit !== undefined ? path.resolve(explicit) : fs.existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : null;
  const fromFile = file === null ? new Map<string, unknown>() : readConfigFile(file);
  c.file = file;
  for (const k of KEYS) {
    const f = k.flag === undefined ? undefined : flags[k.flag];
    const e = k.env === undefined ? undefined : env[k.env];
    if (f !== undefined && !(Array.isArray(f) && f.length === 0)) k.set(c, k.parse(f, `--${k.flag}`));
    else if (e !== undefined && e !== "") k.set(c, k.parse(e, `$${k.env}`));
    else if (fromFile.has(k.file)) k.set(c, k.parse(fromFile.get(k.file), `${k.file} in ${file}`));
  }
  checkWatermarks({ highPct: c.cache.cacheHighPct ?? BUDGET_DEFAULTS.highPct, lowPct: c.cache.cacheLowPct ?? BUDGET_DEFAULTS.lowPct });
  return c;
}

/** The config file's settings by dotted key; unknown keys and non-JSON are errors naming the file. */
function readConfigFile(file: string): Map<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new EodError("USAGE", `Cannot read the config file ${file}: ${why}`, { cause: err });
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new EodError("USAGE", `The config file ${file} must hold a JSON object`);
  const known = new Set(KEYS.map((k) => k.file));
  const sections = new Set([...known].filter((k) => k.includes(".")).map((k) => k.split(".")[0]));
  const out = new Map<string, unknown>();
  for (const [name, value] of Object.entries(parsed)) {
    const entries = sections.has(name) && typeof value === "object" && value !== null && !Array.isArray(value)
      ? Object.entries(value).map(([sub, v]) => [`${name}.${sub}`, v] as const)
      : [[name, value] as const];
    for (const [k, v] of entries) {
      if (!known.has(k)) throw new EodError("USAGE", `Unknown key ${k} in the config file ${file} (known: ${[...known].join(", ")})`);
      out.set(k, v);
    }
  }
  return out;
}

/**
 * The command-line flags that carry these parsed values on to a daemon this command starts: the config keys'
 * flags that were given (but `except`), and --config. Settings from the environment or the file reach it on their own.
 */
export function forwardedFlags(flags: Flags, except: readonly string[] = []): string[] {
  const out: string[] = [];
  for (const name of new Set(["config", ...KEYS.flatMap((k) => (k.flag === undefined ? [] : [k.flag]))].filter((n) => !except.includes(n)))) {
    const v = flags[name];
    if (typeof v === "string") out.push(`--${name}`, name === "config" ? path.resolve(v) : v);
    else if (Array.isArray(v)) for (const item of v) out.push(`--${name}`, item);
  }
  return out;
}

const HANDOVER_FD = 3;

export function handOverOf(env: Env = process.env): HandOver {
  const fd = (name: string) => (env[name] === undefined ? undefined : count(env[name], `$${name}`));
  const yes = (name: string) => env[name] !== undefined && flag(env[name], `$${name}`);
  return {
    cachefilesFd: fd("EOD_CACHEFILES_FD"), fanotifyFd: fd("EOD_FANOTIFY_FD"), fuseFd: fd("EOD_FUSE_FD"),
    restore: yes("EOD_CACHEFILES_RESTORE"), restarted: yes("EOD_DAEMON_RESTARTED"), reason: env.EOD_FRONTEND_REASON || undefined,
  };
}

/** Whether a holder passed a kernel fd on (this process is its daemon), or this process has to make one. */
export function holdsKernelFd(h: HandOver): boolean {
  return h.cachefilesFd !== undefined || h.fanotifyFd !== undefined || h.fuseFd !== undefined;
}

/** The environment that hands fd 3 over to a daemon child (read back by handOverOf). */
export function handOverEnv(frontend: "fscache" | "fanotify" | "fuse", restarted: boolean, reason: string): Record<string, string> {
  const fd = String(HANDOVER_FD);
  const kernel: Record<string, string> = frontend === "fscache" ? { EOD_CACHEFILES_FD: fd, EOD_CACHEFILES_RESTORE: restarted ? "1" : "0" }
    : frontend === "fuse" ? { EOD_FUSE_FD: fd } : { EOD_FANOTIFY_FD: fd };
  return { ...kernel, EOD_DAEMON_RESTARTED: restarted ? "1" : "0", EOD_FRONTEND_REASON: reason };
}
