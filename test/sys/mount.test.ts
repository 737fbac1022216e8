import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { MNT_DETACH, MS_RDONLY, mount, mountAsync, umount } from "../../src/sys/index.ts";
import { haveRoot, tempDir } from "../helpers/kernel.ts";
import { unavailable } from "../helpers/skip.ts";

const ROOT_ONLY = unavailable(haveRoot() ? false : "mount(2) needs root");

test("mount() of a missing image throws SysError ENOENT naming both paths", { skip: ROOT_ONLY }, () => {
  const dir = tempDir("eod-mount-");
  const image = path.join(dir, "missing.erofs");
  assert.throws(() => mount(image, dir, "erofs", MS_RDONLY, null), (err: unknown) => {
    assert.equal((err as { errno?: string }).errno, "ENOENT");
    assert.equal((err as { syscall?: string }).syscall, "mount");
    assert.match((err as Error).message, /missing\.erofs on /);
    return true;
  });
});

test("mountAsync() reports errno from the worker thread (ENOENT)", { skip: ROOT_ONLY }, async () => {
  const dir = tempDir("eod-mount-");
  await assert.rejects(mountAsync(path.join(dir, "missing.erofs"), dir, "erofs", MS_RDONLY, "device=/x"), {
    code: "SYS",
    errno: "ENOENT",
  });
});

test("umount() of a directory that is not a mountpoint throws SysError EINVAL", { skip: ROOT_ONLY }, () => {
  const dir = tempDir("eod-mount-");
  assert.throws(() => umount(dir), { errno: "EINVAL", syscall: "umount2" });
  assert.throws(() => umount(dir, MNT_DETACH), { errno: "EINVAL" });
});
