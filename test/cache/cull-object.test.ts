// `eod cull <blob>` with kernel-owned cache files (fscache) goes through the core's culler: the same eviction,
// counters and refusals as a budget cull. The kernel's side is faked here (a list of files and a cull that
// refuses a held one); the VM e2e (test/vm/fscache-e2e.ts step 6) runs it against real cachefiles.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Culler } from "../../src/cache/cull.ts";
import type { KernelObject, KernelObjects } from "../../src/cache/object-eviction.ts";

function kernel(dir: string, held: Set<string>): KernelObjects & { files: KernelObject[] } {
  const files: KernelObject[] = [{ key: "a".repeat(64), bytes: 4096, mtimeMs: 1 }, { key: "b".repeat(64), bytes: 8192, mtimeMs: 2 }];
  return {
    files, dir, runLevels: { blocksPct: 0, filesPct: 0 },
    list: () => [...files],
    openBytes: () => new Map(),
    cull: (o) => {
      if (held.has(o.key)) return "busy";
      const i = files.findIndex((f) => f.key === o.key);
      if (i < 0) return "gone";
      files.splice(i, 1);
      return "culled";
    },
  };
}

test("cullObject culls one whole object through the culler, counted once; refusals and unknown keys are USAGE errors", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "eod-cull-object-"));
  try {
    const culler = new Culler(dir, { size: 0, highPct: 95, lowPct: 85 }, 0, () => []);
    assert.throws(() => culler.cullObject("a".repeat(64)), { code: "USAGE", message: /evicts chunks/ });
    const held = new Set(["b".repeat(64)]);
    const k = kernel(dir, held);
    culler.useObjects(k);
    culler.cullObject("a".repeat(64));
    assert.deepEqual(k.files.map((f) => f.key), ["b".repeat(64)]);
    assert.throws(() => culler.cullObject("b".repeat(64)), { code: "USAGE", message: /in use by a mount/ });
    assert.throws(() => culler.cullObject("c".repeat(64)), { code: "USAGE", message: /no cache file/ });
    const s = culler.stats();
    assert.equal(s.objectEvictions, 1);
    assert.equal(s.evictedBytes, 4096);
    assert.equal(s.refusedInUse, 1);
    assert.equal(s.evictions, 0);
    culler.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
