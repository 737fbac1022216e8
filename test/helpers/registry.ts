// The real CNCF distribution registry (Debian's docker-registry) for tests: started on 127.0.0.1 with a free
// port in a temp dir, optionally behind htpasswd basic auth or a token server (also here: a small node:http
// one signing ES256 JWTs with a key and self-signed certificate made with node:crypto), stopped by pid.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";

export interface RegistryOptions {
  /** user → password; the registry then asks for basic auth (bcrypt htpasswd made with `htpasswd -B`). */
  htpasswd?: Record<string, string>;
  /** The registry then asks for bearer tokens from this server. */
  token?: TokenServer;
  /** Storage "redirect" middleware: blob GETs are answered with a redirect to baseurl + storage path. */
  redirectBaseUrl?: string;
  /** Loopback address to listen on, default 127.0.0.1. */
  ip?: string;
  /** Serve HTTPS with a self-signed certificate made here. */
  tls?: boolean;
  /** Accept manifests whose (foreign, non-distributable) layers have `urls` (any http/https URL). */
  allowLayerUrls?: boolean;
}

export interface RunningRegistry {
  /** "127.0.0.1:<port>", the host part of references. */
  host: string;
  port: number;
  url: string;
  /** The registry's filesystem storage root. */
  dataDir: string;
  pid: number;
  stop(): Promise<void>;
}

