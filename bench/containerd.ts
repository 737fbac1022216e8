// containerd benchmark: time from the pull request to the end of `python3 -c 'import json'` in a container,
// the eod snapshotter (the image converted by `eod convert`, pulled and run lazily) against containerd's own
// overlayfs snapshotter (the unconverted image: full pull and unpack). A benchmark, not a test; needs root,
// Debian's containerd + runc, docker-registry and a kernel with fanotify pre-content events.
//
//   node bench/containerd.ts [--runs=3] [--variants=overlayfs,eod,eod-prefetch[,eod-mount-on-pull,eod-prefetch-mount-on-pull]]
//                          [--daemon-env=EOD_MIN_FETCH=1M,EOD_MIN_FETCH=64K+EOD_FILE_FETCH=0] [--timeline=1]
//                          (npm run bench:containerd)
//
// --daemon-env: the lazy rows (eod, eod-mount-on-pull) run once per comma-separated item in each round, the cache daemon started with that
// item's `+`-joined environment settings (src/config's EOD_* keys); default: one run with the daemon's defaults.
// --timeline: print each eod run's timeline (registry requests, snapshotter and daemon steps; always in the results).
//
// The Debian corpus (bench/corpus.ts) as one gzip layer is pushed to a local registry and converted there
// twice: plainly, and with the prefetch list of `eod trace` of the same command on a lazy mount (`eod convert
// --prefetch-from`: the traced files' data in a blob of its own, in the order the mount prefetches it).
// Every run goes through bench/lib/throttled-proxy.ts (one shared
// 20 MB/s link, 20 ms before each answer) and starts on a fresh containerd (and, for eod, a fresh snapshotter
// root and an empty cache whose daemon runs already, as a service would), page caches dropped; the clock runs
// from the CRI PullImage request (kubelet's call, on a connection made before) to the end of `ctr run <ref>
// python3 -c 'import json'` (the container's removal is not timed).
// Runs are interleaved, best of N. Bytes are what the proxy sent. Results are printed and written to
// bench/results/containerd-<UTC timestamp>.json; the exit status is non-zero if a run failed or a target was missed.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { debianCorpus } from "./corpus.ts";
import { option, runsOption } from "./lib/args.ts";
import { COLD_CMD } from "./lib/cold-start.ts";
import { traceColdStart } from "./lib/cold-trace.ts";
import { corpusLayer, pushCorpusImage } from "./lib/corpus-image.ts";
import { mb, ratio, secs, table } from "./lib/format.ts";
import { EOD, NODE } from "./lib/paths.ts";
import { gitState, hostInfo, writeResults } from "./lib/results.ts";
import { describe, run } from "./lib/run.ts";
import { dropCaches, progressLine } from "./lib/system.ts";
import { throttledProxy, type ThrottledProxy } from "./lib/throttled-proxy.ts";
import { formatTimeline, logEvents, requestEvents, timeline, type TimelineEvent } from "./lib/timeline.ts";
import { containerdMissing, mountsUnder, startContainerd, startSnapshotter, type RunningSnapshotter } from "../test/helpers/containerd.ts";
import { connectCri } from "../test/helpers/cri.ts";
import { cleanup as stopCacheDaemon } from "../test/helpers/lazy.ts";
import { startRegistry } from "../test/helpers/registry.ts";
import { ensureDaemon } from "../src/daemon/spawn.ts";
import { parseTrace } from "../src/image/prefetch.ts";
import { pushWithListOnly } from "./lib/layer-order-image.ts";
import { kernelSupportsPreContent } from "../src/sys/fanotify.ts";

const RUNS = runsOption();
const TARGETS = { lazy: 0.2, prefetch: 0.1 };
const ENV = { DOCKER_CONFIG: path.join(os.tmpdir(), "eod-bench-no-docker-config") };

