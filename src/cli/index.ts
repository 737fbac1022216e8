// eod index <source> [-o <dir>] [--push] [--span <size>] [--prefetch …]: the seek index of an ordinary image (issue 14).
import { EodError } from "../errors.ts";
import { makeIndex } from "../mkfs/make-index.ts";
import { parsePlatform } from "../remote/registry/index.ts";
import { parse, parseSize, print } from "./args.ts";
import { PREFETCH_OPTIONS, readPrefetch } from "./prefetch-flags.ts";
import { layerBars } from "./progress.ts";

export const INDEX_USAGE = `Usage: eod index <registry-ref | oci-layout-dir | docker-save.tar> [-o <dir>] [--push] [options]

Makes an ordinary OCI or Docker image (tar, tar+gzip or multi-frame tar+zstd layers, as any tool pushes them)
mountable lazily without converting it: each layer is read once (checked against its digest and diff_id)
and the index is written: a bootstrap (all metadata; each file's data points into its layer's tar) and per
layer a seek index (checkpoints every --span bytes of tar: where decoding can start in the compressed layer,
and the sha256 of every span). The layers stay as they are: a mount fetches the compressed bytes of the
spans it reads from the image's own layers and checks them against the index. A zstd layer of one frame
cannot be read from the middle: such an image needs eod convert.

With --push the index is pushed next to the image as an OCI artifact whose subject is the image's manifest
(found by eod mount <ref> through the referrers API, or the tag sha256-<hex> where a registry has none);
nothing of the image is uploaded again. See docs/registries.md "Ordinary images".

Options:
  -o, --output <dir>     write the index image directory here (a new directory; with --push alone a
                         temporary one)
  --push                 push the index as the referrer artifact of the image (a registry reference only)
  --span <size>          bytes of uncompressed tar between checkpoints, a multiple of 4K (default 1M):
                         smaller spans make reads of small files cheaper and the index larger
  --prefetch <list>      files a mount fetches first: a text file, one absolute path per line (directories
                         stand for every file under them); stored in the index's manifest.json
  --prefetch-from <trace>  the same from an access trace written by eod trace (files and the ranges touched)
  --platform <os/arch[/variant]>  the image to take from an index (default the host's, e.g. linux/amd64)
  --insecure-registry <host[:port]>  speak to this registry without TLS verification (or plain HTTP);
                         repeatable
  --json                 print a machine-readable summary`;

export async function indexCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    output: { type: "string", short: "o" }, push: { type: "boolean" }, span: { type: "string" },
    platform: { type: "string" }, "insecure-registry": { type: "string", multiple: true },
    json: { type: "boolean" }, help: { type: "boolean", short: "h" }, ...PREFETCH_OPTIONS,
  }, INDEX_USAGE);
  if (values.help) { console.log(INDEX_USAGE); return 0; }
  if (positionals.length !== 1) throw new EodError("USAGE", INDEX_USAGE);
  if (values.platform) parsePlatform(values.platform);
  const spanSize = values.span !== undefined ? parseSpan(values.span) : undefined;
  const prefetch = readPrefetch(values.prefetch, values["prefetch-from"]);
  const json = values.json ?? false;
  const bars = layerBars(!json);
  try {
    const r = await makeIndex(positionals[0], {
      output: values.output, push: values.push ?? false, spanSize, platform: values.platform,
      insecureRegistries: values["insecure-registry"] ?? [], prefetch, onLayer: bars.layer,
    });
    bars.stop();
    for (const w of r.build.warnings) console.error(`warning: ${w}`);
    const pct = (n: number, of: number) => (of ? `${((100 * n) / of).toFixed(2)} %` : "-");
    print(json, r, () => [
      `${r.source.reference}${r.source.digest ? ` (${r.source.digest}${r.source.platform ? `, ${r.source.platform}` : ""})` : ""}: ${r.source.layers} layer(s)`,
      ...r.build.layers.map((l) => `  ${l.name}: ${l.compression}, ${l.storedBytes} -> ${l.tarBytes} bytes, ${l.spans} span(s), index ${l.indexBytes} bytes (${pct(l.indexBytes, l.storedBytes)} of the layer)`),
      `index ${r.indexBytes} bytes = ${pct(r.indexBytes, r.imageBytes)} of the image's ${r.imageBytes} bytes (${r.seconds.toFixed(2)} s)`,
      ...(r.dir ? [`written to ${r.dir}`] : []),
      ...(r.artifact ? [`pushed ${r.artifact.reference}`] : []),
    ].join("\n"));
    return 0;
  } finally {
    bars.stop();
  }
}

function parseSpan(text: string): number {
  const n = parseSize(text, "--span");
  if (n < 4096 || n % 4096) throw new EodError("USAGE", `--span must be a multiple of 4K and at least 4K, got ${text}`);
  return n;
}
