// Entry of a chunk worker thread (chunk-workers.ts), in JavaScript like bin/eod.mjs and for the same reason:
// it enables Node's compile cache before any TypeScript loads, so a worker finds chunk-worker.ts already
// type-stripped instead of loading the stripper (about half of a worker's memory, ~21 of ~44 MiB, and 40 ms).
import module from "node:module";

module.enableCompileCache?.();
await import("./chunk-worker.ts");
