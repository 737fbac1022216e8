// The layers of an ordinary image in a registry as LayerInputs, for `eod convert` and `eod index`: the reference
// resolved (tag → index → platform manifest), the config fetched (verified) for its diff_ids, and each layer a
// stream of the registry client's blobStream() (its digest and size checked as it passes, a dropped connection
// resumed with Range), its diff_id checked by the layer reader. Nothing is downloaded here but the config.
import { EodError } from "../../errors.ts";
import { isOurLayerType } from "../../image/oci-form.ts";
import { formatReference, type Reference, type RegistryClient, type ResolvedImage } from "../../remote/registry/index.ts";
import type { LayerInput } from "./layer-stream.ts";
import { diffIdsOf, parseJson } from "./sources.ts";

export interface RegistryLayers {
  img: ResolvedImage & { ref: Reference };
  /** Names the image in messages: `host/repo:tag (manifest sha256:…)`. */
  where: string;
  config: unknown;
  configWhere: string;
  diffIds: string[];
  layers: LayerInput[];
}

/** Layer media types we read: tar, optionally gzip or zstd (OCI, Docker incl. buildkit's diff.tar.zstd, non-distributable variants). */
const TAR_LAYER = /^application\/vnd\.(?:oci\.image\.layer\.(?:nondistributable\.)?v1\.tar(?:\+gzip|\+zstd)?|docker\.image\.rootfs\.(?:foreign\.)?diff\.tar(?:\.gzip|\.zstd)?)$/;

/**
 * @param onLayer bytes of layer `index` read from the registry so far, of `total`
 * @throws EodError SOURCE_UNSUPPORTED for an image of ours or a layer that is not a tar
 */
export async function registryLayers(client: RegistryClient, src: Reference, opts: {
  platform?: string;
  onLayer?: (index: number, name: string, done: number, total: number) => void;
} = {}): Promise<RegistryLayers> {
  const img = await client.resolve(src, { platform: opts.platform });
  const where = `${formatReference(src)} (manifest ${img.digest})`;
  if (img.manifest.layers.some((l) => isOurLayerType(l.mediaType))) {
    throw new EodError("SOURCE_UNSUPPORTED", `${where} is an erofs-ondemand image already; mount it with eod mount`);
  }
  img.manifest.layers.forEach((l, i) => {
    if (!TAR_LAYER.test(l.mediaType)) throw new EodError("SOURCE_UNSUPPORTED", `${where}: layer ${i + 1} has media type ${l.mediaType}, not a tar layer (tar, tar+gzip, tar+zstd)`);
  });
  const configBytes = await client.fetchBlob(src, img.manifest.config, { maxBytes: 4 << 20 }); // verified
  const configWhere = `${where}: config ${img.manifest.config.digest}`;
  const config = parseJson(Buffer.from(configBytes).toString("utf8"), configWhere);
  const diffIds = diffIdsOf(config, img.manifest.layers.length, configWhere);
  const layers: LayerInput[] = img.manifest.layers.map((d, i) => {
    const name = `layer ${i + 1} (${d.digest.slice(0, 19)}…)`;
    // No `digest` here: blobStream() verifies the blob's digest and size itself (throwing from the stream's
    // end, which the build reads to) and hashing the compressed bytes twice would cost the main thread.
    return { name, size: d.size, diffId: diffIds[i], open: () => counted(client.blobStream(src, d), (n) => opts.onLayer?.(i, name, n, d.size)) };
  });
  return { img, where, config, configWhere, diffIds, layers };
}

/** The stream, with a running count of its bytes reported as it passes. */
async function* counted(stream: AsyncIterable<Uint8Array>, report: (n: number) => void): AsyncGenerator<Uint8Array> {
  let n = 0;
  for await (const piece of stream) {
    n += piece.length;
    report(n);
    yield piece;
  }
}
