// eod build <dir> -o <image-dir> | --single <file.erofs>; eod build <layers...> -o <image-dir>
import { buildImage, type ImageSummary } from "../mkfs/image.ts";
import { buildFromLayers, type LayersSummary } from "../mkfs/layers/build-layers.ts";
import { resolveInputs } from "../mkfs/layers/inputs.ts";
import { buildSingle } from "../mkfs/single.ts";
import { EodError } from "../errors.ts";
import { parsePlatform } from "../remote/registry/manifest.ts";
import { parse, print } from "./args.ts";
import { IMAGE_OPTIONS, parseImageOptions } from "./image-options.ts";
import { PREFETCH_OPTIONS, PREFETCH_USAGE, readPrefetch } from "./prefetch-flags.ts";
import { progressBar } from "./progress.ts";

export const BUILD_USAGE = `Usage: eod build <dir> -o <image-dir> [options]
       eod build <dir> --single <file.erofs> [options]
       eod build <oci-layout-dir | docker-save.tar> [--image <name>] -o <image-dir> [options]
       eod build <layer.tar[.gz|.zst]>... -o <image-dir> [options]   (or --layer <file> ..., lowest first)

Builds a lazy-loading image (bootstrap + data blobs + manifest) or, with --single, one self-contained EROFS
image (like mkfs.erofs <file> <dir>). From layers (recognised by content), the layers are merged with overlay
semantics (whiteouts, opaque directories) and each layer that adds data becomes one blob.

Options:
  -o, --output <dir>     image directory to create (replaced if it is an earlier image)
  --single <file>        write one EROFS image instead
  --chunk-size <size>    chunk size, a power of two >= 4K (default 128K; --single: 1M)
  --compress <algo>      remote form compression: zstd (default), lz4, none
  --level <n>            compression level (zstd 1..19, lz4 HC 1..12)
  --inline-max <size>    files up to this size live in the bootstrap (default 1K; 0 = none)
  --layer <file>         a layer tarball (tar, tar.gz, tar.zst); repeat, lowest layer first
  --image <name>         the image to build from an OCI layout or docker save archive holding several: its
                         ref name (org.opencontainers.image.ref.name) or tag (repo:tag)
  --platform <os/arch[/variant]>  from an OCI layout's image index: this platform (default the host's)
  --max-ratio <n>        refuse a layer that decompresses to more than n times its size (default 1000; 0 = off)
${PREFETCH_USAGE}
  --json                 print a machine-readable summary`;

export async function buildCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    output: { type: "string", short: "o" }, single: { type: "string" }, ...IMAGE_OPTIONS, json: { type: "boolean" },
    layer: { type: "string", multiple: true }, image: { type: "string" }, platform: { type: "string" },
    ...PREFETCH_OPTIONS,
    help: { type: "boolean", short: "h" },
  }, BUILD_USAGE);
  if (values.help) { console.log(BUILD_USAGE); return 0; }
  if (!values.output === !values.single) throw new EodError("USAGE", `Give exactly one of -o or --single\n\n${BUILD_USAGE}`);
  if (values.platform !== undefined) parsePlatform(values.platform);
  const input = resolveInputs(positionals, values.layer ?? [], { image: values.image, platform: values.platform });
  const from = input.kind === "layers" ? input.from : "dir";
  if (values.image !== undefined && from !== "oci-layout" && from !== "docker-archive") throw new EodError("USAGE", "--image chooses an image of an OCI layout or a docker save archive");
  if (values.platform !== undefined && from !== "oci-layout") throw new EodError("USAGE", "--platform chooses an image of an OCI layout's index");
  if (input.kind === "layers" && values.single) throw new EodError("USAGE", "--single builds from a directory only; use -o for layers");
  if (input.kind === "dir" && positionals.length !== 1) throw new EodError("USAGE", `Give one source directory\n\n${BUILD_USAGE}`);
  const { maxRatio, ...image } = parseImageOptions(values);
  const json = values.json ?? false;
  const bar = progressBar(!json);
  const started = performance.now();
  try {
    if (values.single) {
      const r = await buildSingle(input.kind === "dir" ? input.dir : "", values.single, { chunkSize: image.chunkSize, progress: bar.update });
      bar.stop();
      const seconds = (performance.now() - started) / 1000;
      for (const w of r.warnings) console.error(`warning: ${w}`);
      print(json, { ...r, seconds }, () => `${r.image}: ${r.inodes} inodes, ${r.size} bytes (${seconds.toFixed(2)} s)`);
      return 0;
    }
    const opts = { ...image, prefetch: readPrefetch(values.prefetch, values["prefetch-from"]), progress: bar.update };
    const r: ImageSummary & Partial<LayersSummary> = input.kind === "dir"
      ? await buildImage(input.dir, values.output!, opts)
      : await buildFromLayers(input.layers, values.output!, { ...opts, maxRatio });
    bar.stop();
    const seconds = (performance.now() - started) / 1000;
    for (const w of r.warnings) console.error(`warning: ${w}`);
    const m = r.manifest;
    print(json, {
      imageDir: r.imageDir, bootstrap: m.bootstrap, blobs: m.blobs, inodes: r.inodes, files: r.files, inlineFiles: r.inlineFiles,
      bytes: r.bytes, chunks: r.chunks, uniqueChunks: r.uniqueChunks, holeChunks: r.holeChunks, dedupSavedBytes: r.dedupSavedBytes,
      warnings: r.warnings, seconds, ...(r.layers ? { layers: r.layers } : {}),
    }, () => [
      ...(r.layers ?? []).map((l) => `${l.name}: ${l.compression}, ${l.storedBytes} -> ${l.tarBytes} bytes, ${l.entries} entries, blob ${l.blobId?.slice(0, 12) ?? "(none: no new data)"}`),
      `${r.imageDir}: ${r.inodes} inodes, ${r.files} files (${r.inlineFiles} inline), ${r.bytes} bytes of file data`,
      `bootstrap ${m.bootstrap.size} bytes; ${m.blobs.length} blob(s): ` + m.blobs.map((b) => `${b.id.slice(0, 12)} ${b.kernelSize} -> ${b.remote.size} bytes ${m.compression}`).join(", "),
      `chunks ${r.chunks}: ${r.uniqueChunks} stored, ${r.holeChunks} holes, ${r.dedupSavedBytes} bytes saved by dedup (${seconds.toFixed(2)} s)`,
    ].join("\n"));
    return 0;
  } finally {
    bar.stop();
  }
}
