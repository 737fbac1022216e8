// Source paths longer than PATH_MAX (4096 bytes: a tree 500 directories deep easily has them). The kernel
// refuses such a path with ENAMETOOLONG, so withShortPath() reaches it in steps instead: it opens an
// ancestor directory (O_PATH, so a directory we may traverse but not list still works) and names the rest
// relative to it as /proc/self/fd/<fd>/<rest>, repeating until the name is short enough.
import fs from "node:fs";

/** Paths shorter than this go to the kernel as they are (PATH_MAX is 4096, with its NUL). */
const SHORT = 4000;
const SLASH = 0x2f;
const O_PATH = 0o10000000; // not in fs.constants; the same value on x86_64 and arm64

/**
 * Calls `fn` with a name for `p` that the kernel accepts: `p` itself when short, else a
 * /proc/self/fd/<fd>/… alias valid while `fn` runs. Errors (also from opening an ancestor) are thrown as
 * they are; callers name `p` in their messages, never the alias.
 * @example
 * const st = withShortPath(p, (s) => fs.lstatSync(s, { bigint: true }));
 */
export function withShortPath<T>(p: Buffer, fn: (short: Buffer) => T): T {
  if (p.length < SHORT) return fn(p);
  const fds: number[] = [];
  try {
    let name = p;
    while (name.length >= SHORT) {
      // Cut at a slash: the ancestor's name stays short, and so may the rest after one more step.
      const cut = name.lastIndexOf(SLASH, SHORT - 1);
      if (cut <= 0) throw Object.assign(new Error(`ENAMETOOLONG: a component is too long`), { code: "ENAMETOOLONG" });
      const fd = fs.openSync(name.subarray(0, cut), fs.constants.O_DIRECTORY | O_PATH);
      fds.push(fd);
      name = Buffer.concat([Buffer.from(`/proc/self/fd/${fd}/`), name.subarray(cut + 1)]);
    }
    return fn(name);
  } finally {
    for (const fd of fds) fs.closeSync(fd);
  }
}
