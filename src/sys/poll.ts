// A libuv poll of a kernel fd (epoll, no thread): the fanotify group's and /dev/fuse's requests are read on the
// event loop as they become readable.
import koffi from "koffi";
import { sysError } from "./libc.ts";

/** A running fd watch; stop() ends it (idempotent). */
export interface PollHandle {
  /** Stops watching and releases the libuv handle. No callback runs afterwards. */
  stop(): void;
  /** Lets the process exit while the watch is active. */
  unref(): void;
  /** Undoes unref(). */
  ref(): void;
}

/**
 * Calls `onReadable` on the event loop whenever `fd` is readable (libuv poll: epoll, no thread).
 * The fd should be non-blocking; `onReadable` should read until EAGAIN. A throw from `onReadable`,
 * or a poll error (as a SysError), goes to `onError`; without one it stops the watch and is rethrown
 * outside the native callback, where it becomes an ordinary uncaught exception with its own stack.
 * @example
 * const h = pollReadable(fan, () => drain(fan));
 * // later
 * h.stop();
 */
export function pollReadable(fd: number, onReadable: () => void, onError?: (err: unknown) => void): PollHandle {
  let native: NativePoll | null = null;
  const fail = (err: unknown): void => {
    if (onError) return onError(err);
    handle.stop();
    process.nextTick(() => {
      throw err;
    });
  };
  const callback = (status: number): void => {
    if (!native) return; // stopped; libuv may still deliver one already-queued callback
    try {
      if (status < 0) throw sysError("poll", -status, `fd ${fd}`);
      onReadable();
    } catch (err) {
      // A throw must not reach koffi: it crashes the process or is lost, depending on the context.
      try {
        fail(err);
      } catch (err2) {
        process.nextTick(() => {
          throw err2;
        });
      }
    }
  };
  native = (koffi.node.poll as unknown as NativePollFn)(fd, { readable: true }, callback);
  if (!native) throw new Error(`Cannot poll fd ${fd}: koffi.node.poll returned null`);
  const handle: PollHandle = {
    stop() {
      native?.close();
      native = null;
    },
    unref() {
      native?.unref();
    },
    ref() {
      native?.ref();
    },
  };
  return handle;
}

// koffi calls back with (status, events), not (events) as its index.d.ts says: status is 0 or a
// negative libuv error code, which on Linux is -errno.
type NativePollFn = (fd: number, opts: { readable: boolean }, cb: (status: number) => void) => NativePoll | null;
interface NativePoll {
  close(): void;
  unref(): void;
  ref(): void;
}
