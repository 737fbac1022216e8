// Which files of a streaming layer build belong to the prefetch list, decided as each tar entry passes (the
// final tree is known only after the last layer). A listed path matches an entry of that path or under it (a
// listed directory brings everything below it). Symlinks are followed as they are seen, in either order: a
// listed path through a symlink also stands for the path the symlink leads to (resolved lexically). A file
// missed here (a symlink replaced later, a hard link) is only less well placed: the mount still prefetches it
// wherever its data is.
import { normalize, type PrefetchEntry } from "../../image/prefetch.ts";

interface Node {
  children: Map<string, Node>;
  /** A listed path (or an alias of one) ends here: everything at or below it is hot. */
  listed: boolean;
}

/** Aliases made per listed path at most (symlink chains, loops). */
const MAX_HOPS = 40;

export class HotPaths {
  readonly #root: Node = { children: new Map(), listed: false };
  /** Every symlink seen so far: "/a/b" → its target. */
  readonly #symlinks = new Map<string, string>();

  constructor(entries: readonly PrefetchEntry[]) {
    for (const e of entries) this.#add(components(normalize(e.path)), 0);
  }

  /** Whether the entry at `comps` (as splitPath gives them) is, or is under, a listed path. */
  has(comps: readonly Buffer[]): boolean {
    let n = this.#root;
    if (n.listed) return true;
    for (const c of comps) {
      const next = n.children.get(c.toString());
      if (!next) return false;
      if (next.listed) return true;
      n = next;
    }
    return false;
  }

  /** A symlink entry: listed paths through it now also name what it leads to. */
  symlink(comps: readonly Buffer[], target: Buffer): void {
    const at = comps.map((c) => c.toString());
    const t = target.toString();
    this.#symlinks.set(`/${at.join("/")}`, t);
    let n: Node | undefined = this.#root;
    for (const c of at) n = n?.children.get(c);
    if (!n) return;
    const resolved = follow(at, t);
    for (const rest of listedUnder(n)) this.#add([...resolved, ...rest], 1);
  }

  #add(comps: string[], hops: number): void {
    if (hops > MAX_HOPS) return;
    let n = this.#root;
    for (const c of comps) {
      let next = n.children.get(c);
      if (!next) n.children.set(c, (next = { children: new Map(), listed: false }));
      n = next;
    }
    if (n.listed) return;
    n.listed = true;
    // A symlink seen earlier on the way: the path through it is an alias too.
    for (let i = 1; i <= comps.length; i++) {
      const t = this.#symlinks.get(`/${comps.slice(0, i).join("/")}`);
      if (t !== undefined) this.#add([...follow(comps.slice(0, i), t), ...comps.slice(i)], hops + 1);
    }
  }
}

function components(p: string): string[] {
  return p.split("/").filter((c) => c !== "");
}

/** Where the symlink at `at` pointing to `target` leads, lexically ("..", "." and absolute targets). */
function follow(at: readonly string[], target: string): string[] {
  const out = target.startsWith("/") ? [] : at.slice(0, -1);
  for (const c of target.split("/")) {
    if (c === "" || c === ".") continue;
    if (c === "..") out.pop();
    else out.push(c);
  }
  return out;
}

/** The listed paths at or below `n`, relative to it. */
function listedUnder(n: Node, prefix: string[] = []): string[][] {
  const out: string[][] = n.listed ? [prefix] : [];
  for (const [name, c] of n.children) out.push(...listedUnder(c, [...prefix, name]));
  return out;
}
