// Runnable images pushed to a test registry: gzip tar layers and an OCI config whose rootfs.diff_ids match
// them, so containerd unpacks and runs them. The smallest: busybox-static's /bin/busybox and its applet links.
import fs from "node:fs";
import zlib from "node:zlib";
import { bytesSource, sha256Digest, type BlobSource, type RegistryClient, type Repo } from "../../src/remote/registry/index.ts";
import { tarArchive, type TarSpec } from "./tar-layer.ts";

const LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip";
const CONFIG = "application/vnd.oci.image.config.v1+json";
const MANIFEST = "application/vnd.oci.image.manifest.v1+json";

/** A gzip layer as pushed: its stored bytes, their digest and size, and the digest of the tar (the diff id). */
export interface GzipLayer { source: BlobSource; digest: string; size: number; diffId: string }

/** The config fields containerd's `ctr run` and CRI take the process from. */
export interface RunConfig { Env?: string[]; Cmd?: string[]; Entrypoint?: string[]; WorkingDir?: string; User?: string }

export function gzipLayer(tar: Uint8Array): GzipLayer {
  const gz = zlib.gzipSync(tar);
  return { source: bytesSource(gz), digest: sha256Digest(gz), size: gz.length, diffId: sha256Digest(tar) };
}

/** Pushes the layers, a linux/amd64 config and an OCI manifest tagged `tag`; returns the manifest digest and the reference. */
export async function pushRunnableImage(client: RegistryClient, repo: Repo, tag: string, layers: GzipLayer[], run: RunConfig = {}): Promise<{ digest: string; ref: string }> {
  for (const l of layers) await client.pushBlob(repo, l.source, { digest: l.digest, mediaType: LAYER_GZIP });
  const config = Buffer.from(JSON.stringify({
    architecture: "amd64", os: "linux", config: run,
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
    history: layers.map(() => ({ created_by: "erofs-ondemand test image" })),
  }));
  const c = await client.pushBlob(repo, config, { mediaType: CONFIG });
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: MANIFEST,
    config: { mediaType: CONFIG, digest: c.digest, size: c.size },
    layers: layers.map((l) => ({ mediaType: LAYER_GZIP, digest: l.digest, size: l.size })),
  }));
  const m = await client.pushManifest(repo, tag, manifest, MANIFEST);
  return { digest: m.digest, ref: `${repo.registry}/${repo.repository}:${tag}` };
}

const BUSYBOX = "/bin/busybox";
const APPLETS = ["sh", "cat", "echo", "ls", "sleep", "sha256sum", "wc", "head", "touch", "mkdir", "rm", "stat", "test", "true", "false", "id"];
const dir = (p: string): TarSpec => ({ path: p, type: "dir" });

/** A layer with busybox-static and links to a few applets in /bin, and the directories a container needs. */
export function busyboxLayer(extra: TarSpec[] = []): Uint8Array {
  return tarArchive([
    dir("./"), dir("bin/"), dir("dev/"), dir("etc/"), dir("proc/"), dir("run/"), dir("sys/"), dir("tmp/"),
    { path: "bin/busybox", data: fs.readFileSync(BUSYBOX), mode: 0o755 },
    ...APPLETS.map((a): TarSpec => ({ path: `bin/${a}`, type: "symlink", linkpath: "busybox" })),
    { path: "etc/passwd", data: Buffer.from("root:x:0:0:root:/:/bin/sh\n") },
    ...extra,
  ]);
}

/** busybox as a runnable image (`sh` by default); more files can go in a second layer. */
export function pushBusyboxImage(client: RegistryClient, repo: Repo, tag: string, extraLayer?: TarSpec[]): Promise<{ digest: string; ref: string }> {
  const layers = [gzipLayer(busyboxLayer())];
  if (extraLayer) layers.push(gzipLayer(tarArchive(extraLayer)));
  return pushRunnableImage(client, repo, tag, layers, { Env: ["PATH=/bin"], Cmd: ["sh"] });
}
