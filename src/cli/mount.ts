// eod mount <image-dir | http(s)://…> <mountpoint>
import { EodError } from "../errors.ts";
import { callDaemon, daemonAlive } from "../daemon/client.ts";
import { socketPathOf } from "../daemon/client.ts";
import { callStartedDaemon, ensureDaemon } from "../daemon/spawn.ts";
import type { MountRecord } from "../daemon/state.ts";
import { parse, parseSize, print } from "./args.ts";
import { imageSource } from "./image-source.ts";
import { isRegistrySource, type RegistryImageOptions } from "../remote/registry/image-remote.ts";
import { BUDGET_OPTIONS } from "./cache-budget.ts";
import { forwardedFlags, loadConfig, type EodConfig } from "../config/config.ts";
import { INDEX_LOCALLY_OPTION, INDEX_LOCALLY_USAGE, indexLocallyIfAsked } from "./index-locally.ts";

export const MOUNT_USAGE = `Usage: eod mount <image-dir | http(s)://host/path/ | registry-ref> <mountpoint> [options]

Mounts an image lazily: the bootstrap is fetched and verified, the blobs are fetched on demand by the cache
daemon of the cache directory (started in the background if it is not running) and kept in sparse files.
A registry reference (host[:port]/repo[:tag][@digest], or docker://repo:tag) names an image pushed by
eod convert, or an ordinary image indexed by eod index --push (or, with --index-locally, by this node); the
tag is resolved once, the mount stays on that manifest digest.

Options:
  --cache-dir <dir>      cache directory (default $EOD_CACHE_DIR, the config file's cache_dir, or
                         /var/cache/erofs-ondemand)
  --config <file>        the config file (default $EOD_CONFIG or /etc/erofs-ondemand/config.json);
                         see docs/configuration.md
  --frontend <kind>      auto (default: fanotify, else fscache, else fuse, whichever the kernel can run),
                         fanotify, fscache or fuse
  --fscache-limits <spec>  free-space levels for the fscache cache, e.g. bcull=20%,brun=30% (see eod daemon
                         --help); used when this mount starts the cache daemon
  --cache-size <size>    size budget of the cache directory, e.g. 20G (also --cache-high/--cache-low <pct>;
                         see eod daemon --help); used when this mount starts the cache daemon
  --insecure-registry <host[:port]>  speak to this registry without TLS verification (or plain HTTP);
                         repeatable
${INDEX_LOCALLY_USAGE}
  --background-fetch     after the image's prefetch list, fetch all of the image in the background (demand
                         misses first); resumed by a restarted daemon
  --background-rate <n>  cap of the background fetch in bytes per second, e.g. 16M (default 16M; 0 = none)
  --foreground           serve in this process until interrupted (Ctrl-C unmounts)
  --json                 print the mount record as JSON`;

export async function mountCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    config: { type: "string" }, "cache-dir": { type: "string" }, "insecure-registry": { type: "string", multiple: true }, frontend: { type: "string" }, "fscache-limits": { type: "string" }, ...BUDGET_OPTIONS, foreground: { type: "boolean" }, json: { type: "boolean" },
    "background-fetch": { type: "boolean" }, "background-rate": { type: "string" }, ...INDEX_LOCALLY_OPTION,
    help: { type: "boolean", short: "h" },
  }, MOUNT_USAGE);
  if (values.help) { console.log(MOUNT_USAGE); return 0; }
  if (positionals.length !== 2) throw new EodError("USAGE", MOUNT_USAGE);
  const config = loadConfig(values);
  const { cacheDir } = config;
  const source = imageSource(positionals[0]);
  const mountPoint = positionals[1];
  if (values["background-rate"] !== undefined && !values["background-fetch"]) throw new EodError("USAGE", "--background-rate needs --background-fetch");
  const backgroundFetch = values["background-fetch"] ? parseSize(values["background-rate"] ?? "16M", "--background-rate") : undefined;
  const insecureRegistries = values["insecure-registry"] ?? []; // for this mount, whichever daemon serves it
  const indexDir = await indexLocallyIfAsked(source, config, insecureRegistries, values.json ?? false);
  const show = (r: MountRecord) => print(values.json ?? false, r, () => `mounted ${r.source} on ${r.mountPoint} (${r.blobs.length} blob(s), frontend ${r.frontend}, cache ${cacheDir})`);
  if (values.foreground) {
    const { runDaemon } = await import("../daemon/run.ts"); // the CLI alone needs only the daemon client
    const daemon = await runDaemon({ config });
    const record = await daemon.mount({ source, mountPoint, insecureRegistries, backgroundFetch, indexDir });
    show(record);
    // Ctrl-C: unmount what this process mounted, then stop.
    process.removeAllListeners("SIGINT");
    process.removeAllListeners("SIGTERM");
    await new Promise<void>((resolve) => {
      const done = () => resolve();
      process.once("SIGINT", done);
      process.once("SIGTERM", done);
    });
    await daemon.umount(record.mountPoint).catch((err: Error) => console.error(`eod: ${err.message}`));
    await daemon.stop();
    return 0;
  }
  const daemonArgs = forwardedFlags(values, ["cache-dir", "frontend"]);
  const request = { source, mountPoint, insecureRegistries, backgroundFetch, indexDir };
  const { sock, answer } = await callStartedDaemon<MountRecord>(() => startDaemonWarm(config, daemonArgs, source, indexDir), "POST", "/mounts", request);
  show(answer);
  if (values["cache-size"] !== undefined) await warnOtherBudget(sock, config.cache.cacheSize ?? 0);
  return 0;
}

/**
 * ensureDaemon(), and when it has to start the daemon of an HTTP or registry image, the image's metadata (bootstrap and
 * chunk tables, verified and kept content-addressed in the cache directory) is fetched meanwhile, so the
 * daemon's load finds it there: the daemon's start-up and those round trips overlap on a cold start.
 */
async function startDaemonWarm(config: EodConfig, daemonArgs: string[], source: string, indexDir?: string): Promise<string> {
  const { cacheDir } = config;
  const start = () => ensureDaemon(cacheDir, config.frontend, { args: daemonArgs, timeoutMs: config.daemonStartTimeoutMs });
  const fetched = /^https?:\/\//i.test(source) || isRegistrySource(source); // a registry source too: its tag, manifest.json, bootstrap, tables
  if (!fetched || await daemonAlive(socketPathOf(cacheDir))) return start();
  const warm = (async () => {
    const { openRemote } = await import("../remote/open-remote.ts");
    const { loadImage } = await import("../daemon/images.ts");
    const opts: RegistryImageOptions = { ...config.remote, ...(indexDir !== undefined ? { indexDir } : {}) };
    const remote = openRemote(source, opts);
    try {
      await loadImage(remote, cacheDir);
    } finally {
      await remote.close();
    }
  })().catch(() => {}); // the daemon's own load reports what is wrong
  const [sock] = await Promise.all([start(), warm]);
  return sock;
}

/** --cache-size applies when a daemon starts: say so when the running daemon has another budget. */
async function warnOtherBudget(sock: string, wanted: number): Promise<void> {
  const s = await callDaemon<{ cache?: { budget: number } }>(sock, "GET", "/status").catch(() => null);
  if (s?.cache && s.cache.budget !== wanted) {
    console.error(`eod: warning: the running cache daemon has a budget of ${s.cache.budget || "none"} B; --cache-size applies only when a daemon starts (stop it, or start it with eod daemon --cache-size)`);
  }
}