// Not run by default: eod-prefetch-layer-order, the trace's list in manifest.json, the data in layer order (what a
// list gave before the hot blob; bench/lib/layer-order-image.ts); eod-mount-on-pull and eod-prefetch-mount-on-pull,
// the images of eod and eod-prefetch with `eod snapshotter --mount-on-pull` (the pull mounts the image).
const ALL_VARIANTS = ["overlayfs", "eod", "eod-prefetch", "eod-prefetch-layer-order", "eod-mount-on-pull", "eod-prefetch-mount-on-pull"] as const;
type Variant = (typeof ALL_VARIANTS)[number];
const VARIANTS = option("variants", ALL_VARIANTS.slice(0, 3).join(",")).split(",").map((v) => {
  if (!(ALL_VARIANTS as readonly string[]).includes(v)) throw new Error(`--variants: unknown ${JSON.stringify(v)} (${ALL_VARIANTS.join(", ")})`);
  return v as Variant;
});
/** The cache daemon's environment settings of each eod run ("" = none). */
const DAEMON_ENVS = option("daemon-env", "").split(",").filter(Boolean);
interface Run {
  variant: Variant; daemonEnv: string; seconds: number; pullSeconds: number; bytes: number; requests: number; busyCpuSeconds: number;
  /** eod runs: when (seconds after the pull request) the image mount was done and what the daemon did. */
  eod?: EodPhases;
  /** eod runs: the registry's requests and the snapshotter's and daemon's steps, seconds after the pull request. */
  timeline?: TimelineEvent[];
}
/** The log lines of the snapshotter and the cache daemon a run's timeline shows. */
const SNAPSHOTTER_STEPS = ["lazy layer recorded", "image mount requested", "image mounted", "image mount on pull failed"];
const DAEMON_STEPS = ["mount requested", "image loaded", "mounted", "prefetched", "unmounted"];
const SHOW_TIMELINE = option("timeline", "") !== "";
interface EodPhases {
  mountedAt: number | null; mountMs: number | null; prefetchMs: number | null;
  events: number | null; fills: number | null; fillP50Ms: number | null; misses: number | null; fetches: number | null; fetchedBytes: number | null;
}

/** From the cache daemon's log and status: the image mount and prefetch, and how python's misses were served. */
async function eodPhases(cacheDir: string, wall0: number): Promise<EodPhases> {
  const p: EodPhases = { mountedAt: null, mountMs: null, prefetchMs: null, events: null, fills: null, fillP50Ms: null, misses: null, fetches: null, fetchedBytes: null };
  for (const line of fs.readFileSync(path.join(cacheDir, "daemon.log"), "utf8").split("\n").filter(Boolean)) {
    const j = JSON.parse(line) as { time: string; msg: string; ms?: number };
    if (j.msg === "mounted" && p.mountedAt === null) { p.mountedAt = (Date.parse(j.time) - wall0) / 1000; p.mountMs = j.ms ?? null; }
    if (j.msg === "prefetched" && p.prefetchMs === null) p.prefetchMs = j.ms ?? null;
  }
  const st = await run(NODE, [EOD, "status", "--cache-dir", cacheDir, "--json"], { timeoutMs: 30_000 });
  if (st.code === 0) {
    const s = JSON.parse(st.stdout) as { frontend?: { events: number; fills: number; fillLatencyMs?: { p50: number } }; blobs?: Array<{ misses: number; fetches: number; fetchedBytes: number }> };
    const sum = (k: "misses" | "fetches" | "fetchedBytes") => (s.blobs ?? []).reduce((n, b) => n + b[k], 0);
    Object.assign(p, { events: s.frontend?.events ?? null, fills: s.frontend?.fills ?? null, fillP50Ms: s.frontend?.fillLatencyMs?.p50 ?? null, misses: sum("misses"), fetches: sum("fetches"), fetchedBytes: sum("fetchedBytes") });
  }
  return p;
}

/** Busy CPU seconds of the whole machine so far (/proc/stat: all but idle and iowait; USER_HZ = 100). */
function machineBusy(): number {
  const f = fs.readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  return (f.reduce((a, b) => a + b, 0) - f[3]! - (f[4] ?? 0)) / 100;
}

