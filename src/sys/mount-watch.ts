// Watching this mount namespace's mount table. The kernel marks /proc/self/mountinfo with POLLERR|POLLPRI
// after any mount or unmount in the namespace (fs/proc_namespace.c mounts_poll(), once per change: the poll
// itself takes the event), and always with POLLIN, so a readable watch would spin. We ask libuv (koffi's
// poll) for no readiness at all: epoll still reports POLLERR, which libuv hands to the callback as a UV_EBADF
// status and stops the handle; the callback re-arms it. inotify (fs.watch) sees nothing on /proc.
import fs from "node:fs";
import koffi from "koffi";
import { sysError } from "./libc.ts";

const MOUNTINFO = "/proc/self/mountinfo";
/** libuv's status for POLLERR without POLLPRI asked for: here, "the mount table changed". */
const UV_EBADF = -9;

export interface MountTableWatch {
  /** Stops watching and closes the file (idempotent); no callback runs afterwards. */
  stop(): void;
}

/**
 * Calls `onChange` on the event loop after the mount table changed (one call may cover several changes: read
 * the table again). Does not keep the process alive. A throw from `onChange` or a poll error goes to `onError`.
 */
export function watchMountTable(onChange: () => void, onError: (err: unknown) => void): MountTableWatch {
  const fd = fs.openSync(MOUNTINFO, "r");
  let native: NativePoll | null = null;
  const callback = (status: number): void => {
    if (!native) return; // stopped; libuv may still deliver one queued callback
    try {
      if (status !== UV_EBADF) throw sysError("poll", -status, MOUNTINFO);
      native.start(NO_EVENTS, callback);
      onChange();
    } catch (err) {
      try { onError(err); } catch (err2) { process.nextTick(() => { throw err2; }); } // never throw into koffi
    }
  };
  native = (koffi.node.poll as unknown as NativePollFn)(fd, NO_EVENTS, callback);
  if (!native) {
    fs.closeSync(fd);
    throw new Error(`Cannot poll ${MOUNTINFO}: koffi.node.poll returned null`);
  }
  native.unref();
  return {
    stop(): void {
      if (!native) return;
      native.close();
      native = null;
      fs.closeSync(fd);
    },
  };
}

/** No readiness asked for (UV_DISCONNECT only, which /proc never reports): only POLLERR comes through. */
const NO_EVENTS = { readable: false, writable: false, disconnect: true };

type PollOptions = typeof NO_EVENTS;
type NativePollFn = (fd: number, opts: PollOptions, cb: (status: number) => void) => NativePoll | null;
interface NativePoll {
  start(opts: PollOptions, cb: (status: number) => void): void;
  close(): void;
  unref(): void;
}
