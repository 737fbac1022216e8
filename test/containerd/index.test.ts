// Ordinary images started lazily through their eod index, with Debian's containerd + runc: a busybox-static
// image pushed as is (gzip layers, as any client pushes them), indexed with `eod index <ref> --push` (the
// referrer artifact, found through the referrers tag: the test registry has no referrers API), pulled through CRI
// (kubelet's call) with the eod snapshotter. The registry serves the manifests and the config for the pull and no
// layer blob; the container reads its file right, the layers' bytes coming as ranges once it runs. An image
// nobody indexed is unpacked by containerd as before. An unindexed image that shares the indexed one's first
// layer, pulled before it, keeps its real layer; pulled after it, has that layer unpacked by the snapshotter (the
// indexed image's lazy record has no content of its own); both run right either way.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { containerdMissing } from "../helpers/containerd.ts";
import { criPullImage } from "../helpers/cri.ts";
import { eodAsync } from "../helpers/lazy.ts";
import { busyboxLayer, gzipLayer, pushRunnableImage, type GzipLayer } from "../helpers/push-image.ts";
import { unavailable } from "../helpers/skip.ts";
import { tarArchive } from "../helpers/tar-layer.ts";
import { mounts } from "../../src/daemon/mountinfo.ts";
import { RegistryClient, staticCredentials } from "../../src/remote/registry/index.ts";
import { kernelSupportsPreContent } from "../../src/sys/fanotify.ts";
import { countingRegistry, type CountingRegistry } from "./index-registry.ts";
import { startEodContainerd, stopInOrder, type EodContainerd } from "./stack.ts";

const missing = containerdMissing();
const skip = unavailable(missing || (kernelSupportsPreContent().ok ? false : "kernel lacks fanotify pre-content events or file-backed EROFS"));

const DATA = randomBytes(3 << 20); // several seek-index spans: the container reads it whole
const PLAIN = randomBytes(200_000);
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
/** runc keeps its state by container id in one directory for every containerd on the machine: ids unique to this run. */
const [C1, C2, C3, C4] = [1, 2, 3, 4].map((n) => `eod-index-${process.pid}-c${n}`);

let work = "";
let registry: CountingRegistry | undefined;
let stack: EodContainerd | undefined;
const base = gzipLayer(busyboxLayer());
const indexedTop = gzipLayer(tarArchive([{ path: "data/", type: "dir" }, { path: "data/file", data: DATA }]));
const plainTop = gzipLayer(tarArchive([{ path: "data/", type: "dir" }, { path: "data/plain", data: PLAIN }]));
const RUN = { Env: ["PATH=/bin"], Cmd: ["sh"] };

before(async () => {
  if (skip) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), "eod-ctd-index-"));
  registry = await countingRegistry();
  const { reg, proxy } = registry;
  const client = new RegistryClient({ credentials: staticCredentials({}) });
  try {
    const push = (repository: string, layers: GzipLayer[]) => pushRunnableImage(client, { registry: reg.host, repository }, "1", layers, RUN);
    await push("idx/busybox", [base, indexedTop]);
    await push("plain/busybox", [base, plainTop]);
    await push("mixed/busybox", [base, plainTop]);
  } finally {
    await client.close();
  }
  const indexed = await eodAsync(["index", `${reg.host}/idx/busybox:1`, "--push"], { DOCKER_CONFIG: path.join(work, "no-docker-config") });
  assert.equal(indexed.status, 0, `eod index --push: ${indexed.stderr}`);
  stack = await startEodContainerd(work, { registryMirrors: [proxy.host] });
});

after(() => stopInOrder(work, [() => stack?.containerd.stop(), () => stack?.snapshotter.stop(), () => registry?.stop()]));

const why = () => stack?.why() ?? "";

async function ctrOk(args: string[]): Promise<string> {
  const r = await stack!.containerd.ctr(args);
  assert.equal(r.code, 0, `ctr ${args.join(" ")}: ${r.stderr}${why()}`);
  return r.stdout;
}

/** The lazy image mounts (erofs under <root>/images). */
const imageMounts = () => mounts().filter((m) => m.fsType === "erofs" && m.mountPoint.startsWith(`${stack!.root}/images/`));
/** GETs of the blobs `layers` name since `from`. */
const layerGets = (layers: GzipLayer[], from = 0) => registry!.blobGets(layers.map((l) => l.digest), from);
const requests = () => registry!.requests;
const proxyHost = () => registry!.proxy.host;

async function removeContainer(id: string): Promise<void> {
  await ctrOk(["containers", "delete", id]);
  await stack!.containerd.collectGarbage();
}

