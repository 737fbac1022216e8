// Prometheus metrics of the snapshotter (`eod snapshotter --metrics-listen`), in the text exposition format the
// cache daemon writes (src/daemon/metrics.ts). Gauges are read from the metadata database at scrape time (the
// snapshotter holds no state of its own); the counters of image mounts are the ImageMounts' own, since start.
import { Exposition } from "../daemon/metrics.ts";
import type { LookupCounters } from "./index-lookups.ts";
import type { PullMountCounters } from "./snapshotter.ts";

/** What the image mounts did since the snapshotter started (DaemonImageMounts.counters). */
export interface ImageMountCounters {
  /** acquire() calls (one per container snapshot of a lazy image, and per re-attach). */
  acquires: number;
  acquireFailures: number;
  /** release() calls (the last snapshot using an image went, or a re-attach found a mount nothing uses). */
  releases: number;
  releaseFailures: number;
  /** Image mounts found with no cache daemon serving them (replaced when unused, an error when in use). */
  unserved: number;
}

/** What a scrape reads. */
export interface SnapshotterMetricsInput {
  /** Snapshots by kind as the store names them (active, view, committed). */
  snapshots: Readonly<Record<string, number>>;
  /** Committed snapshots that are layers of a converted or indexed image (nothing was fetched for them). */
  lazyLayers: number;
  /** Images at least one active or view snapshot uses: the image mounts that must be there. */
  imagesInUse: number;
  /** Images mounted at their pull that no container took yet (snapshotter.mount_on_pull). */
  imagesHeld: number;
  imageMounts: ImageMountCounters;
  pullMounts: PullMountCounters;
  /** What the lookups of ordinary images answered (index-lookups.ts). */
  indexLookups?: LookupCounters;
  /** Lower lazy layers of indexed images unpacked because another image shares them. */
  layersUnpacked?: number;
}

/** The exposition text for the snapshotter's state now. */
export function renderMetrics(s: SnapshotterMetricsInput): string {
  const out = new Exposition();
  out.labelled("eod_snapshotter_snapshots", "gauge", "Snapshots in the snapshotter's database, by kind.",
    Object.entries(s.snapshots).sort(([a], [b]) => a.localeCompare(b)).map(([kind, n]): [Record<string, string>, number] => [{ kind }, n]));
  out.gauge("eod_snapshotter_lazy_layers", "Committed snapshots that are layers of an image converted by eod or of an indexed image (never downloaded).", s.lazyLayers);
  out.gauge("eod_snapshotter_image_mounts_in_use", "Lazy image mounts some container snapshot uses.", s.imagesInUse);
  out.gauge("eod_snapshotter_image_mounts_held", "Lazy image mounts made at a pull that no container took yet (snapshotter.mount_on_pull).", s.imagesHeld);
  out.counter("eod_snapshotter_pull_mounts_total", "Images mounted at their pull (snapshotter.mount_on_pull).", s.pullMounts.mounts);
  out.counter("eod_snapshotter_pull_mounts_expired_total", "Images mounted at their pull and unmounted because no container took them in time.", s.pullMounts.expired);
  out.counter("eod_snapshotter_image_acquires_total", "Requests for an image's lazy mount (mounted through the cache daemon, or shared).", s.imageMounts.acquires);
  out.counter("eod_snapshotter_image_releases_total", "Releases of an image's mount (its last snapshot went, or nothing used it at a re-attach).", s.imageMounts.releases);
  if (s.indexLookups) {
    out.labelled("eod_snapshotter_index_lookups_total", "counter", "Ordinary images asked about at their pull, by answer: indexed (mounted lazily through their eod index), ordinary (unpacked), failed (no answer in time, or an error: unpacked).",
      (["indexed", "ordinary", "failed"] as const).map((answer): [Record<string, string>, number] => [{ answer }, s.indexLookups![answer]]));
    out.counter("eod_snapshotter_indexes_built_total", "Ordinary images indexed on this node at their pull (snapshotter.index_locally).", s.indexLookups.builtLocally);
  }
  if (s.layersUnpacked !== undefined) {
    out.counter("eod_snapshotter_layers_unpacked_total", "Lower layers of indexed images the snapshotter unpacked because another image shares them.", s.layersUnpacked);
  }
  out.labelled("eod_snapshotter_errors_total", "counter", "Failures by kind: acquire (an image could not be mounted or was not the one its layers name), mount_on_pull (so at a pull; the pull went on), release (an image mount could not be removed), unserved (an image mount no cache daemon serves).", [
    [{ kind: "acquire" }, s.imageMounts.acquireFailures],
    [{ kind: "mount_on_pull" }, s.pullMounts.failures],
    [{ kind: "release" }, s.imageMounts.releaseFailures],
    [{ kind: "unserved" }, s.imageMounts.unserved],
  ]);
  return out.text();
}
