// `eod snapshotter` put together: the image mounts through the cache daemon, the snapshot logic over the
// root's database, the gRPC socket, and GET /metrics when asked. Stopping closes the socket and the database and
// leaves every mount in place: containers keep running, and the next start re-attaches.
import type { EodConfig } from "../config/config.ts";
import { listenMetrics } from "../daemon/metrics-http.ts";
import type { Log } from "../util/log.ts";
import { DaemonImageMounts } from "./daemon-image-mounts.ts";
import { RegistryLayerContent } from "./layer-content.ts";
import { renderMetrics } from "./metrics.ts";
import { serveSnapshots, type RunningService } from "./service.ts";
import { Snapshotter } from "./snapshotter.ts";

export interface RunningSnapshotter {
  snapshotter: Snapshotter;
  /** Stops serving, closes the database; mounts stay. */
  stop(): Promise<void>;
}

/** `daemonArgs`: the flags a cache daemon started for an image mount gets (src/config forwardedFlags). */
export async function runSnapshotter(config: EodConfig, log: Log, daemonArgs: string[]): Promise<RunningSnapshotter> {
  const { root, address, metricsListen, mountOnPull, mountOnPullIdleMs } = config.snapshotter;
  const imageMounts = new DaemonImageMounts({ root, config, daemonArgs, log });
  // Lower layers of indexed images another image shares are unpacked with eod's registry settings, as the daemon's mounts.
  const layerContent = new RegistryLayerContent({ insecureRegistries: config.remote.insecureRegistries });
  const indexLocally = config.snapshotter.indexLocally ? (ref: string) => imageMounts.indexLocally(ref) : undefined;
  const snapshotter = await Snapshotter.open({ root, imageMounts, log, mountOnPullIdleMs: mountOnPull ? mountOnPullIdleMs : null, layerContent, indexLocally });
  let service: RunningService | undefined;
  try {
    service = await serveSnapshots(snapshotter, address, log);
    const { store } = snapshotter;
    const metrics = metricsListen === undefined ? null : await listenMetrics(metricsListen, () => renderMetrics({
      snapshots: store.countsByKind(), lazyLayers: store.lazyLayers(), imagesInUse: store.imagesInUse().length, imagesHeld: store.heldImages().length, imageMounts: imageMounts.counters, pullMounts: snapshotter.pullMounts, indexLookups: snapshotter.lookups.counters, layersUnpacked: snapshotter.layersUnpacked,
    }));
    void imageMounts.warmUp().catch((err: unknown) => { log("warn", "cannot get the running cache daemon ready for registry images", { err }); });
    log("info", "snapshotter serving", { address, root, metrics: metricsListen, mountOnPull, ...(mountOnPull ? { mountOnPullIdleMs } : {}), indexLocally: config.snapshotter.indexLocally });
    const serving = service;
    return {
      snapshotter,
      async stop() {
        metrics?.close();
        await serving.close();
        await snapshotter.close();
        await layerContent.close();
        log("info", "snapshotter stopped (mounts left in place)", { address });
      },
    };
  } catch (err) {
    await service?.close(); // e.g. the metrics port is taken: the socket is not left behind
    await snapshotter.close();
    await layerContent.close();
    throw err;
  }
}
