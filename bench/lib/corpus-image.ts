// The Debian corpus (bench/corpus.ts) as an ordinary registry image: one gzip layer (GNU tar, POSIX format
// with xattrs) made once and kept next to the corpus, pushed with a config that runs it (PATH set).
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import zlib from "node:zlib";
import { benchCacheDir } from "../corpus.ts";
import { pushRunnableImage, type GzipLayer } from "../../test/helpers/push-image.ts";
import { fileSource, RegistryClient, staticCredentials } from "../../src/remote/registry/index.ts";

export interface CorpusLayer { file: string; diffId: string; digest: string; size: number }

/** The corpus as one tar.gz file (written on first use) with its digest and diff id. */
export async function corpusLayer(corpus: string): Promise<CorpusLayer> {
  const file = path.join(benchCacheDir(), "debian-bookworm-minbase-python3.layer.tar.gz");
  if (!fs.existsSync(file)) {
    process.stderr.write(`corpus: writing ${file}\n`);
    const r = spawnSync("sh", ["-c", `tar --format=posix --xattrs --xattrs-include='*' --numeric-owner -C '${corpus}' -cf - . | gzip -6 > '${file}.tmp' && mv '${file}.tmp' '${file}'`], { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" });
    if (r.status !== 0) throw new Error(`writing ${file} failed (exit ${r.status}): ${r.stderr}`);
  }
  const tarHash = createHash("sha256");
  const fileHash = createHash("sha256");
  await pipeline(fs.createReadStream(file), async function* (src) { for await (const c of src) { fileHash.update(c); yield c; } }, zlib.createGunzip(), async function (src) { for await (const c of src) tarHash.update(c); });
  return { file, diffId: `sha256:${tarHash.digest("hex")}`, digest: `sha256:${fileHash.digest("hex")}`, size: fs.statSync(file).size };
}

/** Pushes the corpus layer as `<registry>/<repository>:<tag>`; returns that reference. */
export async function pushCorpusImage(registry: string, repository: string, tag: string, layer: CorpusLayer): Promise<string> {
  const client = new RegistryClient({ credentials: staticCredentials({}) });
  try {
    const gz: GzipLayer = { source: await fileSource(layer.file), digest: layer.digest, size: layer.size, diffId: layer.diffId };
    const env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"];
    return (await pushRunnableImage(client, { registry, repository }, tag, [gz], { Env: env, Cmd: ["python3"] })).ref;
  } finally {
    await client.close();
  }
}
