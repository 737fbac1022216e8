// eod inspect <image> [--stat <path>] [--summary] [--json]
import fs from "node:fs";
import { EodError } from "../errors.ts";
import { featureNames } from "../erofs/super.ts";
import { escapePath, parsePath } from "../erofs/printable-name.ts";
import { entryInfo, imageInfo, listEntries, type EntryInfo } from "../image/inspect.ts";
import type { ImageDirMetadata } from "../image/image-dir.ts";
import { openImageMetadata, type OpenedImage } from "../image/open.ts";
import { imageSource } from "./image-source.ts";
import { parse } from "./args.ts";

export const INSPECT_USAGE = `Usage: eod inspect <image-dir | file.erofs | registry-ref> [options]

Prints the image summary (superblock, devices, blob and chunk statistics, the prefetch list if any) and the
tree listing. A registry reference names an image of ours, or an ordinary image whose index (eod index --push)
is read, as eod mount reads it: its metadata only. An index image shows, per layer, its seek index: the
layer's compression, its spans, the bytes of the gzip checkpoints' windows and the index's size as a share
of the layer's.

Options:
  --stat <path>      everything about one path (inode, layout, xattrs, chunks), written as listed (a
                     byte that is not printable UTF-8 as \\xNN, a backslash as \\\\)
  --summary          the summary only, no tree listing
  --device <file>    an extra device of an EROFS file (repeat in device-table order)
  --insecure-registry <host[:port]>  speak to this registry without TLS verification (or plain HTTP)
  --json             machine-readable output`;

export async function inspectCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    stat: { type: "string" }, summary: { type: "boolean" }, device: { type: "string", multiple: true }, "insecure-registry": { type: "string", multiple: true },
    json: { type: "boolean" }, help: { type: "boolean", short: "h" },
  }, INSPECT_USAGE);
  if (values.help) { console.log(INSPECT_USAGE); return 0; }
  if (positionals.length !== 1) throw new EodError("USAGE", INSPECT_USAGE);
  if (!fs.existsSync(positionals[0])) {
    const source = imageSource(positionals[0]); // a registry reference (or a clear USAGE error)
    const { inspectRemoteImage } = await import("../daemon/remote-image.ts");
    return inspectRemoteImage(source, { insecureRegistries: values["insecure-registry"] ?? [] }, (img) => show(img, values));
  }
  const img = openImageMetadata(positionals[0], values.device ?? []); // an image dir's blobs need not be here
  try {
    return show(img, values);
  } finally {
    img.close();
  }
}

function show(img: OpenedImage<ImageDirMetadata>, values: { stat?: string; summary?: boolean; json?: boolean }): number {
  const out = (s: string) => process.stdout.write(s + "\n");
  if (values.stat !== undefined) {
    const names = parsePath(values.stat); // as listed: \xNN and \\ escapes
    const e = entryInfo(img.reader, img.reader.lookup(names), escapePath(names), true);
    out(values.json ? JSON.stringify(e, null, 2) : Object.entries(e).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join("\n"));
    return 0;
  }
  const info = imageInfo(img);
  if (values.json) {
    const entries = values.summary ? undefined : [...listEntries(img.reader, true)];
    out(JSON.stringify({ ...info, entries }, null, 2));
    return 0;
  }
  out(`${info.kind} block size ${info.blockSize}, ${info.inodes} inodes, root nid ${info.rootNid}, uuid ${info.uuid}`);
  const names = (compat: number, incompat: number) => featureNames(compat, incompat).join(" ") || "none";
  out(`features compat 0x${info.featureCompat.toString(16)} (${names(info.featureCompat, 0)}) incompat 0x${info.featureIncompat.toString(16)} (${names(0, info.featureIncompat)}), primary ${info.primaryBlocks} blocks, ${info.devices.length} extra device(s)`);
  if (info.bootstrap) out(`bootstrap ${info.bootstrap.size} bytes ${info.bootstrap.digest}`);
  for (const b of info.blobs ?? []) {
    out(b.tableMissing !== undefined
      ? `blob ${b.id}: ${b.chunks} chunks, kernel ${b.kernelSize} B, remote ${b.remoteSize} B ${b.compression} (chunk table not here: ${b.tableMissing})`
      : b.seekIndex
        ? `blob ${b.id}: layer ${b.seekIndex.kind}, tar ${b.kernelSize} B, layer ${b.remoteSize} B, ${b.seekIndex.spans} spans (mean ${b.seekIndex.meanSpan} B of tar from ${b.seekIndex.meanFetch} B of layer), windows ${b.seekIndex.windowBytes} B, index ${b.seekIndex.indexBytes} B = ${(100 * b.seekIndex.indexRatio).toFixed(3)} % of the layer`
        : `blob ${b.id}: ${b.chunks} chunks (mean ${b.meanChunk} B), kernel ${b.kernelSize} B, remote ${b.remoteSize} B ${b.compression} (ratio ${b.ratio}, ${b.rawChunks} stored raw)`);
  }
  if (info.prefetch) {
    out(`prefetch list: ${info.prefetch.length} entr${info.prefetch.length === 1 ? "y" : "ies"} (fetched first after a mount)`);
    for (const e of info.prefetch) out(`  ${e.path}${e.ranges ? ` (${e.ranges.length} byte range(s))` : ""}`);
  }
  if (!values.summary) {
    for (const e of listEntries(img.reader, false)) {
      if (!process.stdout.writable) break; // the reader went away (EPIPE): main.ts ends the process
      out(formatEntry(e));
    }
  }
  return 0;
}

function formatEntry(e: EntryInfo): string {
  const size = e.rdev ? `${e.rdev.major},${e.rdev.minor}` : String(e.size);
  return `${e.type.padEnd(7)} ${e.mode} ${String(e.uid).padStart(5)} ${String(e.gid).padStart(5)} ${size.padStart(10)} ${e.mtime} ${e.path}${e.target !== undefined ? ` -> ${e.target}` : ""}`;
}
