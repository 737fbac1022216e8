// A multi-layer OCI image for registry tests: three layers (tar.gz, tar.zst, tar) whose entries exercise
// whiteouts, an opaque directory, hard links, xattrs (binary too), PAX and GNU long names, nanosecond times
// and cross-layer dedup; written as files (for the independent reference extraction) and pushed through our
// registry client as an OCI manifest with a config carrying the diff_ids.
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import type { RegistryClient } from "../../src/remote/registry/index.ts";
import { tarArchive, type TarSpec } from "./tar-layer.ts";

const MiB = 1 << 20;
const T = "1700000000";
const dir = (p: string, extra: Partial<TarSpec> = {}): TarSpec => ({ path: p, type: "dir", ...extra });
const file = (p: string, data: Buffer | string, extra: Partial<TarSpec> = {}): TarSpec => ({ path: p, data: Buffer.from(data), ...extra });

/** The three layers' entries, lowest first. */
export function testLayers(): TarSpec[][] {
  const big = randomBytes(2 * MiB + 4321);
  const longDir = `d${"x".repeat(119)}`;
  const longFile = `f${"y".repeat(149)}`;
  const gnuName = `g${"z".repeat(189)}`;
  const l1: TarSpec[] = [
    dir("./", { mtime: `${T}.5` }),
    dir("etc/", { mtime: `${T}.000000001` }),
    file("etc/hosts", "127.0.0.1 localhost\n"),
    file("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
    dir("usr/"), dir("usr/bin/"),
    file("usr/bin/tool", big, { mode: 0o755, mtime: `${T}.123456789`, xattrs: { "user.bin": Buffer.from([0xff, 0x00, 0xfe, 0x80]), "user.comment": "a tool" } }),
    { path: "usr/bin/tool-link", type: "link", linkpath: "usr/bin/tool" },
    dir("var/"), dir("var/cache/", { mode: 0o700, uid: 1000, gid: 1000 }),
    file("var/cache/a", "a"), file("var/cache/b", randomBytes(5000)), dir("var/cache/sub/"), file("var/cache/sub/c", "c"),
    dir("opt/"), dir("opt/old/"), file("opt/old/file", randomBytes(6000)),
    dir("deep/"), dir(`deep/${longDir}/`), file(`deep/${longDir}/${longFile}`, "pax long name\n", { mtime: `${T}.333333333` }),
    dir("gnu/"), file(`gnu/${gnuName}`, "gnu long name\n", { long: "gnu" }),
    { path: "lib", type: "symlink", linkpath: "usr/lib" },
  ];
  const l2: TarSpec[] = [
    dir("./", { mtime: `${T}.5` }),
    dir("etc/", { mtime: `${T}.2` }),
    file("etc/.wh.passwd", ""),
    file("etc/hosts", "10.0.0.1 other\n", { mtime: `${T}.7`, xattrs: { "user.y": "why" } }),
    { path: "etc/hosts.bak", type: "link", linkpath: "etc/hosts" },
    dir("opt/", { mtime: `${T}.3` }), file("opt/.wh.old", ""),
    dir("var/"), dir("var/cache/", { mode: 0o755, mtime: `${T}.4` }),
    file("var/cache/new", randomBytes(300_000)),
    file("var/cache/.wh..wh..opq", ""),
    dir("usr/"), dir("usr/bin/"),
    file("usr/bin/tool2", big, { mode: 0o755 }), // layer 1's tool again: no chunk stored twice
  ];
  const l3: TarSpec[] = [
    dir("./", { mtime: `${T}.5` }),
    dir("usr/"), dir("usr/bin/", { mtime: `${T}.6` }), file("usr/bin/.wh.tool-link", ""),
    dir("opt/", { mtime: `${T}.8` }), dir("opt/old/"), file("opt/old/fresh", randomBytes(700_000)),
  ];
  return [l1, l2, l3];
}

export interface TestImageFiles {
  /** The layer files as stored (l1.tar.gz, l2.tar.zst, l3.tar), lowest first. */
  files: string[];
  /** The stored bytes of each layer and its uncompressed tar. */
  stored: Buffer[];
  tars: Buffer[];
}

/** Writes the layers to `dir` as l1.tar.gz, l2.tar.zst, l3.tar. */
export function writeTestLayers(dir: string, specs = testLayers()): TestImageFiles {
  const tars = specs.map((s) => tarArchive(s));
  const stored = [zlib.gzipSync(tars[0]), zlib.zstdCompressSync(tars[1]), tars[2]];
  const files = ["l1.tar.gz", "l2.tar.zst", "l3.tar"].map((n, i) => {
    const f = path.join(dir, n);
    fs.writeFileSync(f, stored[i]);
    return f;
  });
  return { files, stored, tars };
}

const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const LAYER_TYPES = ["application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.oci.image.layer.v1.tar+zstd", "application/vnd.oci.image.layer.v1.tar"];

/** Pushes the layers as an OCI image (manifest, config with diff_ids) under `tag`; returns the manifest digest. */
export async function pushOciImage(client: RegistryClient, repo: { registry: string; repository: string }, tag: string, img: TestImageFiles): Promise<{ digest: string; config: Buffer }> {
  const layers = [];
  for (const [i, bytes] of img.stored.entries()) {
    const d = await client.pushBlob(repo, bytes, { mediaType: LAYER_TYPES[i] });
    layers.push({ mediaType: LAYER_TYPES[i], digest: d.digest, size: d.size });
  }
  const config = Buffer.from(JSON.stringify({
    architecture: "amd64", os: "linux", config: { Env: ["PATH=/usr/bin"] },
    rootfs: { type: "layers", diff_ids: img.tars.map(sha) },
  }));
  const c = await client.pushBlob(repo, config, { mediaType: "application/vnd.oci.image.config.v1+json" });
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: c.digest, size: c.size }, layers,
  }));
  const m = await client.pushManifest(repo, tag, manifest, "application/vnd.oci.image.manifest.v1+json");
  return { digest: m.digest, config };
}
