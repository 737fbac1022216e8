// Prometheus metrics of the daemon, in the text exposition format (version 0.0.4), written by hand: a few
// counters and gauges read from the daemon's status at scrape time, and one histogram (remote fetch
// latency) observed as fetches complete. prom-client would add 45-80 ms to the daemon's start-up (measured:
// require + one histogram, Node 24), which is on every cold start's path, for what fits in this file.
//
// Counters must never go down, but a blob's counters live in its BlobCache and vanish when the blob closes:
// the last counters seen of a blob that is gone are kept in `retired` (the daemon reports blobs before it
// releases them, so a closed blob loses nothing).
import type { ReadOptions, Remote } from "../remote/remote.ts";

/** Seconds; remote range requests on loopback take ~1 ms, over a WAN 10-500 ms, a stalled one up to the deadline. */
export const FETCH_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Counters of one blob as the cache core reports them (BlobStats; evictions once culling keeps them). */
export interface BlobCounters {
  id: string;
  hits: number;
  misses: number;
  fetches: number;
  fetchedBytes: number;
  readaheads: number;
  prefetches: number;
  corrupt: number;
  errors: number;
  inFlight: number;
  cachedBytes: number;
  totalBytes: number;
  evictions?: number;
  evictedBytes?: number;
}

/** What a scrape reads: the daemon's status (status()), typed only as far as metrics need it. */
export interface MetricsInput {
  mounts: readonly unknown[];
  blobs: readonly BlobCounters[];
  remotes: ReadonlyArray<{ requests: number; bytes: number; retries: number; errors: number }>;
  frontend: Record<string, unknown>;
  /** The cache directory as a whole (the core's cacheStats(), when the core has a budget). */
  cache?: { cachedBytes?: number; budget?: number; evictions?: number; objectEvictions?: number; evictedBytes?: number; flushFailures?: number };
}

const SUMMED = ["hits", "misses", "fetches", "fetchedBytes", "readaheads", "prefetches", "corrupt", "errors", "evictions", "evictedBytes"] as const;
type Summed = (typeof SUMMED)[number];

export class Histogram {
  readonly buckets: readonly number[];
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(buckets: readonly number[]) {
    this.buckets = buckets;
    this.counts = buckets.map(() => 0);
  }

  observe(v: number): void {
    this.sum += v;
    this.count++;
    const i = this.buckets.findIndex((b) => v <= b);
    if (i >= 0) this.counts[i]++;
  }
}

export class DaemonMetrics {
  readonly fetchSeconds = new Histogram(FETCH_BUCKETS);
  /** Range requests that failed after the remote's retries, by error code (REMOTE_TIMEOUT, REMOTE_STATUS, ...). */
  readonly fetchFailures = new Map<string, number>();
  readonly #lastSeen = new Map<string, BlobCounters>();
  readonly #retired = Object.fromEntries(SUMMED.map((k) => [k, 0])) as Record<Summed, number>;
  readonly #startedAt = Date.now() / 1000;

  /** Takes note of the blobs open now: a blob no longer listed has closed, its last counters are kept. */
  observeBlobs(blobs: readonly BlobCounters[]): void {
    const now = new Set(blobs.map((b) => b.id));
    for (const [id, last] of this.#lastSeen) {
      if (now.has(id)) continue;
      for (const k of SUMMED) this.#retired[k] += last[k] ?? 0;
      this.#lastSeen.delete(id);
    }
    for (const b of blobs) this.#lastSeen.set(b.id, { ...b });
  }

  /** The remote with its range reads timed into fetchSeconds and failures counted by code; all else delegated. */
  timed(remote: Remote): Remote {
    const timed: Remote = {
      get location() { return remote.location; },
      readFile: (relPath, opts) => remote.readFile(relPath, opts),
      size: (relPath, opts) => remote.size(relPath, opts),
      stats: () => remote.stats(),
      close: () => remote.close(),
      readRange: async (relPath: string, offset: number, length: number, opts?: ReadOptions) => {
        const started = performance.now();
        try {
          const bytes = await remote.readRange(relPath, offset, length, opts);
          this.fetchSeconds.observe((performance.now() - started) / 1000);
          return bytes;
        } catch (err) {
          if (!opts?.signal?.aborted) {
            const code = String((err as { code?: unknown }).code ?? "UNKNOWN");
            this.fetchFailures.set(code, (this.fetchFailures.get(code) ?? 0) + 1);
          }
          throw err;
        }
      },
    };
    if (remote.pin) timed.pin = () => remote.pin!();
    return timed;
  }

