// What `eod status` shows of a snapshotter: its snapshots by kind and, per converted image in use, its mount and
// the snapshots (containers) over it. Read from the metadata database opened read-only while the snapshotter
// runs, and from the kernel's mount table; the snapshotter itself is not asked (it may be down).
import { daemonServing } from "../daemon/locate.ts";
import { mountAt, mounts } from "../daemon/mountinfo.ts";
import { imageMountPoint } from "./image-mounts.ts";
import { SnapshotStore, type Kind } from "./store.ts";

/** A snapshot over an image mount. containerd names it `<namespace>/<n>/<key>`, the key being the container id. */
export interface SnapshotUser {
  key: string;
  namespace?: string;
  container?: string;
}

export interface ImageMountStatus {
  manifest: string;
  ref: string;
  /** An ordinary image mounted through its eod index (`manifest` is then its registry manifest digest). */
  indexed?: boolean;
  mountPoint: string;
  /** Whether the kernel has the mount (false: it vanished; the snapshotter remounts it when it starts). */
  mounted: boolean;
  /** Whether a cache daemon serves the mount (checkServed); false: its reads are answered by nobody. */
  served?: boolean;
  snapshots: SnapshotUser[];
  /** Mounted at its pull (snapshotter.mount_on_pull) and taken by no container yet: unmounted at this time (ISO). */
  heldUntil?: string;
}

export interface SnapshotterStatus {
  root: string;
  snapshots: Record<Kind, number>;
  lazyLayers: number;
  images: ImageMountStatus[];
}

/** The snapshotter's state under `root`, or null when it has no database there. */
export function snapshotterStatus(root: string): SnapshotterStatus | null {
  const store = SnapshotStore.openReadOnly(root);
  if (store === null) return null;
  try {
    const table = mounts();
    const mountOf = (manifest: string) => {
      const mountPoint = imageMountPoint(root, manifest);
      return { mountPoint, mounted: mountAt(mountPoint, table) !== undefined };
    };
    const images = store.imagesInUse().map(({ image, keys }): ImageMountStatus => ({ ...image, ...mountOf(image.manifest), snapshots: keys.map(snapshotUser) }));
    for (const h of store.heldImages()) {
      if (images.some((i) => i.manifest === h.manifest)) continue;
      images.push({ manifest: h.manifest, ref: h.ref, ...(h.indexed ? { indexed: true } : {}), ...mountOf(h.manifest), snapshots: [], heldUntil: new Date(h.heldUntil!).toISOString() });
    }
    return { root, snapshots: store.countsByKind(), lazyLayers: store.lazyLayers(), images };
  } finally {
    store.close();
  }
}

/**
 * Fills in `served` of each mounted image: a cache daemon lists the mount in its /status. A mount none serves
 * (its daemon and holder died) is one whose containers would read zeros where nothing is cached.
 */
export async function checkServed(s: SnapshotterStatus): Promise<void> {
  for (const i of s.images) if (i.mounted) i.served = (await daemonServing(i.mountPoint)) !== null;
}

/** containerd's backend key `<namespace>/<n>/<key>` (metadata/snapshot.go createKey) taken apart; any other key as is. */
export function snapshotUser(key: string): SnapshotUser {
  const m = /^([^/]+)\/(\d+)\/(.+)$/.exec(key);
  return m ? { key, namespace: m[1], container: m[3] } : { key };
}

/** The lines `eod status` prints. */
export function describeSnapshotter(s: SnapshotterStatus): string[] {
  const kinds = Object.entries(s.snapshots).map(([kind, n]) => `${n} ${kind}`).join(", ");
  const held = s.images.filter((i) => i.heldUntil !== undefined).length;
  const lines = [`snapshotter ${s.root}: snapshots ${kinds}; ${s.lazyLayers} lazy layer(s); ${s.images.length - held} image mount(s) in use${held ? `, ${held} held by a pull` : ""}`];
  for (const i of s.images) {
    const users = i.snapshots.map((u) => (u.container === undefined ? `snapshot ${u.key}` : `container ${u.container} (${u.namespace})`)).join(", ");
    const by = i.heldUntil !== undefined ? `held by its pull for a container until ${i.heldUntil}` : `used by ${users}`;
    lines.push(`image ${i.ref} (${i.manifest.slice(0, 19)}${i.indexed ? ", indexed" : ""}) on ${i.mountPoint}${!i.mounted ? " (NOT MOUNTED)" : i.served === false ? " (NOT SERVED: no cache daemon answers its reads)" : ""}, ${by}`);
  }
  return lines;
}
