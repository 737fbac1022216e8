// The `eod snapshotter` process a test file drives: started in a temp dir before its tests (unless they are
// skipped), stopped after them with its temp dir removed, and a client of its socket.
import { after, before } from "node:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { startSnapshotter, type RunningSnapshotter } from "../helpers/containerd.ts";
import { unavailable } from "../helpers/skip.ts";
import { snapshotsClient, type SnapshotsClient } from "./client.ts";

export interface SnapshotterProcess {
  dir: string;
  root: string;
  address: string;
  sn: RunningSnapshotter;
  /** A client opened at start (crash tests open their own after a restart). */
  c: SnapshotsClient;
}

/** The tests' `skip` option: every snapshotter test needs root (it chowns upper dirs; some mount). */
export const skip = unavailable(process.getuid?.() !== 0 && "needs root (the snapshotter chowns upper dirs to their parent's owner; overlay mounts)");

/** Registers the file's before/after hooks; the returned function gives the running process inside a test. */
export function useSnapshotterProcess(prefix: string): () => SnapshotterProcess {
  let p: SnapshotterProcess | undefined;
  before(async () => {
    if (skip) return;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    const root = path.join(dir, "root");
    const address = path.join(dir, "eod.sock");
    const sn = await startSnapshotter({ root, address, cacheDir: path.join(dir, "cache") });
    p = { dir, root, address, sn, c: snapshotsClient(address) };
  });
  after(async () => {
    if (!p) return;
    p.c.close();
    await p.sn.stop();
    fs.rmSync(p.dir, { recursive: true, force: true });
  });
  return () => p!;
}
