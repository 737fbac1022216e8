#!/usr/bin/env node
// Entry for `npm exec eod` / an installed bin: runs the TypeScript CLI with the Node that runs this file.
import "../src/cli/main.ts";
