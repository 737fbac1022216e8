// The prefetch list of an image: files (or parts of files) a mount fetches first, in priority order, before
// anything asks for them. It lives in manifest.json as paths inside the image, so it works for any builder and
// survives a rebuild with another chunk size; the daemon maps it to chunks through the bootstrap at mount.
//
// Two inputs make one: `eod build --prefetch <list>` (a text file, one absolute path per line, `#` comments;
// a directory stands for every file under it) and `eod build --prefetch-from <trace>` (what `eod trace`
// recorded: the files a workload touched, in first-touch order, with the byte ranges it touched).
import { EodError } from "../errors.ts";

export interface PrefetchEntry {
  /** Absolute path inside the image ("/usr/bin/python3"). */
  path: string;
  /** Byte ranges [offset, length] of the file to fetch; absent: the whole file (or directory tree). */
  ranges?: Array<[number, number]>;
}

export const TRACE_MEDIA_TYPE = "application/vnd.erofs-ondemand.trace.v1+json";

/** What `eod trace` writes. */
export interface Trace {
  mediaType: typeof TRACE_MEDIA_TYPE;
  /** The manifest digest of the traced image (informational: a trace applies to any build of the tree). */
  image: string;
  /** Files in first-touch order. */
  files: PrefetchEntry[];
}

/** The most entries a list may have: a prefetch list is a hot set, not an image listing. */
export const MAX_PREFETCH_ENTRIES = 100_000;

/** Parses a `--prefetch` text list. */
export function parsePrefetchList(text: string, where: string): PrefetchEntry[] {
  const out: PrefetchEntry[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    if (!line.startsWith("/")) throw new EodError("USAGE", `Cannot read ${where} line ${i + 1}: ${JSON.stringify(line)} is not an absolute path inside the image`);
    out.push({ path: normalize(line) });
  });
  if (out.length > MAX_PREFETCH_ENTRIES) throw new EodError("USAGE", `${where} has ${out.length} entries, at most ${MAX_PREFETCH_ENTRIES}`);
  return out;
}

/** Parses a trace written by `eod trace`. */
export function parseTrace(text: string, where: string): Trace {
  let t: unknown;
  try {
    t = JSON.parse(text);
  } catch (err) {
    throw new EodError("USAGE", `Cannot parse ${where}: ${(err as Error).message}`);
  }
  const o = t as Partial<Trace> | null;
  if (!o || typeof o !== "object" || o.mediaType !== TRACE_MEDIA_TYPE) throw new EodError("USAGE", `${where} is not an eod trace (mediaType ${TRACE_MEDIA_TYPE})`);
  return { mediaType: TRACE_MEDIA_TYPE, image: String(o.image ?? ""), files: checkPrefetch(o.files, where) };
}

/** Validates a prefetch list (the manifest's `prefetch`, a trace's `files`); throws IMAGE_INVALID naming `where`. */
export function checkPrefetch(v: unknown, where: string): PrefetchEntry[] {
  const bad = (why: string) => new EodError("IMAGE_INVALID", `Invalid prefetch list in ${where}: ${why}`);
  if (!Array.isArray(v)) throw bad("not an array");
  if (v.length > MAX_PREFETCH_ENTRIES) throw bad(`${v.length} entries, at most ${MAX_PREFETCH_ENTRIES}`);
  return v.map((e: unknown, i) => {
    if (!e || typeof e !== "object" || Array.isArray(e)) throw bad(`entry ${i} is not an object`);
    const { path, ranges, ...rest } = e as Record<string, unknown>;
    if (Object.keys(rest).length) throw bad(`entry ${i} has unknown key ${JSON.stringify(Object.keys(rest)[0])}`);
    if (typeof path !== "string" || !path.startsWith("/") || path.includes("\0")) throw bad(`entry ${i} path must be absolute`);
    if (ranges === undefined) return { path };
    if (!Array.isArray(ranges) || !ranges.every((r) => Array.isArray(r) && r.length === 2 && r.every((x) => Number.isSafeInteger(x) && x >= 0))) {
      throw bad(`entry ${i} ranges must be [offset, length] pairs of non-negative integers`);
    }
    return { path, ranges: ranges as Array<[number, number]> };
  });
}

/** "/a//b/./c/" → "/a/b/c" ("..", which could leave the image, is an error). */
export function normalize(p: string): string {
  const parts = p.split("/").filter((c) => c !== "" && c !== ".");
  if (parts.includes("..")) throw new EodError("USAGE", `Prefetch path ${JSON.stringify(p)} contains ".."`);
  return `/${parts.join("/")}`;
}

/** Sorted, merged copy of byte ranges. */
export function mergeRanges(ranges: ReadonlyArray<[number, number]>): Array<[number, number]> {
  const sorted = ranges.filter(([, len]) => len > 0).map(([o, l]) => [o, l] as [number, number]).sort((a, b) => a[0] - b[0]);
  const out: Array<[number, number]> = [];
  for (const [o, l] of sorted) {
    const last = out.at(-1);
    if (last && o <= last[0] + last[1]) last[1] = Math.max(last[1], o + l - last[0]);
    else out.push([o, l]);
  }
  return out;
}

/** How resolvePath() walks a tree (the scanned source at build, the bootstrap at mount). */
export interface PathOps<T> {
  /** The entry `name` of directory `dir`; undefined if `dir` is not a directory or has no such entry. */
  child(dir: T, name: string): T | undefined;
  /** A symlink's target, or null if `node` is not a symlink. */
  linkTarget(node: T): string | null;
}

const MAX_SYMLINK_HOPS = 40;

/** Looks an absolute path up, following symlinks in any component as the kernel would; null if absent. */
export function resolvePath<T>(root: T, path: string, ops: PathOps<T>): T | null {
  let stack: T[] = [root];
  let pending = path.split("/").filter((c) => c !== "" && c !== ".");
  let hops = 0;
  while (pending.length) {
    const name = pending.shift()!;
    if (name === "..") { if (stack.length > 1) stack.pop(); continue; }
    const node = ops.child(stack.at(-1)!, name);
    if (node === undefined) return null;
    const target = ops.linkTarget(node);
    if (target === null) { stack.push(node); continue; }
    if (++hops > MAX_SYMLINK_HOPS) return null;
    if (target.startsWith("/")) stack = [root];
    pending = [...target.split("/").filter((c) => c !== "" && c !== "."), ...pending];
  }
  return stack.at(-1)!;
}
