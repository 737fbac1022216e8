// An index image with a prefetch list (eod index --prefetch / --prefetch-from), end to end on the real kernel
// (fanotify frontend) and the real CNCF registry on 127.0.0.1 behind a counting proxy: the list goes into the
// index's manifest.json and travels with the pushed artifact; after `eod mount <ordinary ref>` the daemon
// fetches the listed files' pieces of the layers' seek indexes, so reading them asks the registry for nothing,
// while an unlisted file still misses; a listed path not in the image is warned about and left out; eod
// inspect shows the list; the flags' usage errors.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type http from "node:http";
import { pushLayoutAsIs, writeGzipLayout, type GzipLayout } from "../helpers/gzip-oci-layout.ts";
import { haveRoot, tempDir } from "../helpers/kernel.ts";
import { eodAsync, lazyWorkspace, readInChild } from "../helpers/lazy.ts";
import { extractLayers } from "../helpers/overlay-extract.ts";
import { registryProxy, startRegistry, type RegistryProxy, type RunningRegistry } from "../helpers/registry.ts";
import { unavailable } from "../helpers/skip.ts";
import { kernelSupportsPreContent } from "../../src/sys/fanotify.ts";
import { TRACE_MEDIA_TYPE } from "../../src/image/prefetch.ts";
import { RegistryClient, staticCredentials } from "../../src/remote/registry/index.ts";

const skip = unavailable(!haveRoot() ? "needs root to mount" : kernelSupportsPreContent().ok ? false : "kernel lacks fanotify pre-content events");

let work = "";
let image: GzipLayout;
let list = "";
let trace = "";
/** The registry, the counting proxy in front of it, and a client of it. */
let reg: RunningRegistry;
let proxy: RegistryProxy;
let client: RegistryClient;
/** The layers extracted by GNU tar; the index directory and what eod index printed on stderr. */
let expected = "";
let indexDir = "";
let indexStderr = "";
let ws: ReturnType<typeof lazyWorkspace>;
const env = () => ({ DOCKER_CONFIG: path.join(work, "no-docker-config") });
/** Layer GETs the proxy answered. */
let layerGets = 0;

before(async () => {
  work = tempDir("eod-index-prefetch-");
  ws = lazyWorkspace(work);
  image = writeGzipLayout(work, "plain");
  // usr/bin/tool (layer 1, 2 MiB: several spans) whole, and etc/hosts (layer 2) as a trace names it.
  list = path.join(work, "prefetch.list");
  fs.writeFileSync(list, "# listed\n/usr/bin/tool\n/not/in/image\n");
  trace = path.join(work, "trace.json");
  fs.writeFileSync(trace, JSON.stringify({ mediaType: TRACE_MEDIA_TYPE, image: "sha256:0", files: [{ path: "/etc/hosts", ranges: [[0, 512]] }] }));
  if (skip) return;
  reg = await startRegistry();
  proxy = await registryProxy(reg.host, {
    body(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) {
      const digest = /\/blobs\/(sha256:[0-9a-f]{64})/.exec(req.url ?? "")?.[1];
      if (req.method === "GET" && digest && image.layerDigests.includes(digest)) layerGets++;
      res.end(body);
    },
  });
  client = new RegistryClient({ credentials: staticCredentials({}) });
  await pushLayoutAsIs(client, { registry: reg.host, repository: "eod/pre" }, "v1", image);
  expected = path.join(work, "expected");
  extractLayers(image.tarFiles, expected, work);
  indexDir = path.join(work, "index");
  const r = await eodAsync(["index", `${reg.host}/eod/pre:v1`, "--push", "-o", indexDir, "--span", String(256 << 10), "--prefetch", list, "--prefetch-from", trace], env());
  assert.equal(r.status, 0, r.stderr);
  indexStderr = r.stderr;
});

after(async () => {
  ws?.teardown(); // unmounts, stops the daemons, removes work
  await client?.close();
  await proxy?.close();
  await reg?.stop();
});

