// eod status [--json] [--watch [<s>]]
import cliProgress from "cli-progress";
import { callDaemon, daemonAlive } from "../daemon/client.ts";
import { socketPathOf } from "../daemon/client.ts";
import type { MountRecord } from "../daemon/state.ts";
import type { BlobStats } from "../cache/blob-cache.ts";
import type { CullStats } from "../cache/cull.ts";
import { parse } from "./args.ts";
import { loadConfig } from "../config/config.ts";
import { EodError } from "../errors.ts";
import { checkServed, describeSnapshotter, snapshotterStatus, type SnapshotterStatus } from "../snapshotter/status.ts";

/** Blob bars shown per mount; an image of 100 layers would otherwise fill the screen. */
const BLOB_BARS = 12;

export const STATUS_USAGE = `Usage: eod status [--cache-dir <dir>] [--snapshotter-root <dir>] [--json] [--watch <seconds>]

Shows the daemon's mounts and, per blob, cached/total bytes, bytes fetched, misses and fetches in flight.
On a terminal: a progress bar per mount (its blobs' cached bytes) and per blob (up to ${BLOB_BARS} per mount);
--watch refreshes them every <seconds> until interrupted. --json: the daemon's status as JSON.

When the snapshotter's root holds its database (--snapshotter-root, default $EOD_SNAPSHOTTER_ROOT, the config
file's snapshotter.root, or /var/lib/erofs-ondemand/snapshotter), also its snapshots by kind and which image
mounts are in use by which snapshots (containers); "snapshotter" in --json.`;

interface Status {
  pid: number;
  cacheDir: string;
  frontend: Record<string, unknown> & { name: string };
  mounts: MountRecord[];
  blobs: BlobStats[];
  cache?: CullStats;
  remotes: Array<{ location: string; requests: number; bytes: number; retries: number; errors: number }>;
  pulls?: Array<{ source: string; cachedBytes: number; totalBytes: number; fetchedBytes: number }>;
}

export async function statusCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    config: { type: "string" }, "cache-dir": { type: "string" }, "snapshotter-root": { type: "string" }, json: { type: "boolean" }, watch: { type: "string" },
    help: { type: "boolean", short: "h" },
  }, STATUS_USAGE);
  if (values.help) { console.log(STATUS_USAGE); return 0; }
  const config = loadConfig({ ...values, root: values["snapshotter-root"] }); // snapshotter.root's flag is eod snapshotter's --root
  const { cacheDir } = config;
  const watch = values.watch === undefined ? 0 : Number(values.watch);
  if (!(watch >= 0)) throw new EodError("USAGE", `--watch wants seconds, got ${JSON.stringify(values.watch)}`);
  const snapshotter = readSnapshotter(config.snapshotter.root);
  if (snapshotter !== null && !("error" in snapshotter)) await checkServed(snapshotter);
  const sock = socketPathOf(cacheDir);
  if (!(await daemonAlive(sock))) {
    if (values.json) console.log(JSON.stringify({ running: false, cacheDir, ...(snapshotter ? { snapshotter } : {}) }, null, 2));
    else printSnapshotter(snapshotter, `no daemon running for ${cacheDir}`);
    return 0;
  }
  const s = await callDaemon<Status>(sock, "GET", "/status");
  if (values.json) { console.log(JSON.stringify({ running: true, ...s, ...(snapshotter ? { snapshotter } : {}) }, null, 2)); return 0; }
  printSnapshotter(snapshotter);
  if (process.stdout.isTTY) return showBars(s, sock, watch);
  console.log(`daemon pid ${s.pid}, cache ${s.cacheDir}, frontend ${s.frontend.name}${typeof s.frontend.reason === "string" ? ` (${s.frontend.reason})` : ""}`);
  if (s.cache) {
    const c = s.cache;
    const budget = c.budget > 0 ? `budget ${c.budget} B (cull above ${c.high} B down to ${c.low} B)` : "no budget";
    console.log(`cache ${c.cachedBytes} B cached (${c.restingBytes} B in ${c.restingBlobs} blob(s) no mount uses), ${budget}, ${c.evictions} chunk(s) culled (${c.evictedBytes} B) in ${c.cullRuns} run(s), ${c.noSpaceCulls} on a full filesystem`);
  }
  for (const m of s.mounts) console.log(`mount ${m.mountPoint} <- ${m.source} (${m.blobs.length} blob(s)${m.loopDevices?.length ? `, on ${m.loopDevices.join(" ")}` : ""})`);
  for (const b of s.blobs) {
    const pct = b.totalBytes ? ((100 * b.cachedBytes) / b.totalBytes).toFixed(1) : "100.0";
    console.log(`blob ${b.id.slice(0, 12)} cached ${b.cachedBytes}/${b.totalBytes} B (${pct}%), fetched ${b.fetchedBytes} B in ${b.fetches} request(s) (${b.readaheads} read ahead), misses ${b.misses}, in flight ${b.inFlight}, corrupt ${b.corrupt}, errors ${b.errors}`);
  }
  for (const r of s.remotes) console.log(`remote ${r.location}: ${r.requests} request(s), ${r.bytes} B, ${r.retries} retries, ${r.errors} errors`);
  for (const p of s.pulls ?? []) console.log(`pull ${p.source}: cached ${p.cachedBytes}/${p.totalBytes} B, fetched ${p.fetchedBytes} B`);
  return 0;
}

