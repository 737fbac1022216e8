// renderMetrics(): the snapshotter's /metrics text, one family per line group, samples as given.
import { test } from "node:test";
import assert from "node:assert/strict";
import { renderMetrics } from "../../src/snapshotter/metrics.ts";

test("renderMetrics() writes snapshots by kind, lazy layers, image mounts and their counters", () => {
  const text = renderMetrics({
    snapshots: { committed: 5, active: 2, view: 1 }, lazyLayers: 3, imagesInUse: 1, imagesHeld: 2,
    imageMounts: { acquires: 4, acquireFailures: 1, releases: 2, releaseFailures: 0, unserved: 3 },
    pullMounts: { mounts: 6, failures: 7, expired: 8 },
  });
  assert.ok(text.endsWith("\n"));
  const samples = text.split("\n").filter((l) => l && !l.startsWith("#"));
  assert.deepEqual(samples, [
    'eod_snapshotter_snapshots{kind="active"} 2',
    'eod_snapshotter_snapshots{kind="committed"} 5',
    'eod_snapshotter_snapshots{kind="view"} 1',
    "eod_snapshotter_lazy_layers 3",
    "eod_snapshotter_image_mounts_in_use 1",
    "eod_snapshotter_image_mounts_held 2",
    "eod_snapshotter_pull_mounts_total 6",
    "eod_snapshotter_pull_mounts_expired_total 8",
    "eod_snapshotter_image_acquires_total 4",
    "eod_snapshotter_image_releases_total 2",
    'eod_snapshotter_errors_total{kind="acquire"} 1',
    'eod_snapshotter_errors_total{kind="mount_on_pull"} 7',
    'eod_snapshotter_errors_total{kind="release"} 0',
    'eod_snapshotter_errors_total{kind="unserved"} 3',
  ]);
  assert.match(text, /^# TYPE eod_snapshotter_image_acquires_total counter$/m);
  assert.match(text, /^# TYPE eod_snapshotter_snapshots gauge$/m);
});