/** One timed run on a fresh containerd (and for eod a fresh snapshotter, cache and daemon). */
async function timedRun(variant: Variant, daemonEnv: string, ref: string, proxy: ThrottledProxy, work: string, n: number): Promise<Run> {
  const dir = path.join(work, `run-${n}`);
  const root = path.join(dir, "snapshotter");
  const cacheDir = path.join(dir, "cache");
  const address = path.join(dir, "eod.sock");
  fs.mkdirSync(dir, { recursive: true });
  const eod = variant !== "overlayfs";
  const args = variant.endsWith("-mount-on-pull") ? ["--mount-on-pull"] : [];
  let snapshotter: RunningSnapshotter | undefined;
  try {
    // The cache daemon first, as its service is (contrib/eod-snapshotter.service: After=eod-daemon.service).
    if (eod) await withEnv(daemonEnv, () => ensureDaemon(cacheDir, "auto"));
    if (eod) snapshotter = await startSnapshotter({ root, address, cacheDir, args });
    const containerd = await startContainerd({
      ...(eod ? { proxySnapshotter: { name: "eod", address } } : {}),
      cri: { snapshotter: eod ? "eod" : "overlayfs" }, registryMirrors: [proxy.host],
    });
    if (eod) containerd.registerMountDir(root);
    const cri = await connectCri(containerd.address);
    try {
      dropCaches();
      proxy.reset();
      const busy0 = machineBusy();
      const wall0 = Date.now();
      const t0 = performance.now();
      await cri.pullImage(ref);
      const pulled = performance.now();
      const r = await containerd.ctr(["run", "--snapshotter", eod ? "eod" : "overlayfs", ref, `bench-${n}`, ...COLD_CMD], { timeoutMs: 600_000 });
      const seconds = (performance.now() - t0) / 1000;
      if (r.code !== 0) throw new Error(`ctr run (${variant}) exited ${r.code}: ${r.stderr}\n${snapshotter?.output().slice(-3000) ?? ""}\n${containerd.logTail(20)}`);
      const busyCpuSeconds = machineBusy() - busy0;
      const events = eod ? timeline(
        requestEvents(proxy.log(), wall0),
        logEvents("snapshotter", snapshotter!.output(), SNAPSHOTTER_STEPS, wall0),
        logEvents("daemon", fs.readFileSync(path.join(cacheDir, "daemon.log"), "utf8"), DAEMON_STEPS, wall0),
        [{ at: (pulled - t0) / 1000, what: "bench: CRI PullImage answered" }, { at: seconds, what: "bench: ctr run ended" }],
      ) : undefined;
      return { variant, daemonEnv, seconds, pullSeconds: (pulled - t0) / 1000, bytes: proxy.bytes(), requests: proxy.requests(), busyCpuSeconds, ...(eod ? { eod: await eodPhases(cacheDir, wall0), timeline: events } : {}) };
    } finally {
      cri.close();
      await containerd.stop();
    }
  } finally {
    await snapshotter?.stop();
    stopCacheDaemon(dir, cacheDir);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs `f` (which starts the cache daemon) with the settings of `spec` ("A=1+B=2") in the environment. */
async function withEnv<T>(spec: string, f: () => Promise<T>): Promise<T> {
  const settings = spec.split("+").filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)] as const);
  for (const [k, v] of settings) process.env[k] = v;
  try {
    return await f();
  } finally {
    for (const [k] of settings) delete process.env[k];
  }
}

