#!/usr/bin/env node
// Entry point of the eod command. Enables Node's on-disk compile cache first: it also caches the
// type-stripped TypeScript, which cuts start-up from ~0.6 s to ~0.25 s on our machines.
import module from "node:module";

module.enableCompileCache?.();
await import("../src/cli/main.ts");
