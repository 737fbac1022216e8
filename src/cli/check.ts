// eod check <image | index-dir | registry-ref> [--device <file>]... [--layers <oci-layout>]
import fs from "node:fs";
import path from "node:path";
import { EodError } from "../errors.ts";
import { checkImage, type CheckReport } from "../image/check.ts";
import type { BlobRef } from "../image/manifest.ts";
import { parse, print } from "./args.ts";
import { imageSource } from "./image-source.ts";

export const CHECK_USAGE = `Usage: eod check <image-dir | file.erofs | registry-ref> [--device <file>]... [--layers <oci-layout>] [--json]

Walks every structure and verifies every digest. Exits 0 when the image is sound; otherwise prints each
problem with where it is and exits 1. --device gives the extra devices of an EROFS file (mkfs.erofs --blobdev),
in device-table order: as with fsck.erofs, each must be given, and its size must match the device table.
An EROFS file has no data digests: what was not checked is printed.

An index image (eod index) holds no layer: each span of its seek indexes is read from the layer it indexes,
decoded from its checkpoint and compared with its digest. Give the layers with --layers <oci-layout> (the
layout the index was made from), or check a registry reference: the image's index is found as eod mount
finds it, and the spans are read from the registry. An index made for another image fails on its first span.

Options:
  --layers <dir>         an OCI layout holding the layers of an index image directory
  --insecure-registry <host[:port]>  speak to this registry without TLS verification (or plain HTTP)
  --json                 machine-readable output`;

export async function checkCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    device: { type: "string", multiple: true }, layers: { type: "string" }, "insecure-registry": { type: "string", multiple: true },
    json: { type: "boolean" }, help: { type: "boolean", short: "h" },
  }, CHECK_USAGE);
  if (values.help) { console.log(CHECK_USAGE); return 0; }
  if (positionals.length !== 1) throw new EodError("USAGE", CHECK_USAGE);
  const target = positionals[0];
  let r: CheckReport;
  if (!fs.existsSync(target)) {
    const source = imageSource(target); // a registry reference (or a clear USAGE error)
    const { checkRemoteImage } = await import("../daemon/remote-image.ts");
    r = await checkRemoteImage(source, { insecureRegistries: values["insecure-registry"] ?? [] });
  } else {
    r = checkImage(target, values.device ?? [], values.layers !== undefined ? { remoteOf: layoutBlob(values.layers) } : {});
  }
  const notChecked = r.notChecked.map((n) => `\n  not checked: ${n}`).join("");
  print(values.json ?? false, r, () => r.ok
    ? `${target}: OK (${r.entries} entries, ${r.inodes} inodes${r.kind === "image-dir" ? `, ${r.chunksVerified} chunks verified` : ""})${notChecked}`
    : `${target}: ${r.problems.length} problem(s)\n` + r.problems.map((p) => `  ${p}`).join("\n") + notChecked);
  return r.ok ? 0 : 1;
}

/** A blob's remote form in an OCI layout, by its digest (blobs/<alg>/<hex>); missing: the index is not for these layers. */
function layoutBlob(layout: string): (b: BlobRef) => string {
  if (!fs.existsSync(path.join(layout, "oci-layout"))) throw new EodError("USAGE", `--layers ${layout} is not an OCI layout (no oci-layout file)`);
  return (b) => {
    const [alg, hex] = b.remote.digest.split(":");
    const file = path.join(layout, "blobs", alg, hex);
    if (!fs.existsSync(file)) throw new EodError("IMAGE_INVALID", `its layer ${b.remote.digest} is not in ${layout}: the index was made for another image`);
    return file;
  };
}
