// Mounts an image with the real kernel and compares the mounted tree with its source: the check most build
// tests end with.
import assert from "node:assert/strict";
import { compareTrees } from "./compare-trees.ts";
import { mountErofs } from "./kernel.ts";

/** Mounts `image` (extra mount `data` such as device= options), asserts the tree equals `src`, unmounts. */
export async function mountAndCompare(src: string, image: string, data?: string): Promise<void> {
  const m = await mountErofs(image, data);
  try {
    assert.deepEqual(await compareTrees(src, m.dir), []);
  } finally {
    m.unmount();
  }
}
