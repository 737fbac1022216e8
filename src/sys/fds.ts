// Holding fd numbers: open(2) always returns the lowest free number, so opening /dev/null until a number comes
// up is how a process keeps a number from being handed to anything else (no dup2 needed).
import fs from "node:fs";

/** True when `fd` is open in this process. */
export function fdIsOpen(fd: number): boolean {
  try {
    fs.fstatSync(fd);
    return true;
  } catch {
    return false;
  }
}

/**
 * Makes every free number of `numbers` an open /dev/null descriptor, so no later open() (nor a fanotify event
 * fd) gets it, and returns the numbers now held; the caller closes each to give it back. Numbers already open
 * in this process are left alone and not returned.
 */
export function holdFdNumbers(numbers: Iterable<number>): Set<number> {
  const want = new Set([...numbers].filter((n) => Number.isInteger(n) && n >= 0 && !fdIsOpen(n)));
  const held = new Set<number>();
  const extra: number[] = [];
  const max = Math.max(-1, ...want);
  try {
    while (held.size < want.size) {
      const fd = fs.openSync("/dev/null", fs.constants.O_RDONLY);
      if (want.has(fd)) held.add(fd);
      else extra.push(fd);
      if (fd > max) break; // the wanted numbers below were taken meanwhile by another thread
    }
  } finally {
    for (const fd of extra) fs.closeSync(fd);
  }
  return held;
}
