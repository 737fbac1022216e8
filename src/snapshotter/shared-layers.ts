// The lower lazy layers of indexed images when another image shares them. An indexed image's mount is its whole
// tree, so only its top lazy layer stands for a chain's content; the layers under it have none of their own.
// containerd reuses such a layer (by chain ID, in its namespace) for another image whose layers start the same
// way and then differ; that image's snapshots need the layer's real content. With a LayerContent each such layer
// is unpacked into `<root>/snapshots/<id>/fs` (fetched from the registry, applied as containerd's applier does)
// and becomes an ordinary committed layer in one transaction with its rename; without one, the snapshot is refused.
import fs from "node:fs";
import path from "node:path";
import type { Log } from "../util/log.ts";
import { diskUsage } from "./disk-usage.ts";
import { SnapshotError } from "./errors.ts";
import type { ImageLocks } from "./image-locks.ts";
import { CRI_LAYER_DIGEST } from "./labels.ts";
import type { LayerContent } from "./layer-content.ts";
import type { SnapshotRow, SnapshotStore } from "./store.ts";

export interface SharedLayersOptions {
  store: SnapshotStore;
  /** `<root>/snapshots`: where an unpacked layer's directory goes (`<id>`), made under `new-*` first. */
  snapshotsDir: string;
  locks: ImageLocks;
  layerContent?: LayerContent;
  log: Log;
}

export class SharedLayers {
  /** Layers unpacked since the start (metrics). */
  unpacked = 0;
  readonly #o: SharedLayersOptions;

  constructor(opts: SharedLayersOptions) {
    this.#o = opts;
  }

  /** A lower lazy layer of an indexed image: no content of its own. */
  isPlaceholder(row: SnapshotRow): boolean {
    if (row.layerOf === null) return false;
    const image = this.#o.store.image(row.layerOf);
    return image?.indexed === true && image.top !== row.name;
  }

  /**
   * Unpacks the placeholders `parent`'s chain reaches first (below its ordinary layers, down to the first real
   * layer or lazy layer that stands for its whole image), nearest first; nothing without a LayerContent (the
   * snapshotter's check refuses such a chain then).
   */
  async unpackUnder(parent: string): Promise<void> {
    const { store, layerContent } = this.#o;
    const row = parent === "" || layerContent === undefined ? undefined : store.get(parent);
    if (row === undefined || layerContent === undefined) return;
    const placeholders: SnapshotRow[] = [];
    for (const r of [row, ...store.parents(row)]) {
      if (r.layerOf === null && placeholders.length === 0) continue; // ordinary layers above the first lazy one
      if (r.layerOf === null || !this.isPlaceholder(r)) break;
      placeholders.push(r);
    }
    for (const p of placeholders) await this.#o.locks.run(`layer ${p.id}`, () => this.#unpack(p.id, layerContent));
  }

  /** The refusal of a snapshot whose nearest lazy layer is a placeholder (no LayerContent, or it failed). */
  refusal(key: string, lazy: SnapshotRow): SnapshotError {
    const image = this.#o.store.image(lazy.layerOf!)!;
    return new SnapshotError("FAILED_PRECONDITION", `Cannot make snapshot ${JSON.stringify(key)}: its parent layer ${lazy.name} was recorded lazily as a lower layer of the indexed image ${image.ref}, whose lazy mount is that image's whole tree, not this layer's; another image shares that image's lower layers (the same chain ID). Remove the indexed image (and let containerd collect its snapshots), then pull this one again; see docs/containerd.md, "Indexed images"`);
  }

  async #unpack(id: number, layerContent: LayerContent): Promise<void> {
    const { store, snapshotsDir } = this.#o;
    const row = store.byId(id);
    if (row === undefined || !this.isPlaceholder(row)) return; // unpacked (or removed) meanwhile
    const image = store.image(row.layerOf!)!;
    const digest = row.labels[CRI_LAYER_DIGEST];
    if (!digest) throw new SnapshotError("FAILED_PRECONDITION", `Cannot unpack layer ${row.name} of the indexed image ${image.ref}: it was recorded without its ${CRI_LAYER_DIGEST} label`);
    const started = performance.now();
    const tmp = fs.mkdtempSync(path.join(snapshotsDir, "new-")); // no row names it: Cleanup sweeps it after a crash
    try {
      fs.mkdirSync(path.join(tmp, "fs"), { mode: 0o755 });
      await layerContent.unpack(image.ref, digest, path.join(tmp, "fs"));
      const usage = await diskUsage(path.join(tmp, "fs"));
      store.transaction(() => {
        if (store.byId(id)?.layerOf !== image.manifest) throw new SnapshotError("FAILED_PRECONDITION", `Layer ${row.name} changed while it was being unpacked`);
        store.materialize(id, usage);
        const dir = path.join(snapshotsDir, String(id));
        fs.rmSync(dir, { recursive: true, force: true }); // a crash's leftover
        fs.renameSync(tmp, dir);
      });
    } catch (err) {
      fs.rmSync(tmp, { recursive: true, force: true });
      if (err instanceof SnapshotError) throw err;
      throw new SnapshotError("FAILED_PRECONDITION", `Cannot unpack layer ${row.name} (${digest}) of the indexed image ${image.ref}, which another image shares: ${(err as Error).message}`, { cause: err });
    }
    this.unpacked++;
    this.#o.log("info", "a lower layer of an indexed image unpacked: another image shares it", { name: row.name, image: image.ref, layer: digest, ms: Math.round(performance.now() - started) });
  }
}