/** Picks a port that was free a moment ago (the registry binds it itself). */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve, reject) => { s.once("error", reject); s.listen(0, host, resolve); });
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** Starts `docker-registry serve` and waits until it answers /v2/. */
export async function startRegistry(opts: RegistryOptions = {}): Promise<RunningRegistry> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "eod-registry-"));
  const dataDir = path.join(dir, "data");
  const ip = opts.ip ?? "127.0.0.1";
  const port = await freePort(ip);
  const httpConfig: Record<string, unknown> = { addr: `${ip}:${port}`, secret: randomBytes(16).toString("hex") };
  const config: Record<string, unknown> = {
    version: 0.1,
    log: { level: "warn", accesslog: { disabled: true } },
    storage: { filesystem: { rootdirectory: dataDir }, delete: { enabled: true } },
    http: httpConfig,
  };
  if (opts.tls) {
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    fs.writeFileSync(path.join(dir, "tls.crt"), selfSignedCert(privateKey, publicKey, "eod-test-registry"));
    fs.writeFileSync(path.join(dir, "tls.key"), privateKey.export({ type: "pkcs8", format: "pem" }));
    httpConfig.tls = { certificate: path.join(dir, "tls.crt"), key: path.join(dir, "tls.key") };
  }
  if (opts.htpasswd) {
    const file = path.join(dir, "htpasswd");
    const lines = Object.entries(opts.htpasswd).map(([user, pass]) => {
      const r = spawnSync("htpasswd", ["-nbB", "-C", "4", user, pass], { encoding: "utf8" });
      if (r.status !== 0) throw new Error(`htpasswd failed: ${r.stderr || r.error}`);
      return r.stdout.trim();
    });
    fs.writeFileSync(file, lines.join("\n") + "\n");
    config.auth = { htpasswd: { realm: "eod-test", path: file } };
  }
  if (opts.token) {
    const bundle = path.join(dir, "token-cert.pem");
    fs.writeFileSync(bundle, opts.token.certPem);
    config.auth = { token: { realm: opts.token.realm, service: opts.token.service, issuer: opts.token.issuer, rootcertbundle: bundle } };
  }
  if (opts.allowLayerUrls) config.validation = { manifests: { urls: { allow: ["^https?://"] } } };
  if (opts.redirectBaseUrl) {
    config.middleware = { storage: [{ name: "redirect", options: { baseurl: opts.redirectBaseUrl } }] };
  }
  const configPath = path.join(dir, "config.yml");
  fs.writeFileSync(configPath, JSON.stringify(config, null, 2)); // JSON is YAML
  const child = spawn("docker-registry", ["serve", configPath], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => { stderr = (stderr + d).slice(-8192); });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const pid = child.pid!;
  // Should this test process die first, do not leave the registry behind.
  const onExit = () => { try { process.kill(pid, "SIGKILL"); } catch { /* gone */ } };
  process.once("exit", onExit);
  const stop = async () => {
    process.removeListener("exit", onExit);
    await stopChild(child, pid, exited);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const url = `${opts.tls ? "https" : "http"}://${ip}:${port}`;
  try {
    await waitReady(url, child, () => stderr);
  } catch (err) {
    await stop();
    throw err;
  }
  return { host: `${ip}:${port}`, port, url, dataDir, pid, stop };
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the child has exited (also used for containerd). */
export async function stopChild(child: ChildProcess, pid: number, exited: Promise<void>, graceMs = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try { process.kill(pid, "SIGTERM"); } catch { return; }
  const killer = setTimeout(() => { try { process.kill(pid, "SIGKILL"); } catch { /* gone */ } }, graceMs);
  await exited;
  clearTimeout(killer);
}

async function waitReady(url: string, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited ${child.exitCode}:\n${stderr()}`);
    try {
      if (url.startsWith("https:")) {
        await new Promise<void>((resolve, reject) => {
          const s = tls.connect({ host: new URL(url).hostname, port: Number(new URL(url).port), rejectUnauthorized: false }, () => { s.end(); resolve(); });
          s.on("error", reject);
        });
      } else {
        await fetch(`${url}/v2/`); // any answer (200 or 401) means it is serving
      }
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`docker-registry did not answer at ${url} within 15 s:\n${stderr()}`);
}

// ---------------------------------------------------------------------------------------------------------
// Token server (docker's token authentication spec): GET <realm>?service=&scope=… with basic credentials,
// or POST with an OAuth2 refresh token (docker's `identitytoken`); answers a JWT signed ES256, whose header
// names the key by libtrust's key id (`kid`), which the registry looks up among the keys of rootcertbundle.

export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  certPem: string;
  /** Token lifetime in seconds for the next tokens (default 300). */
  expiresIn: number;
  /** Anonymous requests get pull-only tokens (as Docker Hub's public repositories); default refused. */
  anonymousPull: boolean;
  /** The JSON field the token is in: "token", "access_token" (OAuth2 style) or both (default). */
  field: "both" | "token" | "access_token";
  /** Requests seen: the scope asked for and whether credentials came with it. */
  requests: Array<{ method: string; scope: string[]; user?: string }>;
  close(): Promise<void>;
}

export async function startTokenServer(users: Record<string, string>, opts: { refreshTokens?: Record<string, string>; expiresIn?: number } = {}): Promise<TokenServer> {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const certPem = selfSignedCert(privateKey, publicKey, "eod-test-token-issuer");
  const spki = publicKey.export({ type: "spki", format: "der" });
  const kid = libtrustKeyId(spki);
  const service = "eod-test-registry";
  const issuer = "eod-test-issuer";
  const requests: TokenServer["requests"] = [];
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? "/", "http://x");
    let body = "";
    req.setEncoding("utf8").on("data", (d: string) => { body += d; }).on("end", () => {
      const form = req.method === "POST" ? new URLSearchParams(body) : u.searchParams;
      const scope = form.getAll("scope").flatMap((s) => s.split(" ")).filter(Boolean);
      let user: string | undefined;
      const authz = req.headers.authorization ?? "";
      if (req.method === "POST" && form.get("grant_type") === "refresh_token") {
        user = opts.refreshTokens?.[form.get("refresh_token") ?? ""];
        if (!user) return deny(res, "invalid refresh token");
      } else if (authz.startsWith("Basic ")) {
        const [name, ...rest] = Buffer.from(authz.slice(6), "base64").toString().split(":");
        if (users[name] === undefined || users[name] !== rest.join(":")) return deny(res, "invalid username or password");
        user = name;
      }
      requests.push({ method: req.method ?? "", scope, user });
      if (!user && !self.anonymousPull) return deny(res, "anonymous access is not allowed");
      if (form.get("service") !== service) return deny(res, "unknown service");
      const now = Math.floor(Date.now() / 1000);
      const access = scope.map((s) => {
        const [type, ...mid] = s.split(":");
        const actions = mid.pop() ?? "";
        return { type, name: mid.join(":"), actions: actions.split(",").filter((a) => user || a === "pull") };
      });
      const expiresIn = self.expiresIn;
      const token = jwt(privateKey, kid, { iss: issuer, sub: user ?? "", aud: service, iat: now, nbf: now - 10, exp: now + expiresIn, jti: randomBytes(8).toString("hex"), access });
      res.writeHead(200, { "content-type": "application/json" });
      const fields = self.field === "both" ? { token, access_token: token } : { [self.field]: token };
      res.end(JSON.stringify({ ...fields, expires_in: expiresIn, issued_at: new Date(now * 1000).toISOString() }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const realm = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/token`;
  const self: TokenServer = {
    realm, service, issuer, certPem, requests, expiresIn: opts.expiresIn ?? 300, anonymousPull: false, field: "both",
    close: () => new Promise<void>((resolve) => { server.close(() => resolve()); server.closeAllConnections(); }),
  };
  return self;
}

function deny(res: http.ServerResponse, why: string): void {
  res.writeHead(401, { "content-type": "application/json" });
  res.end(JSON.stringify({ details: why }));
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString("base64url");

function jwt(key: KeyObject, kid: string, claims: object): string {
  const input = `${b64url(JSON.stringify({ typ: "JWT", alg: "ES256", kid }))}.${b64url(JSON.stringify(claims))}`;
  const sig = sign("sha256", Buffer.from(input), { key, dsaEncoding: "ieee-p1363" }); // JWS wants r‖s
  return `${input}.${b64url(sig)}`;
}

/** libtrust's key id: sha256 of the DER public key, first 240 bits, base32, in 4-character groups joined by ':'. */
export function libtrustKeyId(spkiDer: Buffer): string {
  const bytes = createHash("sha256").update(spkiDer).digest().subarray(0, 30);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0, value = 0, s = "";
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) { s += alphabet[(value >>> (bits - 5)) & 31]; bits -= 5; }
    value &= (1 << bits) - 1;
  }
  return s.match(/.{1,4}/g)!.join(":");
}

