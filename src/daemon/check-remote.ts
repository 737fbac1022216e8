// `eod check <registry-ref>`: an image in a registry checked as a mount would load it (images.ts: manifest,
// bootstrap, chunk tables, each verified; for an ordinary image its index, found as eod mount finds it), then
// every chunk or span of every blob read from the registry and verified (verified-chunk.ts: an index's spans
// decoded from their checkpoints). A span that does not match is a problem naming its layer: an index made
// for another image fails there.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ErofsReader, bufferSource } from "../erofs/reader.ts";
import type { CheckReport } from "../image/check.ts";
import { verifiedChunkAsync } from "../image/verified-chunk.ts";
import { openRemote } from "../remote/open-remote.ts";
import type { RemoteOptions } from "../remote/remote.ts";
import { Semaphore } from "../util/semaphore.ts";
import { loadImage } from "./images.ts";

/** Requests in flight while checking (each a chunk or span). */
const IN_FLIGHT = 8;

export async function checkRemoteImage(source: string, opts: RemoteOptions): Promise<CheckReport> {
  const report: CheckReport = { ok: true, kind: "image-dir", problems: [], inodes: 0, entries: 0, chunksVerified: 0, notChecked: [] };
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), ".eod-check-"));
  const remote = openRemote(source, opts);
  try {
    const image = await loadImage(remote, tmp); // refuses what a mount refuses, before any blob byte
    const reader = new ErofsReader(bufferSource(fs.readFileSync(image.bootstrapPath)));
    for (const { inode } of reader.walk()) {
      report.entries++;
      report.inodes = Math.max(report.inodes, inode.nid); // not counted by inode here: the walk is the check
    }
    report.inodes = reader.sb.inos;
    const slots = new Semaphore(IN_FLIGHT);
    await Promise.all(image.blobs.flatMap((b, k) => b.table.entries.map((e, i) => slots.run(async () => {
      const unit = b.table.version === 2 ? `span ${i}` : `chunk ${i}`;
      const layer = image.manifest.blobs[k].remote;
      try {
        const bytes = await remote.readRange(b.source.path, e.remoteOffset, e.remoteSize);
        await verifiedChunkAsync(b.table, i, bytes, `${unit} of blob ${b.id}`, `${source} ${layer.digest}`);
        report.chunksVerified++;
      } catch (err) {
        report.problems.push(`blob ${b.id} (${layer.digest}) ${unit}: ${(err as Error).message}`);
      }
    }))));
  } finally {
    await remote.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  report.ok = report.problems.length === 0;
  return report;
}
