// The real content of one layer of an indexed image, for when another image needs that layer unpacked
// (snapshotter.ts, materializing a lower lazy layer): the layer blob fetched from the image's registry with
// eod's registry client (digest and size checked as it streams, a dropped connection resumed), decompressed,
// its diff_id checked against the image's config, and applied into a directory (apply-layer.ts). A layer whose
// diff_id does not match fails after the apply: the caller throws that directory away.
import { EodError } from "../errors.ts";
import { layerTarStream, type LayerStreamStats } from "../mkfs/layers/layer-stream.ts";
import { registryLayers } from "../mkfs/layers/registry-layers.ts";
import { parseReference, RegistryClient } from "../remote/registry/index.ts";
import { applyLayer } from "./apply-layer.ts";

export interface LayerContent {
  /** Applies layer `layerDigest` of the image `ref` (pinned `host/repo[:tag]@sha256:…`) into the empty `dir`. */
  unpack(ref: string, layerDigest: string, dir: string): Promise<void>;
  close(): Promise<void>;
}

export class RegistryLayerContent implements LayerContent {
  readonly #insecureRegistries: string[];
  #client: RegistryClient | null = null;

  constructor(opts: { insecureRegistries: string[] }) {
    this.#insecureRegistries = opts.insecureRegistries;
  }

  async unpack(ref: string, layerDigest: string, dir: string): Promise<void> {
    this.#client ??= new RegistryClient({ insecureRegistries: this.#insecureRegistries });
    const { img, where, layers } = await registryLayers(this.#client, parseReference(ref));
    const i = img.manifest.layers.findIndex((l) => l.digest === layerDigest);
    if (i < 0) throw new EodError("IMAGE_INVALID", `${where} has no layer ${layerDigest}`);
    const stats: LayerStreamStats = { compression: "none", storedBytes: 0, tarBytes: 0 };
    await applyLayer(layerTarStream(layers[i], {}, stats), dir);
  }

  async close(): Promise<void> {
    await this.#client?.close();
  }
}