// A minimal DER writer for one self-signed X.509 v3 certificate (node:crypto parses certificates but does
// not make them; the registry only takes the public key out of it when tokens name their key by `kid`).
function der(tag: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const n = body.length;
  const len = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, body]);
}

function selfSignedCert(privateKey: KeyObject, publicKey: KeyObject, cn: string): string {
  const ecdsaWithSha256 = der(0x30, Buffer.from("06082a8648ce3d040302", "hex"));
  const name = der(0x30, der(0x31, der(0x30, Buffer.from("0603550403", "hex"), der(0x0c, Buffer.from(cn)))));
  const utc = (d: Date) => der(0x17, Buffer.from(d.toISOString().replace(/[-:T]/g, "").slice(2, 14) + "Z"));
  const now = Date.now();
  const tbs = der(0x30,
    der(0xa0, der(0x02, Buffer.from([2]))), // version v3
    der(0x02, Buffer.concat([Buffer.from([1]), randomBytes(8)])), // positive serial
    ecdsaWithSha256, name,
    der(0x30, utc(new Date(now - 3600_000)), utc(new Date(now + 86400_000))),
    name,
    publicKey.export({ type: "spki", format: "der" }));
  const sig = sign("sha256", tbs, privateKey); // DER-encoded ECDSA signature, as X.509 wants
  const cert = der(0x30, tbs, ecdsaWithSha256, der(0x03, Buffer.from([0]), sig));
  return `-----BEGIN CERTIFICATE-----\n${cert.toString("base64").match(/.{1,64}/g)!.join("\n")}\n-----END CERTIFICATE-----\n`;
}

