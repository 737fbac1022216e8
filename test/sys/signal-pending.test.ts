// killPending (src/sys/signal-pending.ts): SIGKILL in a thread's or its process's pending set, as
// /proc/<tid>/status shows it; a live thread without it, a gone one and pid 0 (not in our namespace) are not
// dying. (A real pending SIGKILL, on a reader asleep in a FUSE request: test/kernel/fuse-interrupt.test.ts.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { killPending, sigkillPendingIn } from "../../src/sys/signal-pending.ts";

const status = (sigPnd: string, shdPnd: string) => `Name:\tcat\nState:\tD (disk sleep)\nSigQ:\t1/63382\nSigPnd:\t${sigPnd}\nShdPnd:\t${shdPnd}\nSigBlk:\t0000000000000000\n`;

test("SIGKILL (bit 8) in SigPnd or ShdPnd; other pending signals do not count", () => {
  assert.equal(sigkillPendingIn(status("0000000000000100", "0000000000000000")), true, "the thread's own set");
  assert.equal(sigkillPendingIn(status("0000000000000000", "0000000000000100")), true, "the process's shared set");
  assert.equal(sigkillPendingIn(status("0000000000000800", "0000000000000002")), false, "SIGUSR2 and SIGINT pending");
  assert.equal(sigkillPendingIn(status("0000000000000000", "0000000000000000")), false);
  assert.equal(sigkillPendingIn(""), false);
});

test("a live process without SIGKILL pending, a gone one and pid 0 are not dying", async () => {
  const child = spawn("sleep", ["30"], { stdio: "ignore" });
  await once(child, "spawn");
  assert.equal(killPending(child.pid!), false);
  child.kill("SIGKILL");
  await once(child, "exit");
  assert.equal(killPending(child.pid!), false, "gone (reaped)");
  assert.equal(killPending(0), false);
});
