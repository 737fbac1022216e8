// Which scheme a registry is spoken to over, with real registries: a name that is not loopback by name gets
// verified HTTPS, and with --insecure-registry unverified HTTPS or, if no TLS answers, plain HTTP. The
// name used is this machine's host name when it resolves to a loopback address (Debian maps it to
// 127.0.1.1 in /etc/hosts); otherwise these tests skip, since the network is loopback only.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import dns from "node:dns/promises";
import os from "node:os";
import { startRegistry, type RunningRegistry } from "../helpers/registry.ts";
import { isLoopback, RegistryClient, staticCredentials } from "../../src/remote/registry/index.ts";
import { skipTest } from "../helpers/skip.ts";

let name: string | undefined;
let ip = "";
let skip: string | false = false;
let plain: RunningRegistry | undefined;
let tlsReg: RunningRegistry | undefined;

before(async () => {
  const host = os.hostname();
  try {
    ({ address: ip } = await dns.lookup(host, { family: 4 }));
  } catch { /* no address */ }
  if (!ip || !isLoopback(ip) || isLoopback(host)) {
    skip = `host name ${host} does not resolve to a loopback address (${ip || "none"})`;
    return;
  }
  name = host.toLowerCase();
  plain = await startRegistry({ ip });
  tlsReg = await startRegistry({ ip, tls: true });
});

after(async () => {
  await plain?.stop();
  await tlsReg?.stop();
});

const client = (insecure: string[]) => new RegistryClient({ credentials: staticCredentials({}), insecureRegistries: insecure, timeoutMs: 3000 });

test("a registry named by a non-loopback name gets verified HTTPS: a plain-HTTP or self-signed one fails clearly", async (t) => {
  if (skip) return skipTest(t, skip);
  const c = client([]);
  try {
    await assert.rejects(c.blobSize({ registry: `${name}:${plain!.port}`, repository: "a/b" }, `sha256:${"0".repeat(64)}`), (err: Error & { code?: string }) => {
      assert.equal(err.code, "REMOTE_IO");
      assert.match(err.message, new RegExp(`HEAD https://${name}:${plain!.port}/v2/a/b/blobs/.*TLS failed: .*name it with --insecure-registry ${name}:${plain!.port}`));
      return true;
    });
    await assert.rejects(c.blobSize({ registry: `${name}:${tlsReg!.port}`, repository: "a/b" }, `sha256:${"0".repeat(64)}`), (err: Error & { code?: string }) => {
      assert.equal(err.code, "REMOTE_IO");
      assert.match(err.message, /TLS failed: self-signed certificate.*--insecure-registry/);
      return true;
    });
    assert.equal(c.stats().retries, 0, "a TLS failure is not retried");
  } finally { await c.close(); }
});

test("--insecure-registry: unverified HTTPS when TLS answers, else plain HTTP", async (t) => {
  if (skip) return skipTest(t, skip);
  const httpsName = `${name}:${tlsReg!.port}`;
  const httpName = `${name}:${plain!.port}`;
  const c = client([httpsName, httpName]);
  try {
    for (const registry of [httpsName, httpName]) {
      const repo = { registry, repository: "team/insecure" };
      const blob = randomBytes(5000);
      const d = await c.pushBlob(repo, blob);
      assert.deepEqual(Buffer.from(await c.fetchBlob(repo, d)), blob);
    }
  } finally { await c.close(); }
});
