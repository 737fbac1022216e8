// Preloaded with `node --import` into a child process: prints the process's peak resident set size on exit,
// so a test can bound the memory of a CLI run. Format: "eod-test-maxrss <KiB>" on stderr.
process.on("exit", () => {
  process.stderr.write(`eod-test-maxrss ${process.resourceUsage().maxRSS}\n`);
});
