// `eod index <source>`: the seek index of an ordinary image (issue 14), made by reading each layer once. The
// source is a registry reference (resolved to one platform's manifest; each layer streamed through the registry
// client, its digest and diff_id checked as it passes) or a local OCI layout / `docker save` archive. The
// layers go to buildIndexImage (index-image.ts), which writes an image directory whose blobs' remote forms
// are the original layers; with `push` it is then pushed as the referrer artifact of the registry image.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { EodError } from "../errors.ts";
import type { PrefetchEntry } from "../image/prefetch.ts";
import { formatPlatform, formatReference, parseReference, RegistryClient, type Reference } from "../remote/registry/index.ts";
import { pushIndexArtifact } from "../remote/registry/push-index.ts";
import { buildIndexImage, type IndexImageSummary } from "./index-image.ts";
import { resolveInputs } from "./layers/inputs.ts";
import type { LayerInput } from "./layers/layer-stream.ts";
import { registryLayers } from "./layers/registry-layers.ts";

export interface MakeIndexOptions {
  /** os/arch[/variant] when the source names an index (default the host's). */
  platform?: string;
  insecureRegistries?: string[];
  /** Where the index image directory goes; default a temporary directory, removed after the push. */
  output?: string;
  /** Push the index as the referrer artifact of the registry image (a registry source only). */
  push?: boolean;
  /** Plain bytes per span (a multiple of 4096; default the builder's, ~1 MiB). */
  spanSize?: number;
  /** Files a mount fetches first (manifest `prefetch`; eod index --prefetch, --prefetch-from). */
  prefetch?: PrefetchEntry[];
  /** Bytes of layer `index` read so far, of `total`. */
  onLayer?: (index: number, name: string, done: number, total: number) => void;
  /** A client to use (tests, or a caller that has one); else one is made and closed. */
  client?: RegistryClient;
}

export interface MakeIndexSummary {
  source: { reference: string; digest?: string; platform?: string; layers: number };
  /** The index image directory, or null when it was a temporary one (pushed, then removed). */
  dir: string | null;
  build: IndexImageSummary;
  /** Bytes of the index (manifest, bootstrap, seek indexes) and of the image's layers as stored. */
  indexBytes: number;
  imageBytes: number;
  /** The pushed artifact, with --push. */
  artifact?: { reference: string; digest: string };
  seconds: number;
}

/** Whether `source` is a local path (an OCI layout or a docker save archive) rather than a registry reference. */
export function isLocalSource(source: string): boolean {
  return fs.existsSync(source);
}

export async function makeIndex(source: string, opts: MakeIndexOptions = {}): Promise<MakeIndexSummary> {
  const started = performance.now();
  if (opts.push && isLocalSource(source)) {
    throw new EodError("USAGE", `--push needs the image's registry reference (the index refers to the manifest there): ${source} is a local path; push the image as it is, then run eod index <reference> --push`);
  }
  if (!opts.push && opts.output === undefined) throw new EodError("USAGE", "Say where the index goes: -o <dir>, --push, or both");
  const output = opts.output !== undefined ? path.resolve(opts.output) : null;
  if (output && fs.existsSync(output)) throw new EodError("USAGE", `${output} exists already; give a new directory`);
  const work = output ? null : fs.mkdtempSync(path.join(os.tmpdir(), ".eod-index-"));
  const dir = output ?? path.join(work!, "index");
  const client = isLocalSource(source) ? null : opts.client ?? new RegistryClient({ insecureRegistries: opts.insecureRegistries ?? [] });
  try {
    let layers: LayerInput[];
    let src: MakeIndexSummary["source"];
    let pinned: Reference | null = null;
    if (client) {
      const ref = parseReference(source);
      const r = await registryLayers(client, ref, opts);
      pinned = { ...ref, digest: r.img.digest };
      layers = r.layers;
      src = { reference: formatReference(ref), digest: r.img.digest, ...(r.img.platform ? { platform: formatPlatform(r.img.platform) } : {}), layers: layers.length };
    } else {
      const input = resolveInputs([source], [], { platform: opts.platform });
      if (input.kind !== "layers" || input.from === "tarballs") {
        throw new EodError("SOURCE_UNSUPPORTED", `${source} is not an image: give a registry reference, an OCI layout directory or a docker save archive`);
      }
      layers = input.layers.map((l, i) => withProgress(l, (n) => opts.onLayer?.(i, l.name, n, l.size ?? 0)));
      src = { reference: path.resolve(source), layers: layers.length };
    }
    if (layers.length === 0) throw new EodError("SOURCE_UNSUPPORTED", `${src.reference} has no layers: nothing to index`);
    await fs.promises.mkdir(path.dirname(dir), { recursive: true });
    const build = await buildIndexImage(layers, dir, { spanSize: opts.spanSize, prefetch: opts.prefetch });
    const indexBytes = dirBytes(dir);
    const imageBytes = build.layers.reduce((n, l) => n + l.storedBytes, 0);
    const artifact = opts.push && client && pinned ? await pushIndexArtifact(client, pinned, dir) : undefined;
    return {
      source: src, dir: output, build, indexBytes, imageBytes,
      ...(artifact ? { artifact: { reference: formatReference({ ...pinned!, tag: undefined, digest: artifact.digest }), digest: artifact.digest } } : {}),
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    if (work) fs.rmSync(work, { recursive: true, force: true });
    if (client && !opts.client) await client.close();
  }
}

/** Bytes of the regular files under `dir` (the index image is flat but for blobs/). */
function dirBytes(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) n += fs.statSync(path.join(e.parentPath, e.name)).size;
  }
  return n;
}

/** A local layer whose stored bytes are counted as they are read (progress like a registry layer's). */
function withProgress(l: LayerInput, report: (n: number) => void): LayerInput {
  return {
    ...l,
    open: async () => (async function* () {
      let n = 0;
      for await (const piece of await l.open()) {
        n += (piece as Uint8Array).length;
        report(n);
        yield piece as Uint8Array;
      }
    })(),
  };
}