async function main(): Promise<number> {
  const missing = containerdMissing() || (kernelSupportsPreContent().ok ? false : "a kernel with fanotify pre-content events and file-backed EROFS");
  if (missing) throw new Error(`bench:containerd ${missing}`);
  const corpus = await debianCorpus();
  const layer = await corpusLayer(corpus);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "eod-bench-containerd-"));
  const reg = await startRegistry();
  const proxy = await throttledProxy(reg.host);
  try {
    progressLine("pushing the corpus image and converting it");
    const source = await pushCorpusImage(reg.host, "bench/debian", "v1", layer);
    const conv = await run(NODE, [EOD, "convert", source, `${reg.host}/bench/debian:eod`, "-o", path.join(work, "plain"), "--json"], { env: ENV, timeoutMs: 600_000 });
    if (conv.code !== 0) throw new Error(`eod convert: ${describe(conv)}\n${conv.stderr}`);
    const converted = JSON.parse(conv.stdout) as { target: { digest: string }; pushed: Array<{ size: number }> };
    let prefetch: { files: number; digest: string } | null = null;
    if (VARIANTS.some((v) => v.startsWith("eod-prefetch"))) {
      progressLine("tracing python3 -c 'import json' on a lazy mount");
      const traceFile = await traceColdStart(`${reg.host}/bench/debian:eod`, work, ENV);
      const trace = parseTrace(fs.readFileSync(traceFile, "utf8"), traceFile);
      const conv2 = await run(NODE, [EOD, "convert", source, `${reg.host}/bench/debian:eod-prefetch`, "--prefetch-from", traceFile, "--json"], { env: ENV, timeoutMs: 600_000 });
      if (conv2.code !== 0) throw new Error(`eod convert --prefetch-from: ${describe(conv2)}\n${conv2.stderr}`);
      prefetch = { files: trace.files.length, digest: (JSON.parse(conv2.stdout) as { target: { digest: string } }).target.digest };
      if (VARIANTS.includes("eod-prefetch-layer-order")) await pushWithListOnly(path.join(work, "plain"), trace.files, source, `${reg.host}/bench/debian:eod-prefetch-layer-order`);
    }

    const refs: Record<Variant, string> = {
      "overlayfs": `${proxy.host}/bench/debian:v1`,
      "eod": `${proxy.host}/bench/debian:eod`,
      "eod-prefetch": `${proxy.host}/bench/debian:eod-prefetch`,
      "eod-prefetch-layer-order": `${proxy.host}/bench/debian:eod-prefetch-layer-order`,
      "eod-mount-on-pull": `${proxy.host}/bench/debian:eod`,
      "eod-prefetch-mount-on-pull": `${proxy.host}/bench/debian:eod-prefetch`,
    };
    const runs: Run[] = [];
    let n = 0;
    const lazyRow = (v: Variant) => v === "eod" || v === "eod-mount-on-pull";
    const specs = VARIANTS.flatMap((variant) => (lazyRow(variant) && DAEMON_ENVS.length ? DAEMON_ENVS : [""]).map((daemonEnv) => ({ variant, daemonEnv })));
    for (let i = 0; i < RUNS; i++) {
      for (const { variant, daemonEnv } of specs) {
        const r = await timedRun(variant, daemonEnv, refs[variant], proxy, work, n++);
        const phases = r.eod ? `; image mounted at ${secs(r.eod.mountedAt)} s (load ${r.eod.mountMs} ms, prefetch ${r.eod.prefetchMs ?? "-"} ms), ${r.eod.misses} misses (fill p50 ${r.eod.fillP50Ms ?? "-"} ms), ${r.eod.fetches} fetches` : "";
        progressLine(`run ${i + 1}/${RUNS} ${variant}${daemonEnv ? ` ${daemonEnv}` : ""}: ${secs(r.seconds)} s (pull ${secs(r.pullSeconds)} s), ${mb(r.bytes)} MB in ${r.requests} requests${phases}; machine busy ${r.busyCpuSeconds.toFixed(1)} CPU s`);
        if (SHOW_TIMELINE && r.timeline) console.log(formatTimeline(r.timeline));
        runs.push(r);
      }
    }
    const best = (v: Variant, daemonEnv?: string): Run | null => runs.filter((r) => r.variant === v && (daemonEnv === undefined || r.daemonEnv === daemonEnv)).reduce<Run | null>((a, b) => (a && a.seconds <= b.seconds ? a : b), null);
    const full = best("overlayfs");
    const lazy = best("eod", DAEMON_ENVS[0] ?? "");
    const byEnv = DAEMON_ENVS.map((e) => ({ env: e, run: best("eod", e) }));
    const pre = best("eod-prefetch");
    const ratioTo = (r: Run | null) => (r && full ? r.seconds / full.seconds : null);
    const result = {
      bench: "containerd", date: new Date().toISOString(), git: gitState(), host: hostInfo(), runs: RUNS,
      link: "20 MB/s shared, 20 ms per answer (bench/lib/throttled-proxy.ts)", command: COLD_CMD,
      image: {
        sourceLayerBytes: layer.size,
        convertedBytes: converted.pushed.reduce((sum, b) => sum + b.size, 0),
        converted: converted.target.digest, convertedWithPrefetch: prefetch?.digest ?? null, traceFiles: prefetch?.files ?? null,
      },
      best: { overlayfs: full, eod: lazy, eodPrefetch: pre },
      ratios: { eod: ratioTo(lazy), eodPrefetch: ratioTo(pre), eodByDaemonEnv: Object.fromEntries(byEnv.map((b) => [b.env, ratioTo(b.run)])) },
      targets: TARGETS,
      layerOrder: { best: best("eod-prefetch-layer-order"), ratio: ratioTo(best("eod-prefetch-layer-order")) },
      mountOnPull: Object.fromEntries((["eod-mount-on-pull", "eod-prefetch-mount-on-pull"] as const).map((v) => [v, { best: best(v), ratio: ratioTo(best(v)) }])),
      all: runs,
    };
    console.log(`\ncontainerd: pull request → end of ${COLD_CMD.join(" ")} in a container (best of ${RUNS}; 20 MB/s + 20 ms)\n`);
    const row = (label: string, r: Run | null, target: number | null) =>
      [label, secs(r?.seconds), secs(r?.pullSeconds), r ? mb(r.bytes) : "-", r ? String(r.requests) : "-", ratio(r === full ? 1 : ratioTo(r)), target ? `<= ${target}` : ""];
    console.log(table([
      ["snapshotter / image", "time s", "of which pull s", "bytes MB", "requests", "ratio", "target"],
      row("overlayfs, unconverted (full pull + unpack)", full, null),
      ...(byEnv.length ? byEnv.map((b) => row(`eod, converted (lazy), ${b.env}`, b.run, TARGETS.lazy)) : [row("eod, converted (lazy)", lazy, TARGETS.lazy)]),
      row("eod, converted with a trace prefetch list", pre, TARGETS.prefetch),
      ...(VARIANTS.includes("eod-prefetch-layer-order") ? [row("eod, the trace's list, data in layer order", best("eod-prefetch-layer-order"), TARGETS.prefetch)] : []),
      ...(VARIANTS.includes("eod-mount-on-pull") ? (DAEMON_ENVS.length ? DAEMON_ENVS : [""]).map((e) => row(`eod, converted (lazy), --mount-on-pull${e ? `, ${e}` : ""}`, best("eod-mount-on-pull", e), TARGETS.lazy)) : []),
      ...(VARIANTS.includes("eod-prefetch-mount-on-pull") ? [row("eod, with a trace prefetch list, --mount-on-pull", best("eod-prefetch-mount-on-pull"), TARGETS.prefetch)] : []),
    ]));
    const out = writeResults("containerd", result);
    console.log(`\nresults: ${out}`);
    const missed = (r: number | null, target: number) => r !== null && r > target;
    return missed(result.ratios.eod, TARGETS.lazy) || missed(result.ratios.eodPrefetch, TARGETS.prefetch) ? 1 : 0;
  } finally {
    await proxy.close();
    await reg.stop();
    for (const m of mountsUnder(work)) progressLine(`!! left mounted: ${m}`);
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().then((code) => { process.exitCode = code; }, (err: unknown) => { console.error(err); process.exitCode = 1; });