// ---------------------------------------------------------------------------------------------------------
// A small two-platform image pushed through our client: per platform a config and two random layers, a
// manifest each, and an index tagged `tag`.

export interface PushedTestImage {
  index: { digest: string; bytes: Uint8Array };
  /** By platform ("linux/amd64", "linux/arm64"): the manifest and its blobs. */
  platforms: Record<string, { digest: string; bytes: Uint8Array; config: Uint8Array; layers: Uint8Array[] }>;
}

export async function pushTestImage(
  client: import("../../src/remote/registry/index.ts").RegistryClient,
  repo: { registry: string; repository: string }, tag: string, layerSize = 200_000,
): Promise<PushedTestImage> {
  const { MEDIA_TYPES, sha256Digest } = await import("../../src/remote/registry/index.ts");
  const platforms: PushedTestImage["platforms"] = {};
  const entries = [];
  for (const [os, architecture] of [["linux", "amd64"], ["linux", "arm64"]]) {
    const layers = [randomBytes(layerSize), randomBytes(layerSize / 2 + 7)];
    const layerDescs = [];
    for (const [i, layer] of layers.entries()) {
      // one layer monolithic, one in PATCH chunks
      const d = await client.pushBlob(repo, layer, { mediaType: MEDIA_TYPES.ociLayerGzip, ...(i === 1 ? { chunkSize: 32 * 1024 } : {}) });
      layerDescs.push({ mediaType: d.mediaType, digest: d.digest, size: d.size });
    }
    const config = Buffer.from(JSON.stringify({ architecture, os, rootfs: { type: "layers", diff_ids: layerDescs.map((d) => d.digest) } }));
    const c = await client.pushBlob(repo, config, { mediaType: MEDIA_TYPES.ociConfig });
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: { mediaType: c.mediaType, digest: c.digest, size: c.size }, layers: layerDescs }));
    const m = await client.pushManifest(repo, sha256Digest(manifest), manifest, MEDIA_TYPES.ociManifest);
    platforms[`${os}/${architecture}`] = { digest: m.digest, bytes: manifest, config, layers };
    entries.push({ ...m, platform: { os, architecture } });
  }
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: entries }));
  const i = await client.pushManifest(repo, tag, index, MEDIA_TYPES.ociIndex);
  return { index: { digest: i.digest, bytes: index }, platforms };
}

export interface RegistryProxy {
  /** host:port of the proxy, to use in references instead of the registry's. */
  host: string;
  close(): Promise<void>;
}

/**
 * A loopback proxy in front of a registry for fault injection: `before` may answer a request itself (return
 * true); otherwise the registry's answer is read whole, its status and headers are passed on, and `body`
 * writes the body (default: as it came), so it can cut, stall or change it.
 */
export async function registryProxy(registryHost: string, hooks: {
  before?: (req: http.IncomingMessage, res: http.ServerResponse) => boolean;
  /** May change the registry's status and headers (e.g. drop Content-Length: the answer is then chunked). */
  head?: (req: http.IncomingMessage, answer: { status: number; headers: http.IncomingHttpHeaders }) => void;
  body?: (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void;
} = {}): Promise<RegistryProxy> {
  const [, port] = registryHost.split(":");
  const server = http.createServer((req, res) => {
    if (hooks.before?.(req, res)) return;
    const up = http.request({ host: "127.0.0.1", port: Number(port), method: req.method, path: req.url, headers: req.headers }, (ur) => {
      const answer = { status: ur.statusCode!, headers: { ...ur.headers } };
      hooks.head?.(req, answer);
      res.writeHead(answer.status, answer.headers);
      const parts: Buffer[] = [];
      ur.on("data", (d: Buffer) => parts.push(d));
      ur.on("end", () => {
        const body = Buffer.concat(parts);
        if (hooks.body) hooks.body(req, res, body);
        else res.end(body);
      });
    });
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    host: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => { server.close(() => resolve()); server.closeAllConnections(); }),
  };
}
