// Every setting of eod, once: its name in the config file, its environment variable and its command-line flag
// (where it has them), how its value is parsed, and where it goes in the typed EodConfig. docs/configuration.md
// documents this table; keep them together.
import type { CacheOptions } from "../cache/core.ts";
import { FRONTEND_KINDS, type FrontendKind } from "../frontend/frontend.ts";
import type { RemoteOptions } from "../remote/remote.ts";
import type { CachefilesLimits } from "../sys/cachefiles.ts";
import { DEFAULT_LIMITS } from "../frontend/fscache/cull.ts";
import { absPath, bytes, count, duration, flag, hostList, limits, listen, oneOf, percent, str, type Parser } from "./values.ts";

/** The settings of eod, typed and checked; built once at the edge (loadConfig) and passed down. */
export interface EodConfig {
  /** The config file that was read, or null. */
  file: string | null;
  cacheDir: string;
  frontend: FrontendKind;
  /** The daemon's log (JSON lines); stderr when unset. */
  logFile?: string;
  /** host:port for GET /metrics over TCP. */
  metricsListen?: string;
  /** How long `eod mount`/`eod pull` wait for a daemon they start (and `eod daemon restart` for the new one). */
  daemonStartTimeoutMs: number;
  /** Only the options set anywhere: the cache core's defaults (CACHE_DEFAULTS) fill the rest. */
  cache: CacheOptions;
  fscache: { limits: CachefilesLimits; domain?: string };
  /**
   * mount.loop_devices: erofs on loop devices only where the kernel cannot mount files (auto), or always.
   * mount.index_locally: `eod mount`/`eod pull` of an ordinary registry image nobody indexed build its seek index
   * on this node (one full download of its layers) instead of failing.
   */
  mount: { loopDevices: LoopDeviceMode; indexLocally: boolean };
  remote: RemoteOptions & { insecureRegistries: string[] };
  /**
   * `eod snapshotter`: its socket, its root (metadata.db, snapshot dirs, image mounts), its own metrics listener;
   * whether a pull's lazy Prepare mounts the image already, and how long such a mount waits for a container;
   * whether an ordinary image nobody indexed is indexed on this node at its pull (index_locally).
   */
  snapshotter: { address: string; root: string; metricsListen?: string; mountOnPull: boolean; mountOnPullIdleMs: number; indexLocally: boolean };
}

export const LOOP_DEVICE_MODES = ["auto", "always"] as const;
export type LoopDeviceMode = (typeof LOOP_DEVICE_MODES)[number];

export const DEFAULT_CACHE_DIR = "/var/cache/erofs-ondemand";
export const DEFAULT_CONFIG_FILE = "/etc/erofs-ondemand/config.json";
export const DEFAULT_DAEMON_START_TIMEOUT_MS = 30_000;
export const DEFAULT_SNAPSHOTTER_ADDRESS = "/run/erofs-ondemand/snapshotter.sock";
export const DEFAULT_SNAPSHOTTER_ROOT = "/var/lib/erofs-ondemand/snapshotter";
export const DEFAULT_MOUNT_ON_PULL_IDLE_MS = 10 * 60_000;

export function defaultConfig(): EodConfig {
  return {
    file: null, cacheDir: DEFAULT_CACHE_DIR, frontend: "auto", daemonStartTimeoutMs: DEFAULT_DAEMON_START_TIMEOUT_MS,
    cache: {}, fscache: { limits: { ...DEFAULT_LIMITS } }, mount: { loopDevices: "auto", indexLocally: false }, remote: { insecureRegistries: [] },
    snapshotter: { address: DEFAULT_SNAPSHOTTER_ADDRESS, root: DEFAULT_SNAPSHOTTER_ROOT, mountOnPull: false, mountOnPullIdleMs: DEFAULT_MOUNT_ON_PULL_IDLE_MS, indexLocally: false },
  };
}

export interface Key<T = never> {
  /** Dotted path in the config file (snake_case, as nydusd and containerd configs write them). */
  file: string;
  env?: string;
  /** Long option without the dashes. */
  flag?: string;
  parse: Parser<T>;
  set(c: EodConfig, v: T): void;
}

function key<T>(k: Key<T>): Key<unknown> {
  return k as unknown as Key<unknown>;
}