test("an indexed image: the CRI pull fetches no layer blob, the container reads its file through the lazy mount", { skip, timeout: 300_000 }, async () => {
  const ref = `${proxyHost()}/idx/busybox:1`;
  requests().length = 0;
  await criPullImage(stack!.containerd.address, ref);
  assert.deepEqual(layerGets([base, indexedTop]), [], `no layer blob for the pull: ${JSON.stringify(requests())}${why()}`);
  const snapshots = await ctrOk(["snapshots", "--snapshotter", "eod", "ls"]);
  assert.equal(fs.readdirSync(path.join(stack!.root, "snapshots")).length, 0, `no layer unpacked:\n${snapshots}${why()}`);

  const started = requests().length;
  const out = await ctrOk(["run", "--snapshotter", "eod", ref, C1, "sh", "-c", "sha256sum /data/file; cat /etc/passwd"]);
  assert.equal(out.replace(/\r/g, ""), `${sha(DATA)}  /data/file\nroot:x:0:0:root:/:/bin/sh\n`);
  const [image] = imageMounts();
  assert.ok(image, `the image is mounted under ${stack!.root}/images${why()}`);
  const gets = layerGets([base, indexedTop], started);
  assert.ok(gets.length > 0, "the container's reads came from the original layers");
  assert.ok(gets.every((r) => r.range !== undefined), `only ranges of the layers: ${JSON.stringify(gets)}`);
  await removeContainer(C1);
  assert.equal(imageMounts().length, 0, `its last snapshot removed, the image is unmounted${why()}`);
});

test("an image nobody indexed is unpacked by containerd as before", { skip, timeout: 300_000 }, async () => {
  const ref = `${proxyHost()}/plain/busybox:1`;
  requests().length = 0;
  await criPullImage(stack!.containerd.address, ref);
  assert.ok(layerGets([plainTop]).some((r) => r.method === "GET" && r.range === undefined), `the layer was downloaded whole: ${JSON.stringify(requests())}`);
  const out = await ctrOk(["run", "--rm", "--snapshotter", "eod", ref, C2, "sh", "-c", "sha256sum /data/plain"]);
  assert.equal(out.replace(/\r/g, ""), `${sha(PLAIN)}  /data/plain\n`);
  assert.equal(imageMounts().length, 0, "no lazy mount for it");
});

/** Removes every image of CRI's namespace and collects its snapshots: the next pulls start from nothing. */
async function removeImages(): Promise<void> {
  const names = (await ctrOk(["images", "ls", "-q"])).split("\n").filter(Boolean);
  if (names.length) await ctrOk(["images", "rm", "--sync", ...names]);
  await stack!.containerd.collectGarbage();
}

test("an unindexed image sharing the indexed one's first layer, pulled first: both run right, the indexed one's own layer still lazy", { skip, timeout: 300_000 }, async () => {
  const mixed = `${proxyHost()}/mixed/busybox:1`;
  const indexed = `${proxyHost()}/idx/busybox:1`;
  await removeImages();
  await criPullImage(stack!.containerd.address, mixed); // its first layer, the indexed image's too, is unpacked
  requests().length = 0;
  await criPullImage(stack!.containerd.address, indexed);
  assert.deepEqual(layerGets([base, indexedTop]), [], `no layer blob for the indexed image's pull: ${JSON.stringify(requests())}${why()}`);
  const a = await ctrOk(["run", "--rm", "--snapshotter", "eod", mixed, C3, "sh", "-c", "sha256sum /data/plain; test -e /data/file && echo leak || echo clean"]);
  assert.equal(a.replace(/\r/g, ""), `${sha(PLAIN)}  /data/plain\nclean\n`);
  const b = await ctrOk(["run", "--rm", "--snapshotter", "eod", indexed, C4, "sh", "-c", "sha256sum /data/file; test -e /data/plain && echo leak || echo clean"]);
  assert.equal(b.replace(/\r/g, ""), `${sha(DATA)}  /data/file\nclean\n`);
});

test("an unindexed image sharing the indexed one's first layer, pulled after it: that layer is unpacked for it (fetched once, whole), both run right", { skip, timeout: 300_000 }, async () => {
  const mixed = `${proxyHost()}/mixed/busybox:1`;
  const indexed = `${proxyHost()}/idx/busybox:1`;
  await removeImages();
  await criPullImage(stack!.containerd.address, indexed);
  // containerd finds the shared layer in its namespace (the indexed image's lazy record, whose mount is that
  // whole image) and unpacks the mixed image's own layer over it: the snapshotter unpacks the shared one first
  requests().length = 0;
  await criPullImage(stack!.containerd.address, mixed);
  assert.equal(layerGets([base]).filter((r) => r.method === "GET").length, 1, `the shared layer fetched once for it: ${JSON.stringify(requests())}${why()}`);
  assert.deepEqual(layerGets([indexedTop]), [], "the indexed image's own layer stays lazy");
  assert.match(stack!.snapshotter.output(), /a lower layer of an indexed image unpacked/, "the snapshotter unpacked the shared layer, not containerd");
  const a = await ctrOk(["run", "--rm", "--snapshotter", "eod", mixed, C3, "sh", "-c", "sha256sum /data/plain; test -e /data/file && echo leak || echo clean"]);
  assert.equal(a.replace(/\r/g, ""), `${sha(PLAIN)}  /data/plain\nclean\n`);
  const b = await ctrOk(["run", "--rm", "--snapshotter", "eod", indexed, C4, "sh", "-c", "sha256sum /data/file; test -e /data/plain && echo leak || echo clean"]);
  assert.equal(b.replace(/\r/g, ""), `${sha(DATA)}  /data/file\nclean\n`);
});