/** The snapshotter's status, null when its root has no database; what stops it being read is shown, not thrown (the daemon's part still is). */
function readSnapshotter(root: string): SnapshotterStatus | { root: string; error: string } | null {
  try {
    return snapshotterStatus(root);
  } catch (err) {
    return { root, error: `Cannot read the snapshotter's database in ${root}: ${(err as Error).message}` };
  }
}

function printSnapshotter(s: ReturnType<typeof readSnapshotter>, then?: string): void {
  if (s !== null) for (const line of "error" in s ? [`snapshotter ${s.root}: ${s.error}`] : describeSnapshotter(s)) console.log(line);
  if (then !== undefined) console.log(then);
}

/** Bytes in B/KiB/MiB/GiB with 1 decimal. */
function human(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let u = 0;
  while (n >= 1024 && u < units.length - 1) { n /= 1024; u++; }
  return u === 0 ? `${n} B` : `${n.toFixed(1)} ${units[u]}`;
}

/**
 * One bar per mount (cached bytes of all its blobs) and, under it, one per blob (the first BLOB_BARS), on
 * stdout; with `watch` > 0 they are refreshed from the daemon every `watch` seconds until SIGINT/SIGTERM.
 */
async function showBars(first: Status, sock: string, watch: number): Promise<number> {
  console.log(`daemon pid ${first.pid}, cache ${first.cacheDir}, frontend ${first.frontend.name}, ${first.mounts.length} mount(s), ${first.blobs.length} blob(s) open`);
  const multi = new cliProgress.MultiBar({
    format: "{name} [{bar}] {percentage}% {cached}/{size} {extra}",
    stream: process.stdout, hideCursor: true, clearOnComplete: false, stopOnComplete: false, autopadding: true, barsize: 24,
  }, cliProgress.Presets.shades_classic);
  const bars = new Map<string, cliProgress.SingleBar>();
  const set = (key: string, name: string, cached: number, total: number, extra: string) => {
    const payload = { name, cached: human(cached), size: human(total), extra };
    let bar = bars.get(key);
    if (!bar) { bar = multi.create(Math.max(total, 1), 0, payload); bars.set(key, bar); }
    bar.setTotal(Math.max(total, 1));
    bar.update(total === 0 ? 1 : cached, payload);
  };
  const draw = (s: Status) => {
    const byId = new Map(s.blobs.map((b) => [b.id, b]));
    for (const m of s.mounts) {
      const blobs = m.blobs.map((b) => byId.get(b.id)).filter((b): b is BlobStats => !!b);
      const cached = blobs.reduce((n, b) => n + b.cachedBytes, 0);
      const total = blobs.reduce((n, b) => n + b.totalBytes, 0);
      const fetched = blobs.reduce((n, b) => n + b.fetchedBytes, 0);
      set(`m ${m.mountPoint}`, m.mountPoint, cached, total, `${m.blobs.length} blob(s), fetched ${human(fetched)}`);
      for (const b of blobs.slice(0, BLOB_BARS)) {
        set(`b ${m.mountPoint} ${b.id}`, `  ${b.id.slice(0, 12)}`, b.cachedBytes, b.totalBytes, `misses ${b.misses}, in flight ${b.inFlight}${b.errors ? `, errors ${b.errors}` : ""}`);
      }
      if (blobs.length > BLOB_BARS && !bars.has(`more ${m.mountPoint}`)) {
        bars.set(`more ${m.mountPoint}`, multi.create(1, 1, { name: `  (${blobs.length - BLOB_BARS} more blob(s))`, cached: "", size: "", extra: "" }, { format: "{name}" }));
      }
    }
  };
  draw(first);
  if (watch > 0) {
    let stop = false;
    const onSignal = () => { stop = true; };
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    while (!stop) {
      await new Promise((r) => setTimeout(r, watch * 1000));
      if (stop) break;
      try { draw(await callDaemon<Status>(sock, "GET", "/status")); } catch { break; } // the daemon went away
    }
  }
  multi.stop();
  return 0;
}
