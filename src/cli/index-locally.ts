// --index-locally of eod mount and eod pull: the flag, its help, and what it prints.
import type { EodConfig } from "../config/config.ts";
import { isRegistrySource } from "../remote/registry/image-remote.ts";
import { layerBars } from "./progress.ts";

export const INDEX_LOCALLY_OPTION = { "index-locally": { type: "boolean" } } as const;

export const INDEX_LOCALLY_USAGE = `  --index-locally        an ordinary image (not converted) whose registry has no index of it (eod index
                         --push) is indexed on this node first: every layer is downloaded once in full,
                         the index kept in <cache-dir>/indexes/; later mounts of the image with this cache
                         directory are lazy (config mount.index_locally)`;

/**
 * With mount.index_locally, a registry source without an index anywhere gets one in the cache directory now.
 * Returns the index directory the daemon is to read the image through, if it is one built here.
 */
export async function indexLocallyIfAsked(source: string, config: EodConfig, insecureRegistries: string[], quiet: boolean): Promise<string | undefined> {
  if (!config.mount.indexLocally || !isRegistrySource(source)) return undefined;
  const { ensureLocalIndex } = await import("../mkfs/local-index.ts"); // the layer reader and indexers: only when asked
  const bars = layerBars(!quiet);
  try {
    const r = await ensureLocalIndex(source, config.cacheDir, {
      insecureRegistries: [...insecureRegistries, ...config.remote.insecureRegistries],
      onLayer: bars.layer,
      onIndexing: (w) => console.error(`eod: ${w.reference} has no index in its registry: indexing it on this node (downloads its ${w.layers} layer(s) once in full, ${w.bytes} bytes; lazy from then on for this image with cache ${config.cacheDir})`),
    });
    bars.stop();
    if (r.kind === "built") console.error(`eod: indexed in ${r.summary.seconds.toFixed(2)} s: ${r.summary.indexBytes} bytes of index in ${r.dir}`);
    return r.kind === "not-needed" ? undefined : r.dir;
  } finally {
    bars.stop();
  }
}
