// The "before the hot blob" image of bench:containerd: an `eod convert` output without a list, with a
// prefetch list added to its manifest.json and pushed again in the OCI form. The mount prefetches the listed
// files, but their data stays where the layer put it (what convertImage with `prefetch` made before the hot
// blob), so a run of both images shows what the hot blob changes.
import fs from "node:fs";
import path from "node:path";
import { MANIFEST_NAME, parseManifest } from "../../src/image/manifest.ts";
import { ANNOTATIONS, OCI_CONFIG_TYPE, OCI_MANIFEST_TYPE, ociConfigOf, ociLayersOf, ociManifestOf } from "../../src/image/oci-form.ts";
import type { PrefetchEntry } from "../../src/image/prefetch.ts";
import { fileSource, parseReference, RegistryClient, sha256Digest, staticCredentials } from "../../src/remote/registry/index.ts";

/** Pushes `imageDir` with `prefetch` in its manifest.json as `dstRef`, with the config of `sourceRef`; the manifest digest. */
export async function pushWithListOnly(imageDir: string, prefetch: PrefetchEntry[], sourceRef: string, dstRef: string): Promise<string> {
  const client = new RegistryClient({ credentials: staticCredentials({}) });
  try {
    const m = { ...parseManifest(fs.readFileSync(path.join(imageDir, MANIFEST_NAME), "utf8"), imageDir), prefetch };
    const bytes = Buffer.from(`${JSON.stringify(m, null, 2)}\n`);
    const layers = ociLayersOf({ digest: sha256Digest(bytes), size: bytes.length }, m);
    const src = await client.resolve(sourceRef);
    const config = JSON.parse(Buffer.from(await client.fetchBlob(src.ref, src.manifest.config)).toString("utf8"));
    const ociConfig = ociConfigOf(config, layers, sourceRef);
    const dst = parseReference(dstRef);
    for (const l of layers) {
      const title = l.annotations![ANNOTATIONS.title];
      await client.pushBlob(dst, title === MANIFEST_NAME ? bytes : await fileSource(path.join(imageDir, title)), { digest: l.digest, mediaType: l.mediaType });
    }
    const oci = ociManifestOf(layers, ociConfig, {});
    await client.pushBlob(dst, ociConfig, { digest: oci.config.digest, mediaType: OCI_CONFIG_TYPE });
    return (await client.pushManifest(dst, dst.tag ?? "latest", Buffer.from(JSON.stringify(oci)), OCI_MANIFEST_TYPE)).digest;
  } finally {
    await client.close();
  }
}
