// eod status [--json]
import { callDaemon, daemonAlive } from "../daemon/client.ts";
import { socketPathOf } from "../daemon/client.ts";
import type { MountRecord } from "../daemon/state.ts";
import type { BlobStats } from "../cache/blob-cache.ts";
import type { CullStats } from "../cache/cull.ts";
import { parse } from "./args.ts";
import { cacheDirOf } from "./cache-dir.ts";

export const STATUS_USAGE = `Usage: eod status [--cache-dir <dir>] [--json]

Shows the daemon's mounts and, per blob, cached/total bytes, bytes fetched, misses and fetches in flight.`;

interface Status {
  pid: number;
  cacheDir: string;
  frontend: Record<string, unknown> & { name: string };
  mounts: MountRecord[];
  blobs: BlobStats[];
  cache?: CullStats;
  remotes: Array<{ location: string; requests: number; bytes: number; retries: number; errors: number }>;
}

export async function statusCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { "cache-dir": { type: "string" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" } }, STATUS_USAGE);
  if (values.help) { console.log(STATUS_USAGE); return 0; }
  const cacheDir = cacheDirOf(values["cache-dir"]);
  const sock = socketPathOf(cacheDir);
  if (!(await daemonAlive(sock))) {
    console.log(values.json ? JSON.stringify({ running: false, cacheDir }) : `no daemon running for ${cacheDir}`);
    return 0;
  }
  const s = await callDaemon<Status>(sock, "GET", "/status");
  if (values.json) { console.log(JSON.stringify({ running: true, ...s }, null, 2)); return 0; }
  console.log(`daemon pid ${s.pid}, cache ${s.cacheDir}, frontend ${s.frontend.name}`);
  if (s.cache) {
    const c = s.cache;
    const budget = c.budget > 0 ? `budget ${c.budget} B (cull above ${c.high} B down to ${c.low} B)` : "no budget";
    console.log(`cache ${c.cachedBytes} B cached (${c.restingBytes} B in ${c.restingBlobs} blob(s) no mount uses), ${budget}, ${c.evictions} chunk(s) culled (${c.evictedBytes} B) in ${c.cullRuns} run(s), ${c.noSpaceCulls} on a full filesystem`);
  }
  for (const m of s.mounts) console.log(`mount ${m.mountPoint} <- ${m.source} (${m.blobs.length} blob(s))`);
  for (const b of s.blobs) {
    const pct = b.totalBytes ? ((100 * b.cachedBytes) / b.totalBytes).toFixed(1) : "100.0";
    console.log(`blob ${b.id.slice(0, 12)} cached ${b.cachedBytes}/${b.totalBytes} B (${pct}%), fetched ${b.fetchedBytes} B in ${b.fetches} request(s) (${b.readaheads} read ahead), misses ${b.misses}, in flight ${b.inFlight}, corrupt ${b.corrupt}, errors ${b.errors}`);
  }
  for (const r of s.remotes) console.log(`remote ${r.location}: ${r.requests} request(s), ${r.bytes} B, ${r.retries} retries, ${r.errors} errors`);
  return 0;
}
