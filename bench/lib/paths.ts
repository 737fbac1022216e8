// Where the benchmarks find the repository and the eod CLI they time (the same Node that runs the bench).
import path from "node:path";

export const REPO = path.resolve(import.meta.dirname, "../..");
export const EOD = path.join(REPO, "bin/eod.mjs");
export const NODE = process.execPath;
