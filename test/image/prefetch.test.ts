import { test } from "node:test";
import assert from "node:assert/strict";
import { EodError } from "../../src/errors.ts";
import { checkPrefetch, mergeRanges, parsePrefetchList, parseTrace, resolvePath, TRACE_MEDIA_TYPE } from "../../src/image/prefetch.ts";

test("parsePrefetchList() takes absolute paths, skips comments and blank lines, normalises, refuses .. and relative paths", () => {
  assert.deepEqual(parsePrefetchList("# hot\n/usr/bin/python3\n\n  /usr//lib/./x/ \n", "list"), [{ path: "/usr/bin/python3" }, { path: "/usr/lib/x" }]);
  assert.throws(() => parsePrefetchList("usr/bin\n", "list"), (e) => e instanceof EodError && e.code === "USAGE" && /line 1/.test(e.message));
  assert.throws(() => parsePrefetchList("/a/../../etc\n", "list"), /contains "\.\."/);
});

test("parseTrace() and checkPrefetch() refuse what is not a trace or a well-formed list", () => {
  const t = parseTrace(JSON.stringify({ mediaType: TRACE_MEDIA_TYPE, image: "sha256:x", files: [{ path: "/a", ranges: [[0, 4096]] }] }), "t");
  assert.deepEqual(t.files, [{ path: "/a", ranges: [[0, 4096]] }]);
  assert.throws(() => parseTrace("{}", "t"), /not an eod trace/);
  assert.throws(() => parseTrace("{", "t"), /Cannot parse t/);
  for (const bad of [{}, [{ path: "a" }], [{ path: "/a", ranges: [[1]] }], [{ path: "/a", ranges: [[-1, 2]] }], [{ path: "/a", extra: 1 }]]) {
    assert.throws(() => checkPrefetch(bad, "m"), (e) => e instanceof EodError && e.code === "IMAGE_INVALID", JSON.stringify(bad));
  }
});

test("mergeRanges() sorts, merges overlapping and touching ranges, drops empty ones", () => {
  assert.deepEqual(mergeRanges([[8192, 4096], [0, 4096], [4096, 100], [20000, 0], [100, 50]]), [[0, 4196], [8192, 4096]]);
});

test("resolvePath() follows relative and absolute symlinks in any component, and gives up on loops", () => {
  type N = { kids?: Record<string, N>; link?: string };
  const root: N = { kids: {} };
  const usr: N = { kids: { bin: { kids: { python3: { link: "python3.11" }, "python3.11": {} } }, lib64: { link: "/lib" } } };
  root.kids = { usr, lib: { kids: { "ld.so": {} } }, bin: { link: "usr/bin" }, loop: { link: "/loop" } };
  const ops = { child: (d: N, n: string) => d.kids?.[n], linkTarget: (n: N) => n.link ?? null };
  assert.equal(resolvePath(root, "/bin/python3", ops), usr.kids!.bin.kids!["python3.11"]);
  assert.equal(resolvePath(root, "/usr/lib64/ld.so", ops), root.kids.lib.kids!["ld.so"]);
  assert.equal(resolvePath(root, "/usr/bin/../../lib/ld.so", ops), root.kids.lib.kids!["ld.so"]);
  assert.equal(resolvePath(root, "/loop/x", ops), null);
  assert.equal(resolvePath(root, "/nope", ops), null);
});
