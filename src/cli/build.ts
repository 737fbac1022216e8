// eod build <dir> -o <image-dir> | --single <file.erofs>
import { buildImage } from "../build/image.ts";
import { buildSingle } from "../build/single.ts";
import { EodError } from "../errors.ts";
import type { Compression } from "../image/chunk-table.ts";
import { parse, parseSize, print } from "./args.ts";
import { progressBar } from "./progress.ts";

export const BUILD_USAGE = `Usage: eod build <dir> -o <image-dir> [options]
       eod build <dir> --single <file.erofs> [options]

Builds a lazy-loading image (bootstrap + data blobs + manifest) or, with --single, one self-contained EROFS
image (like mkfs.erofs <file> <dir>).

Options:
  -o, --output <dir>     image directory to create (replaced if it is an earlier image)
  --single <file>        write one EROFS image instead
  --chunk-size <size>    chunk size, a power of two >= 4K (default 1M)
  --compress <algo>      remote form compression: zstd (default), lz4, none
  --level <n>            compression level (zstd 1..19, lz4 HC 1..12)
  --inline-max <size>    files up to this size live in the bootstrap (default 1K; 0 = none)
  --json                 print a machine-readable summary`;

export async function buildCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    output: { type: "string", short: "o" }, single: { type: "string" }, "chunk-size": { type: "string" },
    compress: { type: "string" }, level: { type: "string" }, "inline-max": { type: "string" }, json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  }, BUILD_USAGE);
  if (values.help) { console.log(BUILD_USAGE); return 0; }
  if (positionals.length !== 1 || (!values.output === !values.single)) {
    throw new EodError("USAGE", `Give one source directory and exactly one of -o or --single\n\n${BUILD_USAGE}`);
  }
  const chunkSize = values["chunk-size"] ? parseSize(values["chunk-size"], "--chunk-size") : undefined;
  if (chunkSize !== undefined && (chunkSize < 4096 || (chunkSize & (chunkSize - 1)) !== 0 || chunkSize > 2 ** 31)) {
    throw new EodError("USAGE", `--chunk-size must be a power of two between 4K and 2G, got ${values["chunk-size"]}`);
  }
  const compress = values.compress ?? "zstd";
  if (!["zstd", "lz4", "none"].includes(compress)) throw new EodError("USAGE", `--compress must be zstd, lz4 or none, got ${compress}`);
  const level = values.level === undefined ? undefined : Number(values.level);
  if (level !== undefined && (!Number.isInteger(level) || level < 1 || level > 22)) throw new EodError("USAGE", `--level must be an integer 1..22`);
  const json = values.json ?? false;
  const bar = progressBar(!json);
  const started = performance.now();
  try {
    if (values.single) {
      const r = await buildSingle(positionals[0], values.single, { chunkSize, progress: bar.update });
      bar.stop();
      const seconds = (performance.now() - started) / 1000;
      for (const w of r.warnings) console.error(`warning: ${w}`);
      print(json, { ...r, seconds }, () => `${r.image}: ${r.inodes} inodes, ${r.size} bytes (${seconds.toFixed(2)} s)`);
      return 0;
    }
    const r = await buildImage(positionals[0], values.output!, {
      chunkSize, compression: compress as Compression, level,
      inlineMax: values["inline-max"] ? parseSize(values["inline-max"], "--inline-max") : undefined, progress: bar.update,
    });
    bar.stop();
    const seconds = (performance.now() - started) / 1000;
    for (const w of r.warnings) console.error(`warning: ${w}`);
    const m = r.manifest;
    print(json, {
      imageDir: r.imageDir, bootstrap: m.bootstrap, blobs: m.blobs, inodes: r.inodes, files: r.files, inlineFiles: r.inlineFiles,
      bytes: r.bytes, chunks: r.chunks, uniqueChunks: r.uniqueChunks, holeChunks: r.holeChunks, dedupSavedBytes: r.dedupSavedBytes,
      warnings: r.warnings, seconds,
    }, () => [
      `${r.imageDir}: ${r.inodes} inodes, ${r.files} files (${r.inlineFiles} inline), ${r.bytes} bytes of file data`,
      `bootstrap ${m.bootstrap.size} bytes; ${m.blobs.length} blob(s): ` + m.blobs.map((b) => `${b.id.slice(0, 12)} ${b.kernelSize} -> ${b.remote.size} bytes ${m.compression}`).join(", "),
      `chunks ${r.chunks}: ${r.uniqueChunks} stored, ${r.holeChunks} holes, ${r.dedupSavedBytes} bytes saved by dedup (${seconds.toFixed(2)} s)`,
    ].join("\n"));
    return 0;
  } finally {
    bar.stop();
  }
}
