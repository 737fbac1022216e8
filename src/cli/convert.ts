// eod convert <src-ref> <dst-ref>: an image in a registry → our image, pushed to a registry in its OCI form.
import { convertImage } from "../mkfs/convert.ts";
import { EodError } from "../errors.ts";
import { parsePlatform } from "../remote/registry/index.ts";
import { parse, print } from "./args.ts";
import { IMAGE_OPTIONS, parseImageOptions } from "./image-options.ts";
import { PREFETCH_OPTIONS, PREFETCH_USAGE, readPrefetch } from "./prefetch-flags.ts";
import { layerBars } from "./progress.ts";

export const CONVERT_USAGE = `Usage: eod convert <src-ref> <dst-ref> [options]

Pulls an OCI or Docker image from a registry (a tag is resolved through an index to one platform), builds
our image from its layers as they stream in (one blob per layer that adds data; every layer checked against
its digest and diff_id), and pushes it as an OCI manifest whose layers are the image's files (manifest.json,
bootstrap, chunk tables, blobs), typed application/vnd.oci.image.layer.erofs-ondemand.* and annotated
containerd.io/snapshot/eod.manifest, so containerd's eod snapshotter takes them without downloading them.
The config is the source image's (entrypoint, env, user, ...) with rootfs.diff_ids naming our layers; see
docs/format.md "OCI form". Blobs the destination has are not pushed again. Mount the result with
eod mount <dst-ref> <mountpoint>, or run it through containerd (docs/containerd.md).

References: host[:port]/repository[:tag][@digest]. Registries on loopback are spoken to over plain HTTP,
others over verified HTTPS. Credentials come from docker's config.json ($DOCKER_CONFIG or ~/.docker:
auths, credHelpers, credsStore).

Options:
  --platform <os/arch[/variant]>  the image to take from an index (default the host's, e.g. linux/amd64)
  --insecure-registry <host[:port]>  speak to this registry without TLS verification (or plain HTTP);
                         repeatable
  -o, --output <dir>     also keep the built image directory here
  --chunk-size <size>    chunk size, a power of two >= 4K (default 128K)
  --compress <algo>      remote form compression: zstd (default), lz4, none
  --level <n>            compression level (zstd 1..19, lz4 HC 1..12)
  --inline-max <size>    files up to this size live in the bootstrap (default 1K; 0 = none)
  --max-ratio <n>        refuse a layer that decompresses to more than n times its size (default 1000; 0 = off)
${PREFETCH_USAGE}
  --json                 print a machine-readable summary`;

export async function convertCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    platform: { type: "string" }, "insecure-registry": { type: "string", multiple: true }, output: { type: "string", short: "o" },
    ...IMAGE_OPTIONS, ...PREFETCH_OPTIONS, json: { type: "boolean" }, help: { type: "boolean", short: "h" },
  }, CONVERT_USAGE);
  if (values.help) { console.log(CONVERT_USAGE); return 0; }
  if (positionals.length !== 2) throw new EodError("USAGE", CONVERT_USAGE);
  if (values.platform) parsePlatform(values.platform);
  const image = parseImageOptions(values);
  const prefetch = readPrefetch(values.prefetch, values["prefetch-from"]);
  const json = values.json ?? false;
  const bars = layerBars(!json);
  try {
    const r = await convertImage(positionals[0], positionals[1], {
      platform: values.platform, insecureRegistries: values["insecure-registry"] ?? [], output: values.output,
      ...image, prefetch, onLayer: bars.layer, onPush: bars.push,
    });
    bars.stop();
    for (const w of r.build.warnings) console.error(`warning: ${w}`);
    const skipped = r.pushed.filter((p) => p.how !== "uploaded");
    print(json, r, () => [
      `${r.source.reference} (${r.source.digest}${r.source.platform ? `, ${r.source.platform}` : ""}): ${r.source.layers} layer(s)`,
      ...r.build.layers.map((l) => `  ${l.name}: ${l.compression}, ${l.storedBytes} -> ${l.tarBytes} bytes, ${l.entries} entries, blob ${l.blobId?.slice(0, 12) ?? "(none: no new data)"}`),
      `built ${r.build.inodes} inodes, ${r.build.bytes} bytes of file data, ${r.build.manifest.blobs.length} blob(s) (${r.seconds.pull.toFixed(2)} s)`,
      `pushed ${r.pushed.length - skipped.length} blob(s), ${skipped.length} already there (${skipped.map((p) => `${p.path} ${p.how}`).join(", ") || "none"}) (${r.seconds.push.toFixed(2)} s)`,
      `${r.target.reference}`,
    ].join("\n"));
    return 0;
  } finally {
    bars.stop();
  }
}
