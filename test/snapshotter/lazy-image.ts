// The stand-in ImageMounts of the snapshotter's lazy-image tests, whose "mount" is an ordinary directory (what
// the real one does through the cache daemon is tested in daemon-image-mounts.test.ts and the containerd tests),
// a snapshotter served over it, and containerd's calls of a pull.
import { after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { serveSnapshots, type RunningService } from "../../src/snapshotter/service.ts";
import { Snapshotter, type SnapshotterOptions } from "../../src/snapshotter/snapshotter.ts";
import type { ImageForm, ImageMounts, LazyImage } from "../../src/snapshotter/image-mounts.ts";
import { codeOf, snapshotsClient, type SnapshotsClient } from "./client.ts";

export const M = `sha256:${"ab".repeat(32)}`;
export const M2 = `sha256:${"cd".repeat(32)}`;
export const REF = "127.0.0.1:5000/app:1";
export const DIGEST = `sha256:${"ef".repeat(32)}`;

/** A stand-in for the daemon's image mounts: a directory per image, every call recorded; acquire can be slow or fail. */
export class DirImageMounts implements ImageMounts {
  calls: string[] = [];
  /** warm() calls, apart: the other tests' expectations of `calls` stay as they were. */
  warmed: string[] = [];
  delayMs = 0;
  fail: Error | null = null;
  /** Manifests whose mount no daemon serves: reattach reports them, acquire as in use refuses them. */
  unserved = new Set<string>();
  /** The images acquire() was given, whole. */
  acquired: LazyImage[] = [];
  /** What lookup() answers, by ref (default "ordinary"), and the refs it was asked about. */
  forms = new Map<string, ImageForm>();
  lookups: string[] = [];
  lookupDelayMs = 0;
  lookupFail: Error | null = null;
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }
  async acquire(image: LazyImage, inUse = false): Promise<string> {
    this.calls.push(`acquire ${image.manifest} ${image.ref}`);
    this.acquired.push(image);
    await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.fail) throw this.fail;
    if (inUse && this.unserved.has(image.manifest)) throw new Error(`no daemon serves ${image.manifest}`);
    this.unserved.delete(image.manifest);
    const mnt = path.join(this.dir, image.manifest.slice(7, 15));
    fs.mkdirSync(mnt, { recursive: true });
    fs.writeFileSync(path.join(mnt, "from-image"), "lazy");
    return mnt;
  }
  async release(image: LazyImage): Promise<void> { this.calls.push(`release ${image.manifest}`); }
  async warm(image: LazyImage): Promise<void> {
    this.warmed.push(`warm ${image.manifest} ${image.ref}`);
    if (this.fail) throw this.fail;
  }
  async lookup(ref: string): Promise<ImageForm> {
    this.lookups.push(ref);
    await new Promise((r) => setTimeout(r, this.lookupDelayMs));
    if (this.lookupFail) throw this.lookupFail;
    return this.forms.get(ref) ?? "ordinary";
  }
  async reattach(inUse: LazyImage[], held: LazyImage[] = []): Promise<Map<string, Error>> {
    this.calls.push(`reattach ${inUse.map((i) => i.manifest).join(",")}${held.length ? ` held ${held.map((i) => i.manifest).join(",")}` : ""}`);
    if (this.fail) throw this.fail;
    await new Promise((r) => setTimeout(r, this.delayMs));
    this.calls.push("reattached");
    return new Map(inUse.filter((i) => this.unserved.has(i.manifest)).map((i) => [i.manifest, new Error(`no daemon serves ${i.manifest}`)]));
  }
}

const dirs: string[] = [];
after(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });

export interface Served { c: SnapshotsClient; images: DirImageMounts; root: string; snapshotter(): Snapshotter; restart(): Promise<void>; stop(): Promise<void> }

export async function serve(opts: Partial<Pick<SnapshotterOptions, "mountOnPullIdleMs" | "log" | "lookupTimeoutMs" | "layerContent" | "indexLocally">> = {}): Promise<Served> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "eod-snap-lazy-"));
  dirs.push(dir);
  const root = path.join(dir, "root");
  const address = path.join(dir, "eod.sock");
  const images = new DirImageMounts(path.join(dir, "images"));
  const log = opts.log ?? (() => {});
  let sn: Snapshotter;
  let svc: RunningService;
  const start = async () => {
    sn = await Snapshotter.open({ root, imageMounts: images, log, mountOnPullIdleMs: opts.mountOnPullIdleMs, lookupTimeoutMs: opts.lookupTimeoutMs, layerContent: opts.layerContent, indexLocally: opts.indexLocally });
    svc = await serveSnapshots(sn, address, log);
  };
  await start();
  const served: Served = {
    c: snapshotsClient(address), images, root, snapshotter: () => sn,
    async restart() { await served.stop(); await start(); served.c = snapshotsClient(address); },
    async stop() { served.c.close(); await svc.close(); await sn.close(); },
  };
  return served;
}

export const layerLabels = (chainId: string, manifest = M, extra: Record<string, string> = {}) => ({
  "containerd.io/snapshot.ref": chainId, "containerd.io/snapshot/eod.manifest": manifest,
  "containerd.io/snapshot/cri.image-ref": REF, "containerd.io/snapshot/cri.layer-digest": `sha256:${chainId.slice(-2).repeat(32)}`, ...extra,
});
export const rejects = (p: Promise<unknown>, code: grpc.status) => assert.rejects(p, (err: unknown) => codeOf(err) === code);

/** What containerd's metadata layer does on Prepare of a layer: ALREADY_EXISTS, then List with its filter. */
export async function pullLayers(c: SnapshotsClient, chain: string[], manifest = M, extra: Record<string, string> = {}): Promise<void> {
  let parent = "";
  for (const t of chain) {
    await rejects(c.prepare(`k8s.io/1/extract-${t}`, parent, layerLabels(t, manifest, extra)), grpc.status.ALREADY_EXISTS);
    const found = await c.list([`labels."containerd.io/snapshot.ref"==${t},parent==${JSON.stringify(parent)}`]);
    assert.equal(found.length, 1, t);
    assert.equal(found[0].kind, "COMMITTED");
    assert.equal(found[0].name, t);
    assert.equal((await c.stat(t)).parent, parent);
    parent = t;
  }
}

