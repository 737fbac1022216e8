// The options every command that builds a lazy image takes (eod build -o, eod convert): chunk size,
// compression, level, inline limit and the layer decompression ratio, checked once here.
import { EodError } from "../errors.ts";
import type { Compression } from "../image/chunk-table.ts";
import { parseSize } from "./args.ts";

export const IMAGE_OPTIONS = {
  "chunk-size": { type: "string" }, compress: { type: "string" }, level: { type: "string" }, "inline-max": { type: "string" },
  "max-ratio": { type: "string" },
} as const;

export interface ImageCliOptions {
  chunkSize?: number;
  compression: Compression;
  level?: number;
  inlineMax?: number;
  maxRatio?: number;
}

export function parseImageOptions(values: Partial<Record<keyof typeof IMAGE_OPTIONS, string>>): ImageCliOptions {
  const chunkSize = values["chunk-size"] ? parseSize(values["chunk-size"], "--chunk-size") : undefined;
  if (chunkSize !== undefined && (chunkSize < 4096 || (chunkSize & (chunkSize - 1)) !== 0 || chunkSize > 2 ** 31)) {
    throw new EodError("USAGE", `--chunk-size must be a power of two between 4K and 2G, got ${values["chunk-size"]}`);
  }
  const compression = values.compress ?? "zstd";
  if (!["zstd", "lz4", "none"].includes(compression)) throw new EodError("USAGE", `--compress must be zstd, lz4 or none, got ${compression}`);
  const level = values.level === undefined ? undefined : Number(values.level);
  if (level !== undefined && (!Number.isInteger(level) || level < 1 || level > 22)) throw new EodError("USAGE", "--level must be an integer 1..22");
  const maxRatio = values["max-ratio"] === undefined ? undefined : Number(values["max-ratio"]);
  if (maxRatio !== undefined && !(Number.isFinite(maxRatio) && maxRatio >= 0)) throw new EodError("USAGE", "--max-ratio must be a number >= 0");
  const inlineMax = values["inline-max"] ? parseSize(values["inline-max"], "--inline-max") : undefined;
  return { chunkSize, compression: compression as Compression, level, inlineMax, maxRatio };
}
