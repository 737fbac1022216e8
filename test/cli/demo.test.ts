// The README's main job (`npm run demo` = `eod demo`): build a sample image, serve it, mount it lazily, read
// through the kernel, unmount. It must keep working end to end, and leave nothing mounted.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { kernelSupportsPreContent } from "../../src/sys/fanotify.ts";
import { eod } from "../helpers/cli.ts";
import { haveRoot } from "../helpers/kernel.ts";
import { unavailable } from "../helpers/skip.ts";

const support = haveRoot() ? kernelSupportsPreContent() : { ok: false, missing: ["root"] };
const skip = unavailable(!haveRoot() ? "needs root to mount" : !support.ok ? `kernel lacks: ${support.missing.join("; ")}` : false);

test("eod demo mounts the sample image lazily, reads it right, fetches a small part first, and unmounts", { skip, timeout: 120_000 }, () => {
  const r = eod("demo");
  assert.equal(r.status, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /cat etc\/motd: Hello from erofs-ondemand/);
  const first = /bytes fetched: (\d+) of (\d+)/.exec(r.stdout);
  assert.ok(first, r.stdout);
  assert.ok(Number(first[1]) < Number(first[2]) / 10, "the first read fetches a small part of the image");
  assert.match(r.stdout, /read lazily matches the source: true/);
  const mnt = /unmounted (\S+)/.exec(r.stdout)?.[1];
  assert.ok(mnt, r.stdout);
  assert.ok(!fs.readFileSync("/proc/self/mountinfo", "utf8").includes(` ${mnt} `), "nothing left mounted");
  assert.ok(!fs.existsSync(path.dirname(mnt)), "its work directory is removed");
});
