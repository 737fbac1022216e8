// The size of what `eod index <ref> --push` added to a repository, read back from the registry: the image's
// referrers through the tag-schema fallback (tag `sha256-<hex>` of the image manifest, an index of referrer
// manifests; the distribution registry the benches run has no referrers API), and of each referrer the
// manifest, its config and the layers that are not the image's own (those are listed, not uploaded).
import { RegistryClient, staticCredentials, type ImageIndex, type ImageManifest } from "../../src/remote/registry/index.ts";

export interface IndexArtifact {
  /** The image manifest the index refers to, and the bytes of the image as pulled (manifest, config, layers). */
  image: { digest: string; bytes: number; layerBytes: number };
  /** Referrer manifests found (one per `eod index --push`). */
  referrers: number;
  /** Bytes the index added: referrer manifests, their configs, and their files that are not image layers. */
  bytes: number;
  /** The index's own files by title (annotation org.opencontainers.image.title), bytes each. */
  files: Record<string, number>;
}

const TITLE = "org.opencontainers.image.title";

/** What the index of `ref` (host/repo:tag) costs in the registry; throws if the image has no referrer. */
export async function indexArtifact(ref: string): Promise<IndexArtifact> {
  const client = new RegistryClient({ credentials: staticCredentials({}) });
  try {
    const img = await client.resolve(ref);
    const own = new Set(img.manifest.layers.map((l) => l.digest));
    const layerBytes = img.manifest.layers.reduce((n, l) => n + l.size, 0);
    const image = { digest: img.digest, bytes: img.size + img.manifest.config.size + layerBytes, layerBytes };
    const tag = img.digest.replace(":", "-");
    const list = await client.getManifest(img.ref, tag);
    const entries = (list.manifest as ImageIndex).manifests ?? [];
    if (entries.length === 0) throw new Error(`${ref}: no referrers under tag ${tag}`);
    let bytes = 0;
    const files: Record<string, number> = {};
    for (const e of entries) {
      const m = (await client.getManifest(img.ref, e.digest)).manifest as ImageManifest;
      bytes += e.size + m.config.size;
      for (const l of m.layers) {
        if (own.has(l.digest)) continue;
        bytes += l.size;
        const title = l.annotations?.[TITLE] ?? l.digest;
        files[title] = (files[title] ?? 0) + l.size;
      }
    }
    return { image, referrers: entries.length, bytes, files };
  } finally {
    await client.close();
  }
}
