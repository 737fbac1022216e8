// Whether a thread is dying: SIGKILL pending on it (/proc/<tid>/status, fs/proc/array.c: SigPnd is the thread's
// pending set, ShdPnd its process's, hex masks in which signal n is bit n - 1). A fatal signal puts SIGKILL in
// every thread's own set (kernel/signal.c complete_signal), where it stays while the thread sleeps in the kernel.
import fs from "node:fs";
import os from "node:os";

const SIGKILL_BIT = 1n << BigInt(os.constants.signals.SIGKILL - 1);
const PENDING = /^(?:SigPnd|ShdPnd):\s*([0-9a-f]+)$/gm;

/** SIGKILL is pending on thread `tid` (of this pid namespace); false if it is gone or was never ours (0). */
export function killPending(tid: number): boolean {
  if (!(tid > 0)) return false;
  let status: string;
  try {
    status = fs.readFileSync(`/proc/${tid}/status`, "latin1");
  } catch {
    return false; // exited, or not in our pid namespace: nothing to end early
  }
  return sigkillPendingIn(status);
}

/** Whether a /proc/<tid>/status text has SIGKILL in SigPnd or ShdPnd. */
export function sigkillPendingIn(status: string): boolean {
  for (const m of status.matchAll(PENDING)) if ((BigInt(`0x${m[1]}`) & SIGKILL_BIT) !== 0n) return true;
  return false;
}
