// eod snapshotter: containerd's remote snapshotter, in the foreground until SIGTERM or SIGINT.
import { EodError } from "../errors.ts";
import { forwardedFlags, loadConfig } from "../config/config.ts";
import { jsonLog } from "../util/log.ts";
import { parse } from "./args.ts";

export const SNAPSHOTTER_USAGE = `Usage: eod snapshotter [options]

Serves containerd's snapshots API on a unix socket (containerd's config: [proxy_plugins.eod] type = "snapshot",
address = <socket>; see docs/containerd.md). Ordinary image layers are unpacked by containerd into overlay
directories under the root; the layers of images converted by eod, and of ordinary images an eod index refers
to (eod index --push; asked of the cache daemon once per image at its CRI pull), are never downloaded:
containers of such an image share one lazy mount of it through the cache daemon (started when none runs).
Stopping (SIGTERM, SIGINT) leaves every mount in place; the next start re-attaches.

Options:
  --address <socket>     the socket (default $EOD_SNAPSHOTTER_ADDRESS, the config file's snapshotter.address,
                         or /run/erofs-ondemand/snapshotter.sock); mode 0660
  --root <dir>           metadata.db, snapshot directories and image mounts (default $EOD_SNAPSHOTTER_ROOT,
                         snapshotter.root, or /var/lib/erofs-ondemand/snapshotter)
  --cache-dir <dir>      the cache directory of the image mounts' daemon (default $EOD_CACHE_DIR, cache_dir,
                         or /var/cache/erofs-ondemand)
  --config <file>        the config file (default $EOD_CONFIG or /etc/erofs-ondemand/config.json)
  --insecure-registry <host[:port]>  speak to this registry without TLS verification (or plain HTTP);
                         repeatable
  --metrics-listen <host:port>  serve GET /metrics (snapshots by kind, lazy layers, image mounts) over TCP
                         (default $EOD_SNAPSHOTTER_METRICS_LISTEN or snapshotter.metrics_listen)
  --mount-on-pull        a CRI pull of an eod image also mounts it in the background (fetching its metadata
                         and prefetch list), so its first container starts on a mounted image (default
                         $EOD_SNAPSHOTTER_MOUNT_ON_PULL or snapshotter.mount_on_pull, else off: a pull
                         fetches no layer blob, the first container mounts the image)
  --mount-on-pull-idle <duration>  unmount such a mount when no container took it within this time (default
                         $EOD_SNAPSHOTTER_MOUNT_ON_PULL_IDLE, snapshotter.mount_on_pull_idle, or 10m)
  --index-locally        a CRI pull of an ordinary image nobody indexed (eod index --push) indexes it on this
                         node instead of letting containerd unpack it: its layers are downloaded once in full,
                         the index kept in <cache-dir>/indexes/, and the image runs lazily; later pulls of it
                         on this node download no layer (default $EOD_SNAPSHOTTER_INDEX_LOCALLY or
                         snapshotter.index_locally, else off)`;

export async function snapshotterCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    address: { type: "string" }, root: { type: "string" }, "cache-dir": { type: "string" }, config: { type: "string" },
    "insecure-registry": { type: "string", multiple: true }, "metrics-listen": { type: "string" },
    "mount-on-pull": { type: "boolean" }, "mount-on-pull-idle": { type: "string" }, "index-locally": { type: "boolean" }, help: { type: "boolean", short: "h" },
  }, SNAPSHOTTER_USAGE);
  if (values.help) { console.log(SNAPSHOTTER_USAGE); return 0; }
  if (positionals.length !== 0) throw new EodError("USAGE", SNAPSHOTTER_USAGE);
  const config = loadConfig(values);
  const log = jsonLog((line) => process.stderr.write(line));
  const daemonArgs = forwardedFlags(values, ["cache-dir", "address", "root", "metrics-listen", "mount-on-pull", "mount-on-pull-idle", "index-locally"]);
  const { runSnapshotter } = await import("../snapshotter/run.ts");
  const running = await runSnapshotter(config, log, daemonArgs);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
  });
  await running.stop();
  return 0;
}