  /** The exposition text for the daemon's state now. */
  render(s: MetricsInput): string {
    this.observeBlobs(s.blobs);
    const total = (k: Summed) => this.#retired[k] + s.blobs.reduce((n, b) => n + (b[k] ?? 0), 0);
    const remote = (k: "requests" | "bytes" | "retries" | "errors") => s.remotes.reduce((n, r) => n + r[k], 0);
    const fe = (k: string) => (typeof s.frontend[k] === "number" ? (s.frontend[k] as number) : 0);
    const out = new Exposition();
    out.counter("eod_cache_hits_total", "Range requests of the cache core whose chunks were all present (fanotify answers events on present ranges before asking it; the kernel's page cache answers most reads).", total("hits"));
    out.counter("eod_cache_misses_total", "Reads that needed a fetch or waited for one.", total("misses"));
    out.counter("eod_fetches_total", "Range requests that brought blob bytes (demand, read-ahead and prefetch).", total("fetches"));
    out.counter("eod_fetched_bytes_total", "Blob bytes received from remotes (compressed form).", total("fetchedBytes"));
    out.counter("eod_readaheads_total", "Fetches started ahead of a sequential reader.", total("readaheads"));
    out.counter("eod_prefetches_total", "Fetches of images' prefetch lists.", total("prefetches"));
    out.histogram("eod_fetch_duration_seconds", "Remote range requests, retries included, from start to the last byte.", this.fetchSeconds);
    out.gauge("eod_fetches_in_flight", "Fetches running now.", s.blobs.reduce((n, b) => n + b.inFlight, 0));
    out.gauge("eod_cache_bytes", "Bytes of present chunks in the cache directory (open blobs only when no budget is set).", s.cache?.cachedBytes ?? s.blobs.reduce((n, b) => n + b.cachedBytes, 0));
    if (s.cache?.budget) out.gauge("eod_cache_budget_bytes", "The cache size budget (--cache-size).", s.cache.budget);
    out.counter("eod_cache_evictions_total", "Chunks culled to keep the cache under its budget (our sparse files).", s.cache?.evictions ?? total("evictions"));
    out.counter("eod_cache_evicted_bytes_total", "Bytes culled (chunks, or whole cache files with fscache).", s.cache?.evictedBytes ?? total("evictedBytes"));
    out.counter("eod_cache_flush_failures_total", "Presence maps that could not be made durable (fdatasync or write failed; the blob stays dirty and is tried again).", s.cache?.flushFailures ?? 0);
    out.gauge("eod_mounts", "Images mounted through this daemon.", s.mounts.length);
    out.gauge("eod_blobs_open", "Blobs served now.", s.blobs.length);
    out.gauge("eod_blobs_complete", "Open blobs whose every chunk is present.", s.blobs.filter((b) => b.cachedBytes >= b.totalBytes).length);
    out.counter("eod_remote_requests_total", "Requests to remotes (attempts, whole files included).", remote("requests"));
    out.counter("eod_remote_bytes_total", "Bytes received from remotes (whole files included).", remote("bytes"));
    out.counter("eod_remote_retries_total", "Remote requests repeated after a transient failure.", remote("retries"));
    out.labelled("eod_errors_total", "counter", "Failures by kind: digest_mismatch (fetched bytes failed verification), fetch (a fetch failed for good), remote_attempt (one failed attempt), read_denied (a reader got EIO), remote_<code> (range requests that failed after retries).", [
      [{ kind: "digest_mismatch" }, total("corrupt")],
      [{ kind: "fetch" }, total("errors")],
      [{ kind: "remote_attempt" }, remote("errors")],
      [{ kind: "read_denied" }, fe("denied") + fe("failedReads")], // fanotify denials, fscache READs without data, FUSE READs answered EIO
      ...[...this.fetchFailures].map(([code, n]): [Record<string, string>, number] => [{ kind: `remote_${code.toLowerCase()}` }, n]),
    ]);
    const received = s.frontend.requests !== undefined ? fe("requests") : fe("events") + fe("opens") + fe("reads") + fe("closes"); // fuse counts every request
    out.labelled("eod_frontend_events_total", "counter", "Kernel requests the frontend received (fanotify events; fscache OPEN, READ and CLOSE; every FUSE request).", [[{ frontend: String(s.frontend.name ?? "") }, received]]);
    out.counter("eod_cache_files_culled_total", "Whole cache files culled (fscache: low space or the budget).", s.cache?.objectEvictions ?? 0);
    const mem = process.memoryUsage();
    out.gauge("process_resident_memory_bytes", "Resident memory size in bytes.", mem.rss);
    out.gauge("nodejs_heap_used_bytes", "V8 heap in use.", mem.heapUsed);
    out.gauge("nodejs_external_memory_bytes", "Memory of Buffers and other objects outside the V8 heap.", mem.external + mem.arrayBuffers);
    out.gauge("process_start_time_seconds", "Start time of the process since the Unix epoch in seconds.", this.#startedAt);
    return out.text();
  }
}

/** Builds the text: `# HELP`, `# TYPE`, then samples; label values escaped as the format requires. */
export class Exposition {
  readonly #lines: string[] = [];

  counter(name: string, help: string, v: number): void {
    this.labelled(name, "counter", help, [[{}, v]]);
  }

  gauge(name: string, help: string, v: number): void {
    this.labelled(name, "gauge", help, [[{}, v]]);
  }

  labelled(name: string, type: "counter" | "gauge", help: string, samples: Array<[Record<string, string>, number]>): void {
    this.#head(name, type, help);
    for (const [labels, v] of samples) this.#lines.push(`${name}${labelText(labels)} ${num(v)}`);
  }

  histogram(name: string, help: string, h: Histogram): void {
    this.#head(name, "histogram", help);
    let cum = 0;
    h.buckets.forEach((b, i) => {
      cum += h.counts[i];
      this.#lines.push(`${name}_bucket{le="${num(b)}"} ${cum}`);
    });
    this.#lines.push(`${name}_bucket{le="+Inf"} ${h.count}`, `${name}_sum ${num(h.sum)}`, `${name}_count ${h.count}`);
  }

  text(): string {
    return `${this.#lines.join("\n")}\n`;
  }

  #head(name: string, type: string, help: string): void {
    this.#lines.push(`# HELP ${name} ${help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`, `# TYPE ${name} ${type}`);
  }
}

function labelText(labels: Record<string, string>): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"')}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

function num(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}
