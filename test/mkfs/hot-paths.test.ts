// Which tar entries a streaming layer build takes as listed: the path or a directory above it, and paths
// through symlinks in either stream order (chains included, loops bounded).
import { test } from "node:test";
import assert from "node:assert/strict";
import { HotPaths } from "../../src/mkfs/layers/hot-paths.ts";

const comps = (p: string) => p.split("/").filter(Boolean).map((c) => Buffer.from(c));

test("a listed path and everything under a listed directory", () => {
  const h = new HotPaths([{ path: "/etc/conf" }, { path: "/app/" }]);
  assert.ok(h.has(comps("etc/conf")));
  assert.ok(h.has(comps("app/lib/a.so")));
  assert.ok(!h.has(comps("etc/other")));
  assert.ok(!h.has(comps("etc")), "a directory above a listed file is not listed");
  assert.ok(new HotPaths([{ path: "/" }]).has(comps("any/thing")));
});

test("paths through symlinks, whichever comes first in the stream, and chains of them", () => {
  const h = new HotPaths([{ path: "/lib/x86_64-linux-gnu/libz.so.1" }, { path: "/usr/bin/python3" }]);
  // the file's own symlink before the directory symlink that leads to it
  h.symlink(comps("usr/lib/x86_64-linux-gnu/libz.so.1"), Buffer.from("libz.so.1.2.13"));
  h.symlink(comps("lib"), Buffer.from("usr/lib"));
  assert.ok(h.has(comps("usr/lib/x86_64-linux-gnu/libz.so.1.2.13")));
  h.symlink(comps("usr/bin/python3"), Buffer.from("../lib/../bin/./python3.11"));
  assert.ok(h.has(comps("usr/bin/python3.11")), "resolved lexically, .. included");
  assert.ok(!h.has(comps("usr/lib/x86_64-linux-gnu/libc.so.6")));
  // a loop ends
  const loop = new HotPaths([{ path: "/a/f" }]);
  loop.symlink(comps("a"), Buffer.from("b"));
  loop.symlink(comps("b"), Buffer.from("a"));
  assert.ok(loop.has(comps("b/f")));
});
