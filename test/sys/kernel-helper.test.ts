import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { haveRoot, mountErofs, tempDir } from "../helpers/kernel.ts";
import { skipTest } from "../helpers/skip.ts";

const HELPER = fileURLToPath(new URL("../helpers/kernel.ts", import.meta.url));

function skipReason(): string | false {
  if (!haveRoot()) return "mounting needs root";
  if (spawnSync("mkfs.erofs", ["--help"]).error) return "mkfs.erofs not installed (Debian erofs-utils)";
  if (!fs.readFileSync("/proc/filesystems", "utf8").includes("\terofs")) return "kernel has no erofs";
  return false;
}

function isMounted(dir: string): boolean {
  return fs.readFileSync("/proc/mounts", "utf8").split("\n").some((l) => l.split(" ")[1] === dir);
}

/** A tiny uncompressed image holding hello.txt; -T0 pins timestamps for reproducibility. */
function tinyImage(): string {
  const work = tempDir("eod-img-");
  const src = path.join(work, "src");
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, "hello.txt"), "hello from erofs\n");
  const image = path.join(work, "tiny.erofs");
  execFileSync("mkfs.erofs", ["-T0", image, src], { stdio: "ignore" });
  return image;
}

test("mountErofs() mounts an image read-only; unmount() is idempotent", async (t) => {
  const reason = skipReason();
  if (reason) return skipTest(t, reason);
  const m = await mountErofs(tinyImage());
  try {
    assert.ok(isMounted(m.dir));
    assert.equal(fs.readFileSync(path.join(m.dir, "hello.txt"), "utf8"), "hello from erofs\n");
    assert.throws(() => fs.writeFileSync(path.join(m.dir, "new"), "x"), { code: "EROFS" });
  } finally {
    m.unmount();
  }
  assert.ok(!isMounted(m.dir));
  assert.ok(!fs.existsSync(m.dir));
  m.unmount(); // second call is a no-op
});

test("mountErofs() of a file that is not an image throws and leaves no directory", async (t) => {
  const reason = skipReason();
  if (reason) return skipTest(t, reason);
  const bogus = path.join(tempDir("eod-img-"), "bogus.erofs");
  fs.writeFileSync(bogus, Buffer.alloc(8192));
  const before = fs.readdirSync(os.tmpdir());
  await assert.rejects(mountErofs(bogus), { code: "SYS", syscall: "mount" });
  const after = fs.readdirSync(os.tmpdir());
  assert.deepEqual(after.filter((n) => n.startsWith("eod-mnt-") && !before.includes(n)), []);
});

test("the exit hook detaches a mount left by a test that threw", async (t) => {
  const reason = skipReason();
  if (reason) return skipTest(t, reason);
  const image = tinyImage();
  const script = [
    `import { mountErofs } from ${JSON.stringify(HELPER)};`,
    `const m = await mountErofs(${JSON.stringify(image)});`,
    `console.log(m.dir);`,
    `throw new Error("test failed without unmounting");`,
  ].join("\n");
  const child = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
  assert.notEqual(child.status, 0);
  const dir = child.stdout.trim();
  assert.ok(dir.includes("eod-mnt-"), `child printed ${JSON.stringify(child.stdout)}, stderr ${child.stderr}`);
  assert.ok(!isMounted(dir), `${dir} is still mounted`);
  assert.ok(!fs.existsSync(dir), `${dir} still exists`);
});