async function eod(args: string[]): Promise<string> {
  const r = await eodAsync(args, env());
  assert.equal(r.status, 0, `eod ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

type BlobStatus = { prefetches: number; inFlight: number; misses: number };
const blobsOf = async (cache: string): Promise<BlobStatus[]> => JSON.parse(await eod(["status", "--cache-dir", cache, "--json"])).blobs;
const sha = (file: string) => createHash("sha256").update(fs.readFileSync(file)).digest("hex");

test("the index's manifest holds the list (--prefetch entries, then the trace's), a path not in the image warned about and left out", { skip }, async () => {
  const m = JSON.parse(fs.readFileSync(path.join(indexDir, "manifest.json"), "utf8"));
  assert.deepEqual(m.prefetch, [{ path: "/usr/bin/tool" }, { path: "/etc/hosts", ranges: [[0, 512]] }]);
  assert.match(indexStderr, /warning: prefetch entry \/not\/in\/image is not a file or directory of the image: skipped/);
  const shown = await eod(["inspect", indexDir, "--summary"]);
  assert.match(shown, /prefetch list: 2 entries[^\n]*\n {2}\/usr\/bin\/tool\n {2}\/etc\/hosts \(1 byte range\(s\)\)\n/);
  const json = JSON.parse(await eod(["inspect", indexDir, "--summary", "--json"]));
  assert.deepEqual(json.prefetch, m.prefetch);
});

test("a mount of the ordinary image prefetches the listed files: reading them asks the registry for nothing, an unlisted file still misses", { skip, timeout: 180_000 }, async () => {
  const { cache, mnt } = ws.fresh();
  await eod(["mount", `${proxy.host}/eod/pre:v1`, mnt, "--cache-dir", cache]);
  try {
    let blobs = await blobsOf(cache);
    for (let i = 0; i < 200 && !(blobs.some((b) => b.prefetches > 0) && blobs.every((b) => b.inFlight === 0)); i++) {
      await new Promise((r) => setTimeout(r, 50));
      blobs = await blobsOf(cache);
    }
    assert.equal(blobs.length, 3);
    assert.ok(blobs[0].prefetches > 0 && blobs[1].prefetches > 0 && blobs.every((b) => b.inFlight === 0), `prefetch of layers 1 and 2 ran and finished: ${JSON.stringify(blobs)}`);
    assert.equal(blobs[2].prefetches, 0, "nothing listed in layer 3");
    const gets = layerGets;
    const misses = blobs.map((b) => b.misses);
    for (const f of ["usr/bin/tool", "etc/hosts"]) assert.equal((await readInChild(path.join(mnt, f))).sha256, sha(path.join(expected, f)), f);
    assert.equal(layerGets, gets, "reading the listed files asked the registry for nothing");
    assert.deepEqual((await blobsOf(cache)).map((b) => b.misses), misses, "no miss in the listed files");
    assert.equal((await readInChild(path.join(mnt, "opt/old/fresh"))).sha256, sha(path.join(expected, "opt/old/fresh")));
    assert.ok(layerGets > gets, "an unlisted file is fetched on demand");
    assert.ok((await blobsOf(cache))[2].misses > misses[2], "and missed");
  } finally {
    await eod(["umount", mnt, "--cache-dir", cache]);
  }
});

test("eod index --prefetch / --prefetch-from: usage errors say what is wrong, nothing written", async () => {
  const bad = path.join(work, "bad.list");
  fs.writeFileSync(bad, "usr/bin/tool\n");
  const cases: Array<[string[], RegExp]> = [
    [["--prefetch", path.join(work, "missing.list")], /Cannot read .*missing\.list: ENOENT/],
    [["--prefetch", bad], /bad\.list line 1: "usr\/bin\/tool" is not an absolute path/],
    [["--prefetch-from", list], /Cannot parse .*prefetch\.list/],
  ];
  for (const [flags, pattern] of cases) {
    const r = await eodAsync(["index", image.dir, "-o", path.join(work, "x"), ...flags], env());
    assert.equal(r.status, 2, `${flags.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
  }
  assert.ok(!fs.existsSync(path.join(work, "x")), "nothing written");
});
