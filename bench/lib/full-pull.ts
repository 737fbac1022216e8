// The reference of a lazy start of an ordinary image: what containerd's overlayfs path does before a container
// runs. Resolve the manifest and fetch the config, download every layer (all at once, digest-checked, into
// files, as the content store does), then apply them in order: gunzip + untar each into one directory
// (GNU tar with gzip; containerd uses its own Go code, or unpigz when installed, which this machine lacks).
import fs from "node:fs";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { describe, run } from "./run.ts";
import { RegistryClient, staticCredentials } from "../../src/remote/registry/index.ts";

export interface FullPull {
  /** Manifest, config and layers downloaded (seconds from the start). */
  downloadS: number;
  /** Layers gunzipped and untarred, after the download. */
  extractS: number;
  /** Layer bytes received (the stored, compressed form). */
  layerBytes: number;
  layers: number;
}

/** Pulls `ref` (host/repo:tag) into `dir`/layers and extracts its layers into `dir`/rootfs. */
export async function pullAndExtract(ref: string, dir: string): Promise<FullPull> {
  const t0 = performance.now();
  const layersDir = path.join(dir, "layers");
  const rootfs = path.join(dir, "rootfs");
  fs.mkdirSync(layersDir, { recursive: true });
  fs.mkdirSync(rootfs, { recursive: true });
  const client = new RegistryClient({ credentials: staticCredentials({}) });
  let files: string[];
  try {
    const img = await client.resolve(ref);
    await client.fetchBlob(img.ref, img.manifest.config);
    files = await Promise.all(img.manifest.layers.map(async (layer, i) => {
      const file = path.join(layersDir, `${i}.tar.gz`);
      await pipeline(client.blobStream(img.ref, layer), fs.createWriteStream(file)); // verified when the stream ends
      return file;
    }));
  } finally {
    await client.close();
  }
  const t1 = performance.now();
  for (const file of files) {
    // A root-owned rootfs as the snapshotter makes it: owners, modes and xattrs kept.
    const r = await run("tar", ["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpzf", file, "-C", rootfs], { timeoutMs: 600_000 });
    if (r.code !== 0) throw new Error(`tar -xpzf ${file}: ${describe(r)}\n${r.stderr.trim().slice(-2000)}`);
  }
  const t2 = performance.now();
  const layerBytes = files.reduce((n, f) => n + fs.statSync(f).size, 0);
  return { downloadS: (t1 - t0) / 1000, extractS: (t2 - t1) / 1000, layerBytes, layers: files.length };
}
