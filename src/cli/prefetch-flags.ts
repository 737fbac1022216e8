// --prefetch <list> and --prefetch-from <trace>, the same for eod build and eod convert.
import fs from "node:fs";
import { EodError } from "../errors.ts";
import { parsePrefetchList, parseTrace, type PrefetchEntry } from "../image/prefetch.ts";

export const PREFETCH_OPTIONS = { prefetch: { type: "string" }, "prefetch-from": { type: "string" } } as const;

export const PREFETCH_USAGE = `  --prefetch <list>      files a mount fetches first: a text file, one absolute path per line (directories
                         stand for every file under them); their data is also laid out first (from layers:
                         in a blob of its own, in the order the mount fetches it)
  --prefetch-from <trace>  the same from an access trace written by eod trace (files and the ranges touched)`;

/** The prefetch list of --prefetch (explicit paths first) and --prefetch-from (a trace), or undefined. */
export function readPrefetch(list: string | undefined, trace: string | undefined): PrefetchEntry[] | undefined {
  if (list === undefined && trace === undefined) return undefined;
  const read = (f: string) => {
    try {
      return fs.readFileSync(f, "utf8");
    } catch (err) {
      throw new EodError("USAGE", `Cannot read ${f}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
  };
  return [
    ...(list !== undefined ? parsePrefetchList(read(list), list) : []),
    ...(trace !== undefined ? parseTrace(read(trace), trace).files : []),
  ];
}
