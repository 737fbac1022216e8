// The eod command line: dispatches to one file per command; each parses its arguments and calls the library.
// Errors are printed once, here: EodError by message (exit 1, usage errors exit 2), anything else with a stack.
import { EodError } from "../errors.ts";

type Command = (argv: string[]) => Promise<number>;

// Each command's module is loaded only when it runs: start-up of `eod mount` (twice on a cold start: the
// CLI and the daemon it spawns) should not pay for parsing the builder, the checker and the server.
const COMMANDS: Record<string, () => Promise<Command>> = {
  build: async () => (await import("./build.ts")).buildCommand,
  inspect: async () => (await import("./inspect.ts")).inspectCommand,
  check: async () => (await import("./check.ts")).checkCommand,
  unpack: async () => (await import("./unpack.ts")).unpackCommand,
  serve: async () => (await import("./serve.ts")).serveCommand,
  convert: async () => (await import("./convert.ts")).convertCommand,
  index: async () => (await import("./index.ts")).indexCommand,
  mount: async () => (await import("./mount.ts")).mountCommand,
  pull: async () => (await import("./pull.ts")).pullCommand,
  umount: async () => (await import("./umount.ts")).umountCommand,
  status: async () => (await import("./status.ts")).statusCommand,
  daemon: async () => (await import("./daemon.ts")).daemonCommand,
  cull: async () => (await import("./cull.ts")).cullCommand,
  trace: async () => (await import("./trace.ts")).traceCommand,
  demo: async () => (await import("./demo.ts")).demoCommand,
  snapshotter: async () => (await import("./snapshotter.ts")).snapshotterCommand,
};

const USAGE = `Usage: eod <command> [options]

Commands:
  build     build a lazy-loading image (or one EROFS file) from a directory
  inspect   show what an image holds
  check     verify every structure and digest of an image
  unpack    write the blobs' kernel form so the image mounts without a daemon
  serve     serve an image directory over HTTP (Range requests; throttling and faults for tests)
  convert   convert an image in a registry to ours and push it (OCI form)
  index     make an ordinary image lazily mountable as it is: its seek index (and push it next to the image)
  mount     mount an image lazily (image directory, http(s) URL or registry reference)
  pull      fetch every chunk of an image into the cache ahead of time
  umount    unmount an image mounted with eod mount
  status    mounts, per-blob cached/fetched bytes, misses, fetches in flight
  daemon    run the cache daemon of a cache directory in the foreground
  cull      evict an unused blob's cache file (fscache)
  trace     record which files a workload touches on a lazy mount (for eod build --prefetch-from)
  demo      build a sample image, serve it, mount it lazily and read from it
  snapshotter  serve containerd's snapshots API: ordinary images as overlayfs does, eod images lazily

Run "eod <command> --help" for a command's options.`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === "--help" || cmd === "-h" || cmd === "help") { console.log(USAGE); return cmd ? 0 : 2; }
  const load = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
  if (!load) throw new EodError("USAGE", `Unknown command ${JSON.stringify(cmd)}\n\n${USAGE}`);
  return (await load())(rest);
}

// A reader that stops early (`eod inspect img | head -1`) closes our stdout: stop quietly with the status a
// command killed by SIGPIPE has (as `ls | head -1`), for every command, instead of an unhandled EPIPE.
const SIGPIPE_STATUS = 128 + 13;
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code !== "EPIPE") throw err;
  process.exit(SIGPIPE_STATUS);
});

main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (err: unknown) => {
  if (err instanceof EodError) {
    console.error(`eod: ${err.message || `${err.code} error, with no message${err.cause ? `; caused by: ${String(err.cause)}` : ""}`}`); // never an empty line
    process.exitCode = err.code === "USAGE" ? 2 : 1;
  } else {
    console.error(err);
    process.exitCode = 1;
  }
});
