// The real content of an indexed image's lower layer when another image needs it: applyLayer() leaves a tar as
// containerd's overlay applier does (owners, modes, times, xattrs, links, devices; OCI whiteouts → overlayfs
// whiteouts and opaque directories), refuses a broken tar; RegistryLayerContent fetches the layer from a real
// registry and refuses one whose diff_id is not the config's.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { haveRoot } from "../helpers/kernel.ts";
import { gzipLayer, pushRunnableImage } from "../helpers/push-image.ts";
import { startRegistry, type RunningRegistry } from "../helpers/registry.ts";
import { unavailable } from "../helpers/skip.ts";
import { tarArchive, type TarSpec } from "../helpers/tar-layer.ts";
import { RegistryClient, bytesSource, sha256Digest, staticCredentials } from "../../src/remote/registry/index.ts";
import { applyLayer } from "../../src/snapshotter/apply-layer.ts";
import { RegistryLayerContent } from "../../src/snapshotter/layer-content.ts";
import { getXattr } from "../../src/sys/xattr.ts";

const skip = unavailable(haveRoot() ? false : "needs root (owners, devices, trusted.* xattrs)");
const work = fs.mkdtempSync(path.join(os.tmpdir(), "eod-apply-layer-"));
after(() => fs.rmSync(work, { recursive: true, force: true }));

const LAYER: TarSpec[] = [
  { path: "./", type: "dir" },
  { path: "etc/", type: "dir", mode: 0o750, uid: 7, gid: 8, mtime: 1_600_000_000 },
  { path: "etc/conf", data: Buffer.from("conf\n"), mode: 0o640, uid: 1000, gid: 1001, mtime: "1600000001.5", xattrs: { "user.note": "x", "trusted.t": Buffer.from([0, 1]) } },
  { path: "etc/conf.link", type: "link", linkpath: "etc/conf" },
  { path: "etc/sym", type: "symlink", linkpath: "../nowhere" },
  { path: "etc/.wh.old", data: Buffer.alloc(0) },
  { path: "var/", type: "dir" }, { path: "var/cache/", type: "dir" }, { path: "var/cache/.wh..wh..opq", data: Buffer.alloc(0) },
  { path: "var/cache/new", data: Buffer.from("fresh") },
  { path: "dev/", type: "dir" }, { path: "dev/null", type: "chardev", devMajor: 1, devMinor: 3, mode: 0o666 },
];

test("applyLayer: the tar as containerd's overlay applier leaves it, whiteouts as overlayfs's", { skip }, async () => {
  const dir = fs.mkdtempSync(path.join(work, "apply-"));
  await applyLayer([tarArchive(LAYER)], dir);
  const st = (p: string) => fs.lstatSync(path.join(dir, p));
  assert.equal(st("etc").mode & 0o7777, 0o750);
  assert.deepEqual([st("etc").uid, st("etc").gid], [7, 8]);
  assert.equal(st("etc").mtimeMs, 1_600_000_000_000, "a directory's time set after its entries");
  assert.equal(fs.readFileSync(path.join(dir, "etc/conf"), "utf8"), "conf\n");
  assert.deepEqual([st("etc/conf").mode & 0o7777, st("etc/conf").uid, st("etc/conf").gid], [0o640, 1000, 1001]);
  assert.equal(st("etc/conf").mtimeMs, 1_600_000_001_500);
  assert.equal(getXattr(path.join(dir, "etc/conf"), "user.note").toString(), "x");
  assert.deepEqual([...getXattr(path.join(dir, "etc/conf"), "trusted.t")], [0, 1]);
  assert.equal(st("etc/conf.link").ino, st("etc/conf").ino, "a hard link");
  assert.equal(fs.readlinkSync(path.join(dir, "etc/sym")), "../nowhere");
  const old = st("etc/old");
  assert.ok(old.isCharacterDevice() && old.rdev === 0, "a whiteout is a 0/0 character device");
  assert.equal(getXattr(path.join(dir, "var/cache"), "trusted.overlay.opaque").toString(), "y");
  assert.equal(fs.readFileSync(path.join(dir, "var/cache/new"), "utf8"), "fresh");
  assert.ok(st("dev/null").isCharacterDevice() && st("dev/null").rdev === ((1 << 8) | 3));
  const names = fs.readdirSync(dir, { recursive: true }) as string[];
  assert.ok(!names.some((n) => path.basename(n).startsWith(".wh.")), names.join(" "));
});

test("applyLayer refuses a broken tar and a path leaving the directory", { skip }, async () => {
  const broken = tarArchive(LAYER).subarray(0, 700);
  await assert.rejects(applyLayer([Buffer.concat([broken, Buffer.from("garbage".repeat(100))])], fs.mkdtempSync(path.join(work, "bad-"))), { code: "SOURCE_INVALID" });
  const outside = fs.mkdtempSync(path.join(work, "outside-"));
  const dir = fs.mkdtempSync(path.join(work, "escape-"));
  await applyLayer([tarArchive([{ path: "x", type: "symlink", linkpath: outside }, { path: "x/evil", data: Buffer.from("no") }])], dir).catch(() => {});
  assert.deepEqual(fs.readdirSync(outside), [], "nothing written through a symlink of the layer");
});

let reg: RunningRegistry | undefined;
before(async () => { if (!skip) reg = await startRegistry(); });
after(async () => { await reg?.stop(); });

test("RegistryLayerContent unpacks a layer of a registry image, checked against its diff_id", { skip, timeout: 120_000 }, async () => {
  const client = new RegistryClient({ credentials: staticCredentials({}) });
  const repo = { registry: reg!.host, repository: "idx/layers" };
  const first = gzipLayer(tarArchive([{ path: "./", type: "dir" }, { path: "one", data: Buffer.from("1") }]));
  const second = gzipLayer(tarArchive([{ path: "./", type: "dir" }, { path: "two", data: Buffer.from("2") }, { path: ".wh.one", data: Buffer.alloc(0) }]));
  // the same layer bytes, but the config names another tar: the unpack must refuse it
  const gz = zlib.gzipSync(tarArchive([{ path: "lie", data: Buffer.from("?") }]));
  const lying = { source: bytesSource(gz), digest: sha256Digest(gz), size: gz.length, diffId: sha256Digest(Buffer.from("another tar")) };
  let good, bad;
  try {
    good = await pushRunnableImage(client, repo, "good", [first, second]);
    bad = await pushRunnableImage(client, repo, "bad", [lying]);
  } finally {
    await client.close();
  }
  const content = new RegistryLayerContent({ insecureRegistries: [] });
  try {
    const dir = fs.mkdtempSync(path.join(work, "reg-"));
    await content.unpack(`${good.ref}@${good.digest}`, second.digest, dir);
    assert.equal(fs.readFileSync(path.join(dir, "two"), "utf8"), "2");
    assert.ok(fs.lstatSync(path.join(dir, "one")).isCharacterDevice(), "layer 2 alone: a whiteout of layer 1's file");
    await assert.rejects(content.unpack(`${good.ref}@${good.digest}`, lying.digest, fs.mkdtempSync(path.join(work, "none-"))), { code: "IMAGE_INVALID" });
    await assert.rejects(content.unpack(`${bad.ref}@${bad.digest}`, lying.digest, fs.mkdtempSync(path.join(work, "lie-"))), { code: "DIGEST_MISMATCH" });
  } finally {
    await content.close();
  }
});
