// The eod command line: dispatches to one file per command; each parses its arguments and calls the library.
// Errors are printed once, here: EodError by message (exit 1, usage errors exit 2), anything else with a stack.
import { EodError } from "../errors.ts";
import { buildCommand } from "./build.ts";
import { checkCommand } from "./check.ts";
import { cullCommand } from "./cull.ts";
import { daemonCommand } from "./daemon.ts";
import { demoCommand } from "./demo.ts";
import { inspectCommand } from "./inspect.ts";
import { mountCommand } from "./mount.ts";
import { serveCommand } from "./serve.ts";
import { statusCommand } from "./status.ts";
import { umountCommand } from "./umount.ts";
import { unpackCommand } from "./unpack.ts";

const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  build: buildCommand,
  inspect: inspectCommand,
  check: checkCommand,
  unpack: unpackCommand,
  serve: serveCommand,
  mount: mountCommand,
  umount: umountCommand,
  status: statusCommand,
  daemon: daemonCommand,
  cull: cullCommand,
  demo: demoCommand,
};

const USAGE = `Usage: eod <command> [options]

Commands:
  build     build a lazy-loading image (or one EROFS file) from a directory
  inspect   show what an image holds
  check     verify every structure and digest of an image
  unpack    write the blobs' kernel form so the image mounts without a daemon
  serve     serve an image directory over HTTP (Range requests; throttling and faults for tests)
  mount     mount an image lazily (image directory or http(s) URL)
  umount    unmount an image mounted with eod mount
  status    mounts, per-blob cached/fetched bytes, misses, fetches in flight
  daemon    run the cache daemon of a cache directory in the foreground
  cull      evict an unused blob's cache file (fscache)
  demo      build a sample image, serve it, mount it lazily and read from it

Run "eod <command> --help" for a command's options.`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === "--help" || cmd === "-h" || cmd === "help") { console.log(USAGE); return cmd ? 0 : 2; }
  const run = COMMANDS[cmd];
  if (!run) throw new EodError("USAGE", `Unknown command ${JSON.stringify(cmd)}\n\n${USAGE}`);
  return run(rest);
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (err: unknown) => {
  if (err instanceof EodError) {
    console.error(`eod: ${err.message}`);
    process.exitCode = err.code === "USAGE" ? 2 : 1;
  } else {
    console.error(err);
    process.exitCode = 1;
  }
});
