// The "full" side of a cold-start comparison: download the whole image before anything runs, as fast as the
// server allows (the manifest, then every other file at once, one request each).
import fs from "node:fs";
import path from "node:path";
import { decompressBootstrap } from "../../src/image/codec.ts";
import type { Manifest } from "../../src/image/manifest.ts";
import { dirBytes } from "./dir-bytes.ts";
import { httpRequest } from "./serve.ts";

/** Downloads the image at `base` (a URL ending in /) into `dest`; returns seconds, bytes received, requests. */
export async function downloadImage(base: string, dest: string): Promise<{ seconds: number; bytes: number; files: number }> {
  const t0 = process.hrtime.bigint();
  fs.mkdirSync(path.join(dest, "blobs"), { recursive: true });
  const m = await httpRequest("GET", new URL("manifest.json", base).href);
  if (m.status !== 200) throw new Error(`GET manifest.json: HTTP ${m.status}`);
  fs.writeFileSync(path.join(dest, "manifest.json"), m.body);
  const manifest = JSON.parse(m.body.toString("utf8")) as Manifest;
  // The bootstrap's wire form when the image has one (as a lazy mount fetches it), decompressed after.
  const rels = [manifest.bootstrapZstd?.path ?? manifest.bootstrap.path, ...manifest.blobs.flatMap((b) => [b.table.path, b.remote.path])];
  await Promise.all(rels.map(async (rel) => {
    const r = await httpRequest("GET", new URL(rel, base).href, path.join(dest, rel));
    if (r.status !== 200) throw new Error(`GET ${rel}: HTTP ${r.status}`);
  }));
  const bytes = dirBytes(dest);
  if (manifest.bootstrapZstd) {
    const wire = fs.readFileSync(path.join(dest, manifest.bootstrapZstd.path));
    fs.writeFileSync(path.join(dest, manifest.bootstrap.path), decompressBootstrap(wire, manifest.bootstrap.size, "the bootstrap"));
  }
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, bytes, files: rels.length + 1 };
}
