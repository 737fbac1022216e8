// snapshotter.index_locally with Debian's containerd + runc: a CRI pull of an ordinary image nobody indexed has
// the snapshotter index it on the node (each layer downloaded once, whole; containerd downloads nothing more) and
// its container runs on the lazy mount; after the image is removed and collected, a new pull downloads no layer
// (the index is kept in the cache directory) and the container reads its file right.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { containerdMissing } from "../helpers/containerd.ts";
import { criPullImage } from "../helpers/cri.ts";
import { busyboxLayer, gzipLayer, pushRunnableImage } from "../helpers/push-image.ts";
import { unavailable } from "../helpers/skip.ts";
import { tarArchive } from "../helpers/tar-layer.ts";
import { mounts } from "../../src/daemon/mountinfo.ts";
import { RegistryClient, staticCredentials } from "../../src/remote/registry/index.ts";
import { kernelSupportsPreContent } from "../../src/sys/fanotify.ts";
import { countingRegistry, type CountingRegistry } from "./index-registry.ts";
import { startEodContainerd, stopInOrder, type EodContainerd } from "./stack.ts";

const missing = containerdMissing();
const skip = unavailable(missing || (kernelSupportsPreContent().ok ? false : "kernel lacks fanotify pre-content events or file-backed EROFS"));

const DATA = randomBytes(1 << 20);
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const [C1, C2] = [1, 2].map((n) => `eod-index-locally-${process.pid}-c${n}`);

let work = "";
let registry: CountingRegistry | undefined;
let stack: EodContainerd | undefined;
const layers = [gzipLayer(busyboxLayer()), gzipLayer(tarArchive([{ path: "data/", type: "dir" }, { path: "data/file", data: DATA }]))];

before(async () => {
  if (skip) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), "eod-ctd-index-locally-"));
  registry = await countingRegistry();
  const { reg, proxy } = registry;
  const client = new RegistryClient({ credentials: staticCredentials({}) });
  try {
    await pushRunnableImage(client, { registry: reg.host, repository: "plain/app" }, "1", layers, { Env: ["PATH=/bin"], Cmd: ["sh"] });
  } finally {
    await client.close();
  }
  stack = await startEodContainerd(work, { registryMirrors: [proxy.host], snapshotterArgs: ["--index-locally"] });
});

after(() => stopInOrder(work, [() => stack?.containerd.stop(), () => stack?.snapshotter.stop(), () => registry?.stop()]));

const why = () => stack?.why() ?? "";
const imageMounts = () => mounts().filter((m) => m.fsType === "erofs" && m.mountPoint.startsWith(`${stack!.root}/images/`));
const layerGets = () => registry!.blobGets(layers.map((l) => l.digest));
const requests = () => registry!.requests;

async function ctrOk(args: string[]): Promise<string> {
  const r = await stack!.containerd.ctr(args);
  assert.equal(r.code, 0, `ctr ${args.join(" ")}: ${r.stderr}${why()}`);
  return r.stdout;
}

test("index_locally: the first pull indexes the image on the node (each layer once), later pulls fetch no layer; containers run lazily", { skip, timeout: 300_000 }, async () => {
  const ref = `${registry!.proxy.host}/plain/app:1`;
  requests().length = 0;
  await criPullImage(stack!.containerd.address, ref);
  const whole = layerGets().filter((r) => r.range === undefined);
  assert.deepEqual(whole.map((r) => r.path.split("/").pop()).sort(), layers.map((l) => l.digest).sort(), `each layer downloaded whole once, by the index build: ${JSON.stringify(requests())}${why()}`);
  assert.equal(fs.readdirSync(path.join(stack!.root, "snapshots")).length, 0, `nothing unpacked${why()}`);
  assert.ok(fs.readdirSync(path.join(work, "cache", "indexes")).length === 1, "the index is kept in the cache directory");
  const out = await ctrOk(["run", "--rm", "--snapshotter", "eod", ref, C1, "sh", "-c", "sha256sum /data/file"]);
  assert.equal(out.replace(/\r/g, ""), `${sha(DATA)}  /data/file\n`);
  await stack!.containerd.collectGarbage();
  assert.equal(imageMounts().length, 0, `the container gone, its mount goes${why()}`);

  const names = (await ctrOk(["images", "ls", "-q"])).split("\n").filter(Boolean);
  await ctrOk(["images", "rm", "--sync", ...names]);
  await stack!.containerd.collectGarbage();
  requests().length = 0;
  await criPullImage(stack!.containerd.address, ref);
  assert.deepEqual(layerGets(), [], `the second pull fetches no layer: ${JSON.stringify(requests())}${why()}`);
  const again = await ctrOk(["run", "--rm", "--snapshotter", "eod", ref, C2, "sh", "-c", "sha256sum /data/file"]);
  assert.equal(again.replace(/\r/g, ""), `${sha(DATA)}  /data/file\n`);
  assert.ok(layerGets().every((r) => r.range !== undefined), "the container's reads were ranges");
});
