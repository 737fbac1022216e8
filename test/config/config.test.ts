// The configuration object: one file, the environment and flags, in that order of precedence, each bad value
// refused naming its key and where it came from; the documented table lists every key.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { forwardedFlags, handOverEnv, handOverOf, loadConfig } from "../../src/config/config.ts";
import { KEYS } from "../../src/config/keys.ts";
import type { EodError } from "../../src/errors.ts";
import { REPO } from "../helpers/cli.ts";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "eod-config-"));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function configFile(body: unknown): string {
  const file = path.join(dir, `config-${Math.random().toString(36).slice(2)}.json`);
  fs.writeFileSync(file, typeof body === "string" ? body : JSON.stringify(body));
  return file;
}

const FILE = {
  cache_dir: "/srv/eod-cache",
  frontend: "fanotify",
  metrics: { listen: "127.0.0.1:9187" },
  cache: { size: "20G", high_percent: 90, low_percent: "80%", min_fetch: "128K", prefetch_slots: 2 },
  fscache: { limits: { bcull: 20, brun: 30 }, domain: "mine" },
  remote: { timeout_ms: 5000, retries: 1, insecure_registries: ["registry.local:5000"] },
  daemon: { start_timeout_ms: 90000 },
};

test("a config file is parsed into the typed configuration", () => {
  const file = configFile(FILE);
  const c = loadConfig({ config: file }, {});
  assert.equal(c.file, file);
  assert.equal(c.cacheDir, "/srv/eod-cache");
  assert.equal(c.frontend, "fanotify");
  assert.equal(c.metricsListen, "127.0.0.1:9187");
  assert.equal(c.daemonStartTimeoutMs, 90000);
  assert.deepEqual(c.cache, { cacheSize: 20 * 1024 ** 3, cacheHighPct: 90, cacheLowPct: 80, minFetch: 128 * 1024, prefetchSlots: 2 });
  assert.deepEqual(c.fscache, { limits: { brun: 30, bcull: 20, bstop: 3, frun: 10, fcull: 7, fstop: 3 }, domain: "mine" });
  assert.deepEqual(c.remote, { timeoutMs: 5000, retries: 1, insecureRegistries: ["registry.local:5000"] });
});

test("defaults without a file: the cache directory, auto, no budget, the fscache default limits", () => {
  const c = loadConfig({ config: configFile({}) }, {});
  assert.equal(c.cacheDir, "/var/cache/erofs-ondemand");
  assert.equal(c.frontend, "auto");
  assert.deepEqual(c.cache, {});
  assert.deepEqual(c.remote, { insecureRegistries: [] });
  assert.equal(c.daemonStartTimeoutMs, 30_000);
});

test("flags override the environment, which overrides the file", () => {
  const file = configFile(FILE);
  const env = { EOD_CACHE_SIZE: "1G", EOD_REMOTE_TIMEOUT_MS: "700", EOD_CACHE_DIR: "/env/cache" };
  const c = loadConfig({ config: file, "cache-size": "2G", "insecure-registry": ["flag.local"] }, env);
  assert.equal(c.cache.cacheSize, 2 * 1024 ** 3, "flag over env and file");
  assert.equal(c.remote.timeoutMs, 700, "env over file");
  assert.equal(c.cacheDir, "/env/cache", "env over file");
  assert.deepEqual(c.remote.insecureRegistries, ["flag.local"], "flag over file");
  assert.equal(c.cache.cacheHighPct, 90, "file where nothing else says");
  assert.equal(loadConfig({ config: file, "cache-dir": "rel/cache" }, env).cacheDir, path.resolve("rel/cache"));
});

test("$EOD_CONFIG names the file when --config does not", () => {
  const file = configFile({ frontend: "fscache" });
  assert.equal(loadConfig({}, { EOD_CONFIG: file }).frontend, "fscache");
  assert.equal(loadConfig({ config: configFile({}) }, { EOD_CONFIG: file }).frontend, "auto");
});

test("a bad value is a USAGE error naming the key and its source", () => {
  const file = configFile({ cache: { size: "lots" } });
  assert.throws(() => loadConfig({ config: file }, {}), (e: Error & { code?: string }) => e.code === "USAGE" && e.message.includes(`cache.size in ${file}`) && e.message.includes('"lots"'));
  assert.throws(() => loadConfig({ config: configFile({}), "cache-size": "x" }, {}), { code: "USAGE", message: /--cache-size/ });
  assert.throws(() => loadConfig({ config: configFile({}) }, { EOD_REMOTE_RETRIES: "-1" }), { code: "USAGE", message: /\$EOD_REMOTE_RETRIES/ });
  assert.throws(() => loadConfig({ config: configFile({ frontend: "nbd" }) }, {}), { code: "USAGE", message: /frontend in .*one of auto, fanotify, fscache, fuse/ });
  assert.throws(() => loadConfig({ config: configFile({ mount: { loop_devices: "never" } }) }, {}), { code: "USAGE", message: /mount\.loop_devices in .*one of auto, always/ });
  assert.throws(() => loadConfig({ config: configFile({ fscache: { limits: "bcull=90" } }) }, {}), { code: "USAGE", message: /fscache\.limits in .*stop < cull < run/ });
  assert.throws(() => loadConfig({ config: configFile({ metrics: { listen: "nowhere" } }) }, {}), { code: "USAGE", message: /metrics\.listen in / });
  assert.throws(() => loadConfig({ config: configFile({ cache: { high_percent: 80, low_percent: 85 } }) }, {}), { code: "USAGE", message: /low < high/ });
  assert.throws(() => loadConfig({ "cache-high": "ninety" }, {}), { code: "USAGE", message: /--cache-high/ });
  assert.throws(() => loadConfig({ config: configFile({ remote: { insecure_registries: "a b" } }) }, {}), { code: "USAGE", message: /remote\.insecure_registries/ });
});

