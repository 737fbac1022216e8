// An eod-converted image read by Debian's containerd (1.6.20) with a snapshotter that is not ours (overlayfs):
// `ctr images pull` fetches and stores the manifest, the config and every layer without complaining about the
// manifest or the config (one diff_id per layer), and the unpack then stops at the first layer, whose media
// type no differ applies; CRI PullImage the same. What docs/containerd.md says of non-eod snapshotters.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { containerdMissing, startContainerd, type RunningContainerd } from "../helpers/containerd.ts";
import { criPullImage } from "../helpers/cri.ts";
import { eodAsync } from "../helpers/lazy.ts";
import { pushBusyboxImage } from "../helpers/push-image.ts";
import { startRegistry, type RunningRegistry } from "../helpers/registry.ts";
import { unavailable } from "../helpers/skip.ts";
import { OCI_FORM_TYPES } from "../../src/image/oci-form.ts";
import { RegistryClient, staticCredentials, type ImageManifest } from "../../src/remote/registry/index.ts";
import { stopInOrder } from "./stack.ts";

const skip = unavailable(containerdMissing());

let work = "";
let ref = "";
let manifest: ImageManifest;
let reg: RunningRegistry | undefined;
let containerd: RunningContainerd | undefined;
/** The unpack's refusal: the differ has no stream processor for our first layer (manifest.json). */
const REFUSED = new RegExp(`failed to extract layer sha256:[0-9a-f]{64}: failed to get stream processor for ${OCI_FORM_TYPES.manifest.replace(/[.+]/g, "\\$&")}: no processor for media-type`);

before(async () => {
  if (skip) return;
  work = fs.mkdtempSync(path.join(os.tmpdir(), "eod-ctd-other-"));
  reg = await startRegistry();
  const client = new RegistryClient({ credentials: staticCredentials({}) });
  try {
    await pushBusyboxImage(client, { registry: reg.host, repository: "eod/busybox" }, "src");
    const conv = await eodAsync(["convert", `${reg.host}/eod/busybox:src`, `${reg.host}/eod/busybox:eod`], { DOCKER_CONFIG: path.join(work, "no-docker-config") });
    assert.equal(conv.status, 0, conv.stderr);
    ref = `${reg.host}/eod/busybox:eod`;
    manifest = (await client.resolve(ref)).manifest as ImageManifest;
  } finally {
    await client.close();
  }
  containerd = await startContainerd({ cri: { snapshotter: "overlayfs" }, registryMirrors: [reg.host] });
});

after(() => stopInOrder(work, [() => containerd?.stop(), () => reg?.stop()]));

test("ctr images pull with overlayfs: manifest, config and layers stored; the unpack refuses our first layer by its media type", { skip, timeout: 120_000 }, async () => {
  const r = await containerd!.ctr(["images", "pull", "--plain-http", ref]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, REFUSED);
  assert.doesNotMatch(r.stderr, /diffIDs|unmarshal|invalid/i, "nothing wrong with the manifest or the config");
  const layers = manifest.layers.length;
  assert.match(await containerd!.ctrOk(["images", "check"]), new RegExp(`complete \\(${layers + 1}/${layers + 1}\\)`), "the config and every layer fetched");
  const config = JSON.parse(await containerd!.ctrOk(["content", "get", manifest.config.digest]));
  assert.deepEqual(config.rootfs.diff_ids, manifest.layers.map((l) => l.digest));
});

test("CRI PullImage with overlayfs fails the same way", { skip, timeout: 120_000 }, async () => {
  await assert.rejects(criPullImage(containerd!.address, ref), REFUSED);
});
