// eod pull <image-dir | http(s)://… | registry-ref>: every chunk of an image into the cache ahead of time.
import { callDaemon } from "../daemon/client.ts";
import type { PullResult, PullStatus } from "../daemon/pull.ts";
import { ensureDaemon } from "../daemon/spawn.ts";
import { EodError } from "../errors.ts";
import { parse, print } from "./args.ts";
import { forwardedFlags, loadConfig } from "../config/config.ts";
import { imageSource } from "./image-source.ts";
import { progressBar } from "./progress.ts";
import { INDEX_LOCALLY_OPTION, INDEX_LOCALLY_USAGE, indexLocallyIfAsked } from "./index-locally.ts";

export const PULL_USAGE = `Usage: eod pull <image-dir | http(s)://host/path/ | registry-ref> [options]

Fetches every chunk of every blob of an image into the cache (each one verified), through the cache daemon of
the cache directory (started if it is not running; it exits afterwards if nothing is mounted). A later
eod mount of the same image fetches no blob data. With the fscache frontend the kernel creates a blob's cache
file when a mount first reads it: pull a mounted image there.

Options:
  --cache-dir <dir>      cache directory (default $EOD_CACHE_DIR, the config file's cache_dir, or
                         /var/cache/erofs-ondemand); --config <file>: see eod mount --help
  --frontend <kind>      for a daemon this starts: auto (default), fscache or fanotify
  --insecure-registry <host[:port]>  speak to this registry without TLS verification (or plain HTTP);
                         repeatable
${INDEX_LOCALLY_USAGE}
  --json                 print a machine-readable summary`;

export async function pullCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    config: { type: "string" }, "cache-dir": { type: "string" }, frontend: { type: "string" }, "insecure-registry": { type: "string", multiple: true },
    json: { type: "boolean" }, ...INDEX_LOCALLY_OPTION, help: { type: "boolean", short: "h" },
  }, PULL_USAGE);
  if (values.help) { console.log(PULL_USAGE); return 0; }
  if (positionals.length !== 1) throw new EodError("USAGE", PULL_USAGE);
  const config = loadConfig(values);
  const source = imageSource(positionals[0]);
  const insecureRegistries = values["insecure-registry"] ?? []; // for this pull, whichever daemon serves it
  const { cacheDir } = config;
  const json = values.json ?? false;
  const indexDir = await indexLocallyIfAsked(source, config, insecureRegistries, json);
  const sock = await ensureDaemon(cacheDir, config.frontend, { args: forwardedFlags(values, ["cache-dir", "frontend"]), timeoutMs: config.daemonStartTimeoutMs });
  const bar = progressBar(!json);
  // Progress: the daemon's status lists the pulls running; ours is the one whose source we sent (or pinned).
  let polling = true;
  const poll = (async () => {
    while (polling) {
      await new Promise((r) => setTimeout(r, 200));
      const s = await callDaemon<{ pulls?: PullStatus[] }>(sock, "GET", "/status", undefined, 5000).catch(() => null);
      const mine = s?.pulls?.find((p) => p.source === source || p.source.startsWith(`${source}@`));
      if (polling && mine) bar.update("pull", mine.cachedBytes, mine.totalBytes);
    }
  })();
  try {
    const started = performance.now();
    const r = await callDaemon<PullResult>(sock, "POST", "/pull", { source, insecureRegistries, indexDir }, 0); // no deadline: a pull takes as long as the data
    polling = false;
    bar.stop();
    const seconds = (performance.now() - started) / 1000;
    print(json, { ...r, cacheDir, seconds }, () =>
      `${r.source}: ${r.blobs.length} blob(s), ${r.cachedBytes}/${r.totalBytes} bytes cached, ${r.fetchedBytes} bytes fetched (${seconds.toFixed(2)} s, cache ${cacheDir})`);
    return 0;
  } finally {
    polling = false;
    bar.stop();
    await poll;
  }
}