test("an unknown key, a file that is not JSON, a missing file named by --config: errors naming the file", () => {
  const typo = configFile({ cache: { sise: "20G" } });
  assert.throws(() => loadConfig({ config: typo }, {}), (e: Error & { code?: string }) => e.code === "USAGE" && e.message.includes(`Unknown key cache.sise in the config file ${typo}`));
  assert.throws(() => loadConfig({ config: configFile({ cache_size: 1 }) }, {}), { code: "USAGE", message: /Unknown key cache_size/ });
  const broken = configFile("{ cache: ");
  assert.throws(() => loadConfig({ config: broken }, {}), (e: Error & { code?: string }) => e.code === "USAGE" && e.message.includes(`Cannot read the config file ${broken}`));
  assert.throws(() => loadConfig({ config: configFile([1]) }, {}), { code: "USAGE", message: /must hold a JSON object/ });
  assert.throws(() => loadConfig({ config: path.join(dir, "missing.json") }, {}), { code: "USAGE", message: /missing\.json: ENOENT/ });
});

test("forwardedFlags() passes the settings given as flags on to a daemon, and --config as an absolute path", () => {
  assert.deepEqual(
    forwardedFlags({ config: "c.json", "cache-size": "1G", "insecure-registry": ["a", "b"], json: true, "cache-dir": "/x" }, ["cache-dir"]),
    ["--config", path.resolve("c.json"), "--cache-size", "1G", "--insecure-registry", "a", "--insecure-registry", "b"],
  );
});

test("the holder's hand-over round-trips through the environment", () => {
  const none = { cachefilesFd: undefined, fanotifyFd: undefined, fuseFd: undefined };
  assert.deepEqual(handOverOf(handOverEnv("fscache", true, "asked for")), { ...none, cachefilesFd: 3, restore: true, restarted: true, reason: "asked for" });
  assert.deepEqual(handOverOf(handOverEnv("fanotify", false, "auto: first")), { ...none, fanotifyFd: 3, restore: false, restarted: false, reason: "auto: first" });
  assert.deepEqual(handOverOf(handOverEnv("fuse", true, "auto: fanotify not possible")), { ...none, fuseFd: 3, restore: false, restarted: true, reason: "auto: fanotify not possible" });
  assert.deepEqual(handOverOf({}), { ...none, restore: false, restarted: false, reason: undefined });
  assert.throws(() => handOverOf({ EOD_CACHEFILES_FD: "three" }), { code: "USAGE", message: /\$EOD_CACHEFILES_FD/ });
});

test("docs/configuration.md lists every key, its variable and its flag", () => {
  const doc = fs.readFileSync(path.join(REPO, "docs/configuration.md"), "utf8");
  for (const k of KEYS) {
    const row = doc.split("\n").find((l) => l.startsWith(`| \`${k.file}\``));
    assert.ok(row, `no row for ${k.file}`);
    if (k.env) assert.ok(row.includes(`\`${k.env}\``), `${k.file}: ${k.env} missing`);
    if (k.flag) assert.ok(row.includes(`\`--${k.flag}\``), `${k.file}: --${k.flag} missing`);
  }
  for (const v of ["EOD_CONFIG", "EOD_CACHEFILES_FD", "EOD_FANOTIFY_FD", "EOD_CACHEFILES_RESTORE", "EOD_DAEMON_RESTARTED"]) assert.ok(doc.includes(`\`${v}\``), v);
});

test("snapshotter.mount_on_pull: off by default; on by flag, variable or file; its idle time a duration with a unit, or seconds", () => {
  assert.deepEqual([loadConfig({}, {}).snapshotter.mountOnPull, loadConfig({}, {}).snapshotter.mountOnPullIdleMs], [false, 600_000]);
  assert.equal(loadConfig({ "mount-on-pull": true }, {}).snapshotter.mountOnPull, true);
  assert.equal(loadConfig({}, { EOD_SNAPSHOTTER_MOUNT_ON_PULL: "1" }).snapshotter.mountOnPull, true);
  const file = configFile({ snapshotter: { mount_on_pull: true, mount_on_pull_idle: 90 } });
  assert.deepEqual(loadConfig({ config: file }, {}).snapshotter, { ...loadConfig({}, {}).snapshotter, mountOnPull: true, mountOnPullIdleMs: 90_000 });
  for (const [raw, ms] of [["500ms", 500], ["90s", 90_000], ["10m", 600_000], ["1h", 3_600_000]] as const) {
    assert.equal(loadConfig({ "mount-on-pull-idle": raw }, {}).snapshotter.mountOnPullIdleMs, ms, raw);
  }
  for (const raw of ["10", "ten minutes", "-1s"]) {
    assert.throws(() => loadConfig({ "mount-on-pull-idle": raw }, {}), (e: EodError) => e.code === "USAGE" && e.message.includes("--mount-on-pull-idle"), raw);
  }
});
