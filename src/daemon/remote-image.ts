// `eod check <registry-ref>` and `eod inspect <registry-ref>`: an image in a registry loaded as a mount would
// load it (images.ts: manifest, bootstrap, chunk tables, each verified; for an ordinary image its index, found
// as eod mount finds it) into a temporary directory, no blob byte read. check then reads every chunk or span of
// every blob from the registry and verifies it (verified-chunk.ts: an index's spans decoded from their
// checkpoints): a span that does not match is a problem naming its layer, so an index made for another image
// fails there.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { EodError } from "../errors.ts";
import { ErofsReader, bufferSource, type ByteSource } from "../erofs/reader.ts";
import type { CheckReport } from "../image/check.ts";
import type { ImageDirMetadata } from "../image/image-dir.ts";
import type { OpenedImage } from "../image/open.ts";
import { decodeGroups } from "../image/chunk-table.ts";
import { unitsOf, verifiedEachAsync } from "../image/verified-chunk.ts";
import { openRemote } from "../remote/open-remote.ts";
import type { Remote, RemoteOptions } from "../remote/remote.ts";
import { Semaphore } from "../util/semaphore.ts";
import { loadImage, type LoadedImage } from "./images.ts";

/** Requests in flight while checking (each a chunk or span). */
const IN_FLIGHT = 8;

/** Runs `fn` on the loaded image; the remote and the temporary directory go afterwards. */
async function withRemoteImage<T>(source: string, opts: RemoteOptions, fn: (image: LoadedImage, remote: Remote) => Promise<T>): Promise<T> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), ".eod-remote-"));
  const remote = openRemote(source, opts);
  try {
    return await fn(await loadImage(remote, tmp), remote); // loadImage refuses what a mount refuses, before any blob byte
  } finally {
    await remote.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** The image's metadata as `eod inspect` reads an image directory's; reading file data is an error. */
export function inspectRemoteImage<T>(source: string, opts: RemoteOptions, fn: (img: OpenedImage<ImageDirMetadata>) => T): Promise<T> {
  return withRemoteImage(source, opts, async (image) => {
    const devices = image.manifest.blobs.map((b): ByteSource => ({
      size: b.kernelSize,
      read() { throw new EodError("USAGE", `${source}: file data is not read by eod inspect of a registry image (blob ${b.id})`); },
    }));
    const reader = new ErofsReader(bufferSource(fs.readFileSync(image.bootstrapPath)), devices);
    const imageDir: ImageDirMetadata = { dir: image.source, manifest: image.manifest, bootstrapPath: image.bootstrapPath, tables: image.blobs.map((b) => b.table) };
    return fn({ reader, imageDir, close() {} });
  });
}

export function checkRemoteImage(source: string, opts: RemoteOptions): Promise<CheckReport> {
  return withRemoteImage(source, opts, async (image, remote) => {
    const report: CheckReport = { ok: true, kind: "image-dir", problems: [], inodes: 0, entries: 0, chunksVerified: 0, notChecked: [] };
    const reader = new ErofsReader(bufferSource(fs.readFileSync(image.bootstrapPath)));
    for (const _ of reader.walk()) report.entries++;
    report.inodes = reader.sb.inos;
    const slots = new Semaphore(IN_FLIGHT);
    await Promise.all(image.blobs.flatMap((b, k) => [...decodeGroups(b.table)].map(({ first, last }) => slots.run(async () => {
      const unit = b.table.version === 2 ? "span" : "chunk";
      const name = unitsOf(unit);
      const layer = image.manifest.blobs[k].remote;
      const e = b.table.entries[last]; // its remote bytes hold the group's
      try {
        const bytes = await remote.readRange(b.source.path, e.remoteOffset, e.remoteSize);
        const verified = await verifiedEachAsync(b.table, first, last, bytes, unitsOf(unit, b.id), `${source} ${layer.digest}`);
        verified.forEach((v, i) => {
          if (v.error) report.problems.push(`blob ${b.id} (${layer.digest}) ${name(first + i, first + i)}: ${v.error.message}`);
          else report.chunksVerified++;
        });
      } catch (err) {
        report.problems.push(`blob ${b.id} (${layer.digest}) ${name(first, last)}: ${(err as Error).message}`);
      }
    }))));
    report.ok = report.problems.length === 0;
    return report;
  });
}