export const KEYS: readonly Key<unknown>[] = [
  key({ file: "cache_dir", env: "EOD_CACHE_DIR", flag: "cache-dir", parse: absPath, set: (c, v) => { c.cacheDir = v; } }),
  key<FrontendKind>({ file: "frontend", flag: "frontend", parse: oneOf(FRONTEND_KINDS), set: (c, v) => { c.frontend = v; } }),
  key({ file: "log_file", flag: "log-file", parse: absPath, set: (c, v) => { c.logFile = v; } }),
  key({ file: "metrics.listen", env: "EOD_METRICS_LISTEN", flag: "metrics-listen", parse: listen, set: (c, v) => { c.metricsListen = v; } }),
  key({ file: "daemon.start_timeout_ms", env: "EOD_DAEMON_START_TIMEOUT_MS", parse: count, set: (c, v) => { c.daemonStartTimeoutMs = v; } }),
  key({ file: "cache.size", env: "EOD_CACHE_SIZE", flag: "cache-size", parse: bytes, set: (c, v) => { c.cache.cacheSize = v; } }),
  key({ file: "cache.high_percent", env: "EOD_CACHE_HIGH", flag: "cache-high", parse: percent, set: (c, v) => { c.cache.cacheHighPct = v; } }),
  key({ file: "cache.low_percent", env: "EOD_CACHE_LOW", flag: "cache-low", parse: percent, set: (c, v) => { c.cache.cacheLowPct = v; } }),
  key({ file: "cache.cull_grace_ms", env: "EOD_CULL_GRACE_MS", parse: count, set: (c, v) => { c.cache.cullGraceMs = v; } }),
  key({ file: "cache.min_fetch", env: "EOD_MIN_FETCH", parse: bytes, set: (c, v) => { c.cache.minFetch = v; } }),
  key({ file: "cache.file_fetch", env: "EOD_FILE_FETCH", parse: bytes, set: (c, v) => { c.cache.fileFetch = v; } }),
  key({ file: "cache.amplify", env: "EOD_AMPLIFY", parse: bytes, set: (c, v) => { c.cache.amplify = v; } }),
  key({ file: "cache.max_fetch", env: "EOD_MAX_FETCH", parse: bytes, set: (c, v) => { c.cache.maxFetch = v; } }),
  key({ file: "cache.prefetch_fetch", env: "EOD_PREFETCH_FETCH", parse: bytes, set: (c, v) => { c.cache.prefetchFetch = v; } }),
  key({ file: "cache.prefetch_slots", env: "EOD_PREFETCH_SLOTS", parse: count, set: (c, v) => { c.cache.prefetchSlots = v; } }),
  key({ file: "cache.memory_budget", env: "EOD_MEMORY_BUDGET", parse: bytes, set: (c, v) => { c.cache.memoryBudget = v; } }),
  key({ file: "fscache.limits", env: "EOD_FSCACHE_LIMITS", flag: "fscache-limits", parse: limits, set: (c, v) => { c.fscache.limits = v; } }),
  key({ file: "fscache.domain", env: "EOD_FSCACHE_DOMAIN", parse: str, set: (c, v) => { c.fscache.domain = v; } }),
  key<LoopDeviceMode>({ file: "mount.loop_devices", env: "EOD_LOOP_DEVICES", parse: oneOf(LOOP_DEVICE_MODES), set: (c, v) => { c.mount.loopDevices = v; } }),
  key({ file: "mount.index_locally", env: "EOD_INDEX_LOCALLY", flag: "index-locally", parse: flag, set: (c, v) => { c.mount.indexLocally = v; } }),
  key({ file: "remote.timeout_ms", env: "EOD_REMOTE_TIMEOUT_MS", parse: count, set: (c, v) => { c.remote.timeoutMs = v; } }),
  key({ file: "remote.retries", env: "EOD_REMOTE_RETRIES", parse: count, set: (c, v) => { c.remote.retries = v; } }),
  key({ file: "remote.concurrency", env: "EOD_REMOTE_CONCURRENCY", parse: count, set: (c, v) => { c.remote.concurrency = v; } }),
  key({ file: "snapshotter.address", env: "EOD_SNAPSHOTTER_ADDRESS", flag: "address", parse: absPath, set: (c, v) => { c.snapshotter.address = v; } }),
  key({ file: "snapshotter.root", env: "EOD_SNAPSHOTTER_ROOT", flag: "root", parse: absPath, set: (c, v) => { c.snapshotter.root = v; } }),
  // The flag is the daemon's too: each command reads its own key (eod snapshotter does not forward it to the daemon it starts).
  key({ file: "snapshotter.metrics_listen", env: "EOD_SNAPSHOTTER_METRICS_LISTEN", flag: "metrics-listen", parse: listen, set: (c, v) => { c.snapshotter.metricsListen = v; } }),
  key({ file: "snapshotter.mount_on_pull", env: "EOD_SNAPSHOTTER_MOUNT_ON_PULL", flag: "mount-on-pull", parse: flag, set: (c, v) => { c.snapshotter.mountOnPull = v; } }),
  // The flag is eod mount's too (mount.index_locally): each command reads its own key.
  key({ file: "snapshotter.index_locally", env: "EOD_SNAPSHOTTER_INDEX_LOCALLY", flag: "index-locally", parse: flag, set: (c, v) => { c.snapshotter.indexLocally = v; } }),
  key({ file: "snapshotter.mount_on_pull_idle", env: "EOD_SNAPSHOTTER_MOUNT_ON_PULL_IDLE", flag: "mount-on-pull-idle", parse: duration, set: (c, v) => { c.snapshotter.mountOnPullIdleMs = v; } }),
  key({ file: "remote.insecure_registries", env: "EOD_INSECURE_REGISTRY", flag: "insecure-registry", parse: hostList, set: (c, v) => { c.remote.insecureRegistries = v; } }),
];
