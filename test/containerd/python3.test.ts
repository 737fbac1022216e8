// The Debian corpus (bench/corpus.ts: minbase + python3) as an ordinary gzip image in the local registry,
// `eod convert`ed to another tag, pulled through CRI (kubelet's call) with the eod snapshotter and run with
// `ctr run --snapshotter eod`: python3 imports json and prints the right thing, and the registry served only a
// small fraction of the converted image's data blobs (counted by a proxy in front of it, by digest).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { debianCorpus } from "../../bench/corpus.ts";
import { corpusLayer, pushCorpusImage } from "../../bench/lib/corpus-image.ts";
import { containerdMissing } from "../helpers/containerd.ts";
import { criPullImage } from "../helpers/cri.ts";
import { eodAsync } from "../helpers/lazy.ts";
import { registryProxy, startRegistry, type RegistryProxy, type RunningRegistry } from "../helpers/registry.ts";
import { unavailable } from "../helpers/skip.ts";
import { ANNOTATIONS } from "../../src/image/oci-form.ts";
import { RegistryClient, staticCredentials } from "../../src/remote/registry/index.ts";
import { kernelSupportsPreContent } from "../../src/sys/fanotify.ts";
import { startEodContainerd, stopInOrder, type EodContainerd } from "./stack.ts";

const missing = containerdMissing();
const skip = unavailable(missing || (kernelSupportsPreContent().ok ? false : "kernel lacks fanotify pre-content events or file-backed EROFS"));

let work = "";
let reg: RunningRegistry | undefined;
let proxy: RegistryProxy | undefined;
let stack: EodContainerd | undefined;
/** Body bytes the proxy sent per blob digest. */
const served = new Map<string, number>();

before(async () => {
  if (skip) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), "eod-ctd-python3-"));
  reg = await startRegistry();
  proxy = await registryProxy(reg.host, {
    body(req, res, body) {
      const digest = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(new URL(req.url ?? "/", "http://x").pathname)?.[1];
      if (digest) served.set(digest, (served.get(digest) ?? 0) + body.length);
      res.end(body);
    },
  });
});

after(() => stopInOrder(work, [() => stack?.containerd.stop(), () => stack?.snapshotter.stop(), () => proxy?.close(), () => reg?.stop()]));

test("the Debian image, converted, pulled through CRI with the eod snapshotter, runs python3 having fetched a small part of it", { skip, timeout: 900_000 }, async () => {
  const corpus = await debianCorpus();
  const source = await pushCorpusImage(reg!.host, "eod/debian", "src", await corpusLayer(corpus));
  const ref = `${proxy!.host}/eod/debian:eod`; // through the counting proxy: what CRI and the snapshotter fetch
  const env = { DOCKER_CONFIG: path.join(work, "no-docker-config") };
  const conv = await eodAsync(["convert", source, `${reg!.host}/eod/debian:eod`], env);
  assert.equal(conv.status, 0, conv.stderr);

  const client = new RegistryClient({ credentials: staticCredentials({}) });
  let manifest;
  try { ({ manifest } = await client.resolve(ref)); } finally { await client.close(); }
  const dataBlobs = manifest.layers.filter((l) => { const t = l.annotations?.[ANNOTATIONS.title] ?? ""; return t.startsWith("blobs/") && !t.endsWith(".ctab"); });
  assert.ok(dataBlobs.length > 0, "the converted image has data blobs");
  const imageBytes = manifest.layers.reduce((n, l) => n + l.size, 0);
  const dataBytes = dataBlobs.reduce((n, l) => n + l.size, 0);
  served.clear();

  stack = await startEodContainerd(work, { registryMirrors: [proxy!.host] });
  const { containerd } = stack;

  await criPullImage(containerd.address, ref);
  assert.deepEqual(dataBlobs.filter((l) => served.has(l.digest)), [], "the pull fetched no data blob");

  const script = "import json, sys; print(json.dumps({'python': sys.version_info[:2] >= (3, 11), 'sum': sum(range(10))}))";
  const run = await containerd.ctr(["run", "--rm", "--snapshotter", "eod", ref, "python3-json", "python3", "-c", script], { timeoutMs: 300_000 });
  assert.equal(run.code, 0, `ctr run: ${run.stderr}${stack.why()}`);
  assert.equal(run.stdout.trim(), '{"python": true, "sum": 45}');

  const fetched = dataBlobs.reduce((n, l) => n + (served.get(l.digest) ?? 0), 0);
  const note = `fetched ${fetched} of ${dataBytes} bytes of data blobs (image ${imageBytes} bytes)`;
  assert.ok(fetched > 0, `python3 ran from the lazy image, so some data came from the registry: ${note}`);
  assert.ok(fetched < 0.1 * dataBytes, `a small fraction: ${note}`);
  console.log(`# ${note}`);
});
