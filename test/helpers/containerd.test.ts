// The containerd harness itself: CRI PullImage with containerd's overlayfs snapshotter from the local
// registry, `ctr run` of the busybox image, and a stop() that leaves no task, shim, mount, process or directory
// behind even with a container still running.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { containerdMissing, mountsUnder, startContainerd, type RunningContainerd } from "./containerd.ts";
import { criPullImage } from "./cri.ts";
import { pushBusyboxImage } from "./push-image.ts";
import { startRegistry, type RunningRegistry } from "./registry.ts";
import { unavailable } from "./skip.ts";
import { RegistryClient, staticCredentials } from "../../src/remote/registry/index.ts";

const skip = unavailable(containerdMissing());
let reg: RunningRegistry | undefined;
let containerd: RunningContainerd | undefined;

after(async () => {
  try { await containerd?.stop(); } finally { await reg?.stop(); }
});

/** Running, not a zombie (PID 1 here may reap an exited shim's children late). */
function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

test("CRI pulls into overlayfs, ctr runs the image, stop() leaves nothing behind", { skip, timeout: 180_000 }, async () => {
  reg = await startRegistry();
  const client = new RegistryClient({ credentials: staticCredentials({}) });
  let ref: string;
  try { ({ ref } = await pushBusyboxImage(client, { registry: reg.host, repository: "t/busybox" }, "v1")); } finally { await client.close(); }
  containerd = await startContainerd({ cri: { snapshotter: "overlayfs" }, registryMirrors: [reg.host] });

  assert.match(await criPullImage(containerd.address, ref), /^sha256:[0-9a-f]{64}$/);
  assert.equal(await containerd.ctrOk(["run", "--rm", "--snapshotter", "overlayfs", ref, "hello", "sh", "-c", "echo hello from $(cat /etc/passwd | wc -l) user"]), "hello from 1 user\n");

  await containerd.ctrOk(["run", "-d", "--snapshotter", "overlayfs", ref, "sleeper", "sleep", "600"]);
  const pid = Number((await containerd.ctrOk(["tasks", "ls"])).split("\n").find((l) => l.startsWith("sleeper"))?.trim().split(/\s+/)[1]);
  assert.ok(pid > 1 && alive(pid), "the container runs");
  const { dir, address, pid: containerdPid } = containerd;
  assert.ok(mountsUnder(dir).length > 0, "its rootfs is mounted under the temp dir");

  await containerd.stop();
  containerd = undefined;
  assert.equal(alive(pid), false, "the container's process is gone");
  assert.equal(alive(containerdPid), false, "containerd is gone");
  assert.deepEqual(mountsUnder(dir), []);
  assert.equal(fs.existsSync(dir), false);
  const shims = fs.readdirSync("/proc").filter((n) => /^\d+$/.test(n)).filter((n) => {
    try { return fs.readFileSync(`/proc/${n}/cmdline`, "utf8").split("\0").includes(address); } catch { return false; }
  });
  assert.deepEqual(shims, [], "no shim of this containerd is left");
});
