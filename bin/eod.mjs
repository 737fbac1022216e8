#!/usr/bin/env node
// The Node entry of eod: bin/eod (the command) runs it on the pinned Node, and so does eod itself when it starts
// its daemon (process.execPath). Enables Node's on-disk compile cache first: it also caches the type-stripped
// TypeScript, which more than halves start-up (docs/benchmarks.md). A checkout runs src/ (TypeScript);
// a packed package has no src/, only dist/ (the same code as JavaScript: Node strips no types under node_modules).
import fs from "node:fs";
import module from "node:module";

const major = Number(process.versions.node.split(".")[0]);
if (major < 24) {
  const cmd = new URL("eod", import.meta.url).pathname;
  console.error(`eod: Node ${process.version} (${process.execPath}) is too old: eod needs Node 24. Run ${cmd}: it uses the Node that npm installed with eod.`);
  process.exit(1);
}
if (process.argv[2] === "--version") {
  const pkg = JSON.parse(fs.readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  console.log(`eod ${pkg.version} (node ${process.version})`);
  process.exit(0);
}
module.enableCompileCache?.();
const source = new URL("../src/cli/main.ts", import.meta.url);
await import(fs.existsSync(source) ? source.href : new URL("../dist/cli/main.js", import.meta.url).href);
