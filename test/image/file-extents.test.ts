// fileExtentsOf() (src/image/file-extents.ts): where each regular file's bytes lie in its device, read from a
// real index bootstrap (layers' tars as devices); extentAt() finds the file of a byte, and none in a header.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { S_IFMT, S_IFREG } from "../../src/erofs/constants.ts";
import { bufferSource, ErofsReader } from "../../src/erofs/reader.ts";
import { extentAt, fileExtentsOf } from "../../src/image/file-extents.ts";
import { buildIndexImage } from "../../src/mkfs/index-image.ts";
import { tempDir } from "../helpers/kernel.ts";
import { testLayers } from "../helpers/oci-image.ts";
import { tarArchive } from "../helpers/tar-layer.ts";

const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

test("fileExtentsOf(): every regular file's extent holds its bytes in its layer's tar; extentAt() finds it by any byte", async () => {
  const out = path.join(tempDir("eod-file-extents-"), "img");
  const tars = testLayers().map((s) => tarArchive(s));
  await buildIndexImage(tars.map((t, k) => ({
    name: `layer ${k + 1}`, digest: sha(t), diffId: sha(t), size: t.length,
    open: () => (async function* () { yield t; })(),
  })), out, { spanSize: 64 << 10 });
  const reader = new ErofsReader(bufferSource(fs.readFileSync(path.join(out, "bootstrap.erofs"))), tars.map(bufferSource));
  const extents = await fileExtentsOf(reader, tars.length);
  assert.equal(extents.length, tars.length);
  let files = 0;
  for (const { inode } of reader.walk()) {
    if ((inode.mode & S_IFMT) !== S_IFREG || inode.size === 0) continue;
    const [chunk] = reader.chunks(inode);
    const d = chunk.addr!.deviceId - 1;
    const at = chunk.addr!.startBlk * reader.blkSz;
    for (const probe of [at, at + inode.size - 1]) {
      const x = extentAt(extents[d], probe);
      assert.ok(x && x[0] === at && x[1] >= at + inode.size, `inode ${inode.nid} at ${probe}`);
    }
    assert.ok(tars[d].subarray(at, at + inode.size).equals(Buffer.from(reader.read(inode, 0, inode.size))));
    assert.equal(extentAt(extents[d], at - 1)?.[1] === at, false, "the header before a body is no file's");
    files++;
  }
  assert.ok(files >= 5, `${files} files`);
  const starts = extents.flatMap((x) => [...x.starts]);
  assert.ok(starts.length >= files - 2, "one extent per file (hard links share one)");
});
