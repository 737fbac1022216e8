// The stack the containerd tests run on: the eod snapshotter (root, socket and cache directory in the test's
// work dir) and a containerd whose CRI plugin pulls through it, stopped in the order that leaves nothing behind.
import fs from "node:fs";
import path from "node:path";
import { startContainerd, startSnapshotter, type RunningContainerd, type RunningSnapshotter } from "../helpers/containerd.ts";

export interface EodContainerd {
  /** The snapshotter's root: metadata.db, snapshots/<id>/{fs,work}, images/<hex>/mnt. */
  root: string;
  snapshotter: RunningSnapshotter;
  containerd: RunningContainerd;
  /** The snapshotter's and containerd's recent output, for assertion messages. */
  why(): string;
}

/** Starts the snapshotter in `work` (with `snapshotterArgs`), then containerd with it as plugin "eod" and CRI's snapshotter. */
export async function startEodContainerd(work: string, opts: { registryMirrors: string[]; snapshotterArgs?: string[] }): Promise<EodContainerd> {
  const root = path.join(work, "snapshotter");
  const address = path.join(work, "eod.sock");
  const snapshotter = await startSnapshotter({ root, address, cacheDir: path.join(work, "cache"), args: opts.snapshotterArgs });
  let containerd: RunningContainerd;
  try {
    containerd = await startContainerd({ proxySnapshotter: { name: "eod", address }, cri: { snapshotter: "eod" }, registryMirrors: opts.registryMirrors });
  } catch (err) {
    await snapshotter.stop();
    throw err;
  }
  containerd.registerMountDir(root);
  const why = () => `\nsnapshotter:\n${snapshotter.output().slice(-4000)}\ncontainerd:\n${containerd.logTail()}`;
  return { root, snapshotter, containerd, why };
}

/**
 * Runs every step even when one fails, then removes `work`: containerd first (containers and their snapshots),
 * then the snapshotter (its image mounts, the cache daemon), then whatever served the images.
 * @throws AggregateError of the steps that failed
 */
export async function stopInOrder(work: string, steps: Array<() => Promise<void> | undefined>): Promise<void> {
  const errors: unknown[] = [];
  for (const step of steps) { try { await step(); } catch (e) { errors.push(e); } }
  if (work) fs.rmSync(work, { recursive: true, force: true });
  if (errors.length) throw new AggregateError(errors, "cleanup failed");
}
