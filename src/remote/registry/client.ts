// The registry client (OCI distribution spec): manifests, blobs (whole, streamed, by Range), pushes
// (monolithic and chunked uploads, cross-repository mounts) and manifest pushes, each request authorised
// through auth.ts, sent through transport.ts, and repeated by the project's retry policy (retry.ts:
// timeouts, resets, short bodies, 5xx, 429). Everything fetched by digest is verified against it: blobs by
// streamed sha256 and their descriptor's size, manifests by the digest asked for or Docker-Content-Digest.
// Range reads are not verified here (a range is not a whole blob); the cache core verifies each chunk.
import { createHash } from "node:crypto";
import { EodError, RemoteError } from "../../errors.ts";
import { DEFAULT_CONCURRENCY, DEFAULT_MAX_FILE_BYTES, DEFAULT_TIMEOUT_MS, positiveInt, type RemoteStats } from "../remote.ts";
import { backoffMs, DEFAULT_RETRIES, isRetryable } from "../retry.ts";
import { Authenticator, detail } from "./auth.ts";
import { dockerCredentials, type CredentialStore } from "./credentials.ts";
import { checkDigest, DigestVerifier, sha256Digest, verifyBytes } from "./digest.ts";
import {
  formatPlatform, hostPlatform, isIndexType, MANIFEST_ACCEPT, MAX_MANIFEST_BYTES, parseManifest, parsePlatform, selectPlatform,
  type Descriptor, type ImageIndex, type ImageManifest, type Platform,
} from "./manifest.ts";
import { checkRepository, manifestRef, parseReference, type Reference } from "./reference.ts";
import { discard, toRemoteError, Transport, type Body, type Exchange, type Headers } from "./transport.ts";
import { bytesSource, type BlobSource } from "./blob-source.ts";

/** A repository on a registry; a parsed Reference is one. */
export interface Repo {
  registry: string;
  repository: string;
}

export interface RegistryClientOptions {
  /** Where credentials come from; default docker's config.json ($DOCKER_CONFIG or ~/.docker). */
  credentials?: CredentialStore;
  /** `--insecure-registry`: "host[:port]" names spoken to without TLS verification (or plain HTTP). */
  insecureRegistries?: string[];
  /** Silence limit per request and the whole-answer deadline of small requests, default 10 000 ms. */
  timeoutMs?: number;
  /** Attempts after the first for retryable failures, default 3 (retry.ts's policy). */
  retries?: number;
  /** Connections per origin, default 16. */
  concurrency?: number;
  /** Backoff parameters for tests (see retry.ts). */
  backoff?: { baseMs?: number; capMs?: number };
}

export interface CallOptions {
  signal?: AbortSignal;
}

export interface FetchedManifest {
  /** The digest of `bytes` (checked against the one asked for and Docker-Content-Digest). */
  digest: string;
  mediaType: string;
  size: number;
  bytes: Uint8Array;
  manifest: ImageManifest | ImageIndex;
}

export interface ResolvedImage extends FetchedManifest {
  manifest: ImageManifest;
  /** The index the manifest was chosen from, when the reference named one. */
  index?: FetchedManifest & { manifest: ImageIndex };
  /** The platform chosen from the index. */
  platform?: Platform;
}

export interface PushBlobOptions extends CallOptions {
  /** Known digest of the content (else computed by reading it once). */
  digest?: string;
  mediaType?: string;
  /** Upload in PATCH chunks of this many bytes; default: one monolithic PUT. */
  chunkSize?: number;
  /** Try a cross-repository mount from this repository (same registry) first. */
  mountFrom?: string;
}

export interface PushedBlob extends Descriptor {
  /** How the blob got there: it already was, mounted from another repository, or uploaded. */
  how: "exists" | "mounted" | "uploaded";
}

type Scope = "pull" | "push";

/**
 * A client for OCI registries. One per process is enough: it keeps connections, tokens and credentials.
 *
 * @example
 * const client = new RegistryClient({ insecureRegistries: [] });
 * try {
 *   const img = await client.resolve("127.0.0.1:5000/team/app:v1");       // platform: the host's
 *   const config = await client.fetchBlob(img.ref, img.manifest.config);   // verified
 *   const head = await client.readBlobRange(img.ref, img.manifest.layers[0].digest, 0, 512);
 * } finally {
 *   await client.close();
 * }
 */
export class RegistryClient {
  readonly #transport: Transport;
  readonly #auth: Authenticator;
  readonly #timeoutMs: number;
  readonly #retries: number;
  readonly #backoff: { baseMs?: number; capMs?: number };
  readonly #stats: RemoteStats = { requests: 0, bytes: 0, retries: 0, errors: 0 };

  constructor(opts: RegistryClientOptions = {}) {
    this.#timeoutMs = positiveInt(opts.timeoutMs, DEFAULT_TIMEOUT_MS, "timeoutMs");
    this.#retries = opts.retries ?? DEFAULT_RETRIES;
    if (!Number.isInteger(this.#retries) || this.#retries < 0) throw new RangeError(`retries must be a non-negative integer, got ${opts.retries}`);
    this.#backoff = opts.backoff ?? {};
    this.#transport = new Transport({
      timeoutMs: this.#timeoutMs,
      concurrency: positiveInt(opts.concurrency, DEFAULT_CONCURRENCY, "concurrency"),
      insecureRegistries: (opts.insecureRegistries ?? []).map((h) => h.toLowerCase()),
    });
    this.#auth = new Authenticator({
      credentials: opts.credentials ?? dockerCredentials(),
      insecure: (r) => this.#transport.isInsecure(r),
      dispatcher: this.#transport.agent,
      timeoutMs: this.#timeoutMs,
    });
  }

  /** Requests, bytes received, retries and failed attempts since the client was made. */
  stats(): RemoteStats {
    return { ...this.#stats };
  }

  async close(): Promise<void> {
    await this.#transport.close();
  }

  // ---- manifests ------------------------------------------------------------------------------------

  /** GET a manifest or index by tag or digest; its bytes are checked against the digest. */
  async getManifest(repo: Repo, reference: string, opts: CallOptions = {}): Promise<FetchedManifest> {
    const path = `/v2/${repo.repository}/manifests/${reference}`;
    const what = `manifest ${name(repo)}:${reference}`.replace(/:sha256:/, "@sha256:");
    const byDigest = reference.includes(":");
    if (byDigest) checkDigest(reference);
    return this.#retry(opts.signal, async () => {
      const ex = await this.#exchange(repo, "pull", "GET", path, { headers: { accept: MANIFEST_ACCEPT }, signal: opts.signal, deadlineMs: this.#timeoutMs });
      if (ex.status !== 200) throw await this.#statusError(ex, what, repo, byDigest ? `manifest ${reference}` : `tag ${JSON.stringify(reference)}`);
      const bytes = await readAll(ex, what, MAX_MANIFEST_BYTES, "manifest");
      this.#stats.bytes += bytes.length;
      const computed = sha256Digest(bytes);
      // A manifest is trusted only if it is the one asked for: by digest, or as the registry named it.
      if (byDigest) verifyBytes(bytes, reference, `${what}: refused`);
      const header = one(ex.headers["docker-content-digest"]);
      if (header) {
        try { checkDigest(header); } catch { throw new EodError("DIGEST_MISMATCH", `${what}: refused, Docker-Content-Digest ${JSON.stringify(header)} is not a digest`); }
        verifyBytes(bytes, header, `${what}: refused, content does not match Docker-Content-Digest`);
      }
      const { mediaType, manifest } = parseManifest(bytes, one(ex.headers["content-type"]), what);
      return { digest: byDigest ? reference : header ?? computed, mediaType, size: bytes.length, bytes, manifest };
    });
  }

  /**
   * Resolves a reference to one image manifest: through an index (OCI index or Docker manifest list) to
   * the entry of `platform` (default the host's, "linux/amd64" here). NOT_FOUND names what is missing.
   */
  async resolve(reference: string | Reference, opts: CallOptions & { platform?: Platform | string } = {}): Promise<ResolvedImage & { ref: Reference }> {
    const ref = typeof reference === "string" ? parseReference(reference) : reference;
    const want = typeof opts.platform === "string" ? parsePlatform(opts.platform) : opts.platform ?? hostPlatform();
    let top = await this.getManifest(ref, manifestRef(ref), opts);
    let index: (FetchedManifest & { manifest: ImageIndex }) | undefined;
    let platform: Platform | undefined;
    for (let depth = 0; isIndexType(top.mediaType); depth++) {
      if (depth >= 2) throw new EodError("IMAGE_INVALID", `${name(ref)}: indexes nested more than 2 deep`);
      index = top as FetchedManifest & { manifest: ImageIndex };
      const entry = selectPlatform(index.manifest, want);
      if (!entry) {
        const have = index.manifest.manifests.filter((d) => d.platform).map((d) => formatPlatform(d.platform!));
        throw new EodError("REGISTRY_NOT_FOUND", `${name(ref)}:${manifestRef(ref)} has no image for ${formatPlatform(want)} (it has ${have.join(", ") || "no platforms"}); choose one with --platform`);
      }
      platform = entry.platform;
      const next = await this.getManifest(ref, entry.digest, opts);
      if (next.size !== entry.size) throw new EodError("DIGEST_MISMATCH", `manifest ${entry.digest}: ${next.size} bytes, the index says ${entry.size}`);
      top = next;
    }
    return { ...top, manifest: top.manifest as ImageManifest, ref, ...(index ? { index } : {}), ...(platform ? { platform } : {}) };
  }

  /** PUT a manifest (or index) under a tag or its digest; returns its descriptor. */
  async pushManifest(repo: Repo, reference: string, bytes: Uint8Array, mediaType: string, opts: CallOptions = {}): Promise<Descriptor> {
    const digest = sha256Digest(bytes);
    if (reference.includes(":")) verifyBytes(bytes, reference, `manifest ${name(repo)}@${reference}`);
    parseManifest(bytes, mediaType, `manifest for ${name(repo)}:${reference}`); // do not push what we could not read back
    const what = `PUT manifest ${name(repo)}:${reference}`;
    await this.#retry(opts.signal, async () => {
      const ex = await this.#exchange(repo, "push", "PUT", `/v2/${repo.repository}/manifests/${reference}`, {
        headers: { "content-type": mediaType }, body: () => bytes, signal: opts.signal, deadlineMs: this.#timeoutMs,
      });
      if (ex.status !== 201 && ex.status !== 200) throw await this.#statusError(ex, what, repo);
      await ex.body.dump({ limit: 64 * 1024 }).catch(() => {});
      const header = one(ex.headers["docker-content-digest"]);
      if (header && header !== digest) throw new EodError("DIGEST_MISMATCH", `${what}: the registry stored it as ${header}, we sent ${digest}`);
    });
    return { mediaType, digest, size: bytes.length };
  }

  // ---- blobs: reading -------------------------------------------------------------------------------

  /** Size of a blob (HEAD), or undefined when the repository does not have it. */
  async blobSize(repo: Repo, digest: string, opts: CallOptions = {}): Promise<number | undefined> {
    checkDigest(digest);
    const what = `HEAD blob ${name(repo)}@${digest}`;
    return this.#retry(opts.signal, async () => {
      const ex = await this.#exchange(repo, "pull", "HEAD", `/v2/${repo.repository}/blobs/${digest}`, { signal: opts.signal, deadlineMs: this.#timeoutMs });
      await ex.body.dump().catch(() => {});
      if (ex.status === 404) return undefined;
      if (ex.status !== 200) throw await this.#statusError(ex, what, repo);
      const n = contentLength(ex.headers);
      if (n === undefined) throw new RemoteError("REMOTE_IO", ex.url, `${what}: no Content-Length`);
      return n;
    });
  }

  /**
   * A blob as a stream of chunks, verified: the digest (and the descriptor's size, when given) is checked
   * when the stream ends, and a mismatch throws DIGEST_MISMATCH from the iterator, so treat the chunks as
   * unverified until the loop finishes. A connection lost mid-blob is resumed with a Range request.
   */
  async *blobStream(repo: Repo, blob: string | Descriptor, opts: CallOptions = {}): AsyncGenerator<Uint8Array> {
    const { digest, size } = typeof blob === "string" ? { digest: blob, size: undefined } : blob;
    const verifier = new DigestVerifier(digest);
    const what = `blob ${name(repo)}@${digest}`;
    const path = `/v2/${repo.repository}/blobs/${digest}`;
    for (let attempt = 0; ; attempt++) {
      const from = verifier.bytes;
      let ex: Exchange | undefined;
      try {
        ex = await this.#exchange(repo, "pull", "GET", path, { headers: from > 0 ? { range: `bytes=${from}-` } : {}, signal: opts.signal });
        let skip = 0;
        if (ex.status === 206 && from > 0) {
          const m = /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(one(ex.headers["content-range"]) ?? "");
          if (!m || Number(m[1]) !== from) throw new RemoteError("REMOTE_IO", ex.url, `GET ${what}: resumed answer is for another range (Content-Range ${one(ex.headers["content-range"])})`);
        } else if (ex.status === 200) {
          skip = from; // the server ignored Range: drop what we already have
        } else {
          throw await this.#statusError(ex, `GET ${what}`, repo, `blob ${digest}`);
        }
        const declared = contentLength(ex.headers);
        if (size !== undefined && declared !== undefined && declared !== size - from + skip) {
          throw new EodError("DIGEST_MISMATCH", `${what}: registry says ${declared + from - skip} bytes, the descriptor says ${size}`);
        }
        for await (const piece of ex.body as AsyncIterable<Buffer>) {
          let chunk: Uint8Array = piece;
          if (skip > 0) {
            const n = Math.min(skip, chunk.length);
            skip -= n;
            chunk = chunk.subarray(n);
            if (chunk.length === 0) continue;
          }
          if (size !== undefined && verifier.bytes + chunk.length > size) throw new EodError("DIGEST_MISMATCH", `${what}: more than the descriptor's ${size} bytes`);
          verifier.update(chunk);
          this.#stats.bytes += chunk.length;
          yield chunk;
        }
        if (size !== undefined && verifier.bytes < size) {
          throw new RemoteError("REMOTE_IO", ex.url, `GET ${what}: answer ended after ${verifier.bytes} of ${size} bytes`);
        }
        ex = undefined;
        break;
      } catch (err) {
        if (opts.signal?.aborted) throw opts.signal.reason;
        const e = toRemoteError(err, `GET ${what}`, path, false, this.#timeoutMs);
        this.#stats.errors++;
        if (attempt >= this.#retries || !isRetryable(e)) throw e;
        await sleep(backoffMs(attempt, this.#backoff), opts.signal);
        this.#stats.retries++;
      } finally {
        if (ex) discard(ex.body);
      }
    }
    verifier.verify(what, size);
  }

  /** A whole blob, verified against its digest (and size). maxBytes default 512 MiB: IMAGE_INVALID past it. */
  async fetchBlob(repo: Repo, blob: string | Descriptor, opts: CallOptions & { maxBytes?: number } = {}): Promise<Uint8Array> {
    const max = opts.maxBytes ?? DEFAULT_MAX_FILE_BYTES;
    const size = typeof blob === "string" ? undefined : blob.size;
    const digest = typeof blob === "string" ? blob : blob.digest;
    if (size !== undefined && size > max) throw new EodError("IMAGE_INVALID", `blob ${name(repo)}@${digest}: ${size} bytes is more than the limit of ${max}`);
    const parts: Uint8Array[] = [];
    let got = 0;
    for await (const chunk of this.blobStream(repo, blob, opts)) {
      got += chunk.length;
      if (got > max) throw new EodError("IMAGE_INVALID", `blob ${name(repo)}@${digest}: more than the limit of ${max} bytes`);
      parts.push(chunk);
    }
    return Buffer.concat(parts, got);
  }

  /**
   * Exactly `length` bytes at `offset` of a blob (HTTP Range). NOT verified: a range is not the whole
   * blob; callers verify what they read (the cache core checks each chunk against its own digest).
   */
  async readBlobRange(repo: Repo, digest: string, offset: number, length: number, opts: CallOptions = {}): Promise<Uint8Array> {
    checkDigest(digest);
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) throw new RangeError(`bad range offset ${offset} length ${length}`);
    if (length === 0) return new Uint8Array(0);
    const last = offset + length - 1;
    const what = `GET blob ${name(repo)}@${digest} (bytes ${offset}-${last})`;
    return this.#retry(opts.signal, async () => {
      const ex = await this.#exchange(repo, "pull", "GET", `/v2/${repo.repository}/blobs/${digest}`, { headers: { range: `bytes=${offset}-${last}` }, signal: opts.signal, deadlineMs: this.#timeoutMs });
      if (ex.status === 206) {
        const cr = one(ex.headers["content-range"]) ?? "";
        const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(cr.trim());
        if (!m || Number(m[1]) !== offset || Number(m[2]) !== last) {
          discard(ex.body);
          throw new RemoteError("REMOTE_IO", ex.url, `${what}: answer is for another range (Content-Range ${JSON.stringify(cr)})`);
        }
      } else if (ex.status === 200) {
        if (offset !== 0) { discard(ex.body); throw new RemoteError("REMOTE_STATUS", ex.url, `${what}: HTTP 200, the server ignored the range`, { status: 200 }); }
      } else if (ex.status === 416) {
        discard(ex.body);
        throw new EodError("IMAGE_INVALID", `${what}: the range is past the end of the blob (HTTP 416)`);
      } else {
        throw await this.#statusError(ex, what, repo, `blob ${digest}`);
      }
      const out = await readExact(ex, what, length);
      this.#stats.bytes += out.length;
      return out;
    });
  }

  // ---- blobs: pushing -------------------------------------------------------------------------------

  /**
   * Pushes a blob unless the repository has it: a cross-repository mount first when `mountFrom` is given
   * (the registry may decline, then we upload), then one PUT, or PATCH chunks of `chunkSize` and a final
   * PUT. A failed upload is retried from a new upload session.
   */
  async pushBlob(repo: Repo, content: Uint8Array | BlobSource, opts: PushBlobOptions = {}): Promise<PushedBlob> {
    const source = content instanceof Uint8Array ? bytesSource(content) : content;
    const digest = opts.digest ? checkDigest(opts.digest) : await digestOf(source);
    const desc: Descriptor = { mediaType: opts.mediaType ?? "application/octet-stream", digest, size: source.size };
    if (opts.chunkSize !== undefined) positiveInt(opts.chunkSize, 1, "chunkSize");
    if ((await this.blobSize(repo, digest, opts)) !== undefined) return { ...desc, how: "exists" };
    const what = `push blob ${name(repo)}@${digest}`;
    return this.#retry(opts.signal, async () => {
      const start = await this.#startUpload(repo, digest, opts.mountFrom, what, opts.signal);
      if (start.mounted) return { ...desc, how: "mounted" as const };
      let location = start.location;
      if (opts.chunkSize !== undefined && source.size > 0) {
        for (let pos = 0; pos < source.size; pos += opts.chunkSize) {
          const n = Math.min(opts.chunkSize, source.size - pos);
          const piece = await source.read(pos, n);
          const ex = await this.#exchange(repo, "push", "PATCH", location, {
            headers: { "content-type": "application/octet-stream", "content-range": `${pos}-${pos + n - 1}`, "content-length": String(n) },
            body: () => piece, signal: opts.signal, // no overall deadline for a big chunk: undici's silence limits apply
          });
          if (ex.status !== 202) throw await this.#statusError(ex, `${what}: PATCH bytes ${pos}-${pos + n - 1}`, repo);
          await ex.body.dump({ limit: 64 * 1024 }).catch(() => {});
          // The registry says what it holds now ("0-<last>"); anything else and the final digest would not match.
          const held = one(ex.headers.range);
          if (held !== undefined && held.replace(/^bytes=/, "") !== `0-${pos + n - 1}`) {
            throw new RemoteError("REMOTE_IO", ex.url, `${what}: after PATCH bytes ${pos}-${pos + n - 1} the registry holds ${held}`);
          }
          location = this.#location(ex, location, what);
        }
        await this.#finishUpload(repo, location, digest, undefined, what, opts.signal);
      } else {
        await this.#finishUpload(repo, location, digest, source, what, opts.signal);
      }
      return { ...desc, how: "uploaded" as const };
    });
  }

  /** Cross-repository mount of a blob `from` another repository of the same registry; false if declined. */
  async mountBlob(repo: Repo, digest: string, from: string, opts: CallOptions = {}): Promise<boolean> {
    checkDigest(digest);
    return this.#retry(opts.signal, async () => {
      const start = await this.#startUpload(repo, digest, from, `mount blob ${digest} from ${from} into ${name(repo)}`, opts.signal);
      if (!start.mounted) {
        // Declined: cancel the upload session the registry opened instead.
        const ex = await this.#exchange(repo, "push", "DELETE", start.location, { signal: opts.signal, deadlineMs: this.#timeoutMs }).catch(() => undefined);
        await ex?.body.dump().catch(() => {});
      }
      return start.mounted;
    });
  }

  async #startUpload(repo: Repo, digest: string, mountFrom: string | undefined, what: string, signal?: AbortSignal): Promise<{ mounted: true } | { mounted: false; location: string }> {
    const query = mountFrom ? `?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(mountFrom)}` : "";
    const ex = await this.#exchange(repo, "push", "POST", `/v2/${repo.repository}/blobs/uploads/${query}`, {
      headers: { "content-length": "0" }, signal, deadlineMs: this.#timeoutMs, mountFrom,
    });
    await ex.body.dump({ limit: 64 * 1024 }).catch(() => {});
    if (ex.status === 201 && mountFrom) return { mounted: true };
    if (ex.status !== 202) throw await this.#statusError(ex, `${what}: POST upload`, repo);
    return { mounted: false, location: this.#location(ex, undefined, what) };
  }

  async #finishUpload(repo: Repo, location: string, digest: string, source: BlobSource | undefined, what: string, signal?: AbortSignal): Promise<void> {
    const url = new URL(location);
    url.searchParams.set("digest", digest);
    const size = source?.size ?? 0;
    const ex = await this.#exchange(repo, "push", "PUT", url.href, {
      // Content-Type matters: without it the registry's Go form parsing eats the body.
      headers: { "content-type": "application/octet-stream", "content-length": String(size) },
      body: source && size > 0 ? () => pieces(source) : undefined, signal,
    });
    if (ex.status !== 201) throw await this.#statusError(ex, `${what}: PUT`, repo);
    await ex.body.dump({ limit: 64 * 1024 }).catch(() => {});
    const header = one(ex.headers["docker-content-digest"]);
    if (header && header !== digest) throw new EodError("DIGEST_MISMATCH", `${what}: the registry stored ${header}`);
  }

  /** The upload URL from Location (absolute or relative to the registry). */
  #location(ex: Exchange, previous: string | undefined, what: string): string {
    const loc = one(ex.headers.location);
    if (!loc) throw new RemoteError("REMOTE_IO", ex.url, `${what}: the registry gave no upload Location`);
    return new URL(loc, previous ?? ex.url).href;
  }

  // ---- plumbing -------------------------------------------------------------------------------------

  /**
   * One authorised exchange: the cached token or basic header for the scope; on 401 the challenge is
   * answered and the request sent once more; a second 401 means the credentials were refused.
   */
  async #exchange(repo: Repo, scope: Scope, method: string, pathOrUrl: string, opts: {
    headers?: Record<string, string>; body?: () => Uint8Array | AsyncIterable<Uint8Array>; signal?: AbortSignal; deadlineMs?: number; mountFrom?: string;
  }): Promise<Exchange> {
    checkRepository(repo.repository);
    if (opts.mountFrom) checkRepository(opts.mountFrom);
    const origin = await this.#transport.origin(repo.registry, opts.signal);
    const url = /^https?:\/\//.test(pathOrUrl) ? pathOrUrl : origin + pathOrUrl;
    let scopes = `repository:${repo.repository}:${scope === "push" ? "pull,push" : "pull"}`;
    if (opts.mountFrom) scopes += ` repository:${opts.mountFrom}:pull`;
    let authorization = await this.#auth.cached(repo.registry, scopes);
    for (let round = 0; ; round++) {
      this.#stats.requests++;
      const ex = await this.#transport.send(url, authorization, { method, headers: opts.headers, body: opts.body?.(), signal: opts.signal, deadlineMs: opts.deadlineMs });
      if (ex.status !== 401) return ex;
      if (authorization?.startsWith("Basic ")) {
        throw new EodError("REGISTRY_AUTH", `authentication failed for ${repo.registry}: user name or password refused (HTTP 401${detail(await readText(ex.body))})`);
      }
      if (round === 1) return ex; // a fresh token refused: #statusError says so
      await readText(ex.body); // drained, so the connection is reused
      const challenge = one(ex.headers["www-authenticate"]);
      authorization = await this.#auth.answer(repo.registry, scopes, challenge, authorization, opts.signal);
    }
  }

  /** The error for an unexpected status, with the registry's own error message. */
  async #statusError(ex: Exchange, what: string, repo: Repo, missing?: string): Promise<EodError> {
    const text = ex.status >= 300 ? await readText(ex.body) : (discard(ex.body), "");
    if (ex.status === 404 && missing) return new EodError("REGISTRY_NOT_FOUND", `${missing} not found in ${name(repo)} (${what}: HTTP 404${detail(text)})`);
    if (ex.status === 404) return new EodError("REGISTRY_NOT_FOUND", `${what}: HTTP 404${detail(text)}`);
    if (ex.status === 401) return new EodError("REGISTRY_AUTH", `authentication failed for ${repo.registry}: ${what}: HTTP 401${detail(text)}`);
    if (ex.status === 403) return new EodError("REGISTRY_AUTH", `access denied by ${repo.registry}: ${what}: HTTP 403${detail(text)}`);
    return new RemoteError("REMOTE_STATUS", ex.url, `${what}: HTTP ${ex.status}${detail(text)}`, { status: ex.status });
  }

  /** The project's retry policy around one operation. */
  async #retry<T>(signal: AbortSignal | undefined, once: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await once();
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        this.#stats.errors++;
        if (attempt >= this.#retries || !isRetryable(err)) throw err;
        await sleep(backoffMs(attempt, this.#backoff), signal);
        this.#stats.retries++;
      }
    }
  }
}

const name = (repo: Repo) => `${repo.registry}/${repo.repository}`;

function one(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function contentLength(headers: Headers): number | undefined {
  const v = one(headers["content-length"]);
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
}

async function readText(body: Body): Promise<string> {
  try {
    const buf = await readLimited(body, 64 * 1024);
    return new TextDecoder().decode(buf);
  } catch {
    return "";
  }
}

/** Reads at most `max` bytes of a body and drops the rest. */
async function readLimited(body: Body, max: number): Promise<Uint8Array> {
  const parts: Buffer[] = [];
  let got = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    if (got + chunk.length > max) { discard(body); break; }
    parts.push(chunk);
    got += chunk.length;
  }
  return Buffer.concat(parts, got);
}

/** The whole body, refusing more than `max` bytes (IMAGE_INVALID: a manifest that large is not one). */
async function readAll(ex: Exchange, what: string, max: number, kind: string): Promise<Uint8Array> {
  const declared = contentLength(ex.headers);
  if (declared !== undefined && declared > max) { discard(ex.body); throw new EodError("IMAGE_INVALID", `${what}: ${declared} bytes is more than the ${kind} limit of ${max}`); }
  const parts: Buffer[] = [];
  let got = 0;
  try {
    for await (const chunk of ex.body as AsyncIterable<Buffer>) {
      got += chunk.length;
      if (got > max) { discard(ex.body); throw new EodError("IMAGE_INVALID", `${what}: more than the ${kind} limit of ${max} bytes`); }
      parts.push(chunk);
    }
  } catch (err) {
    throw toRemoteError(err, `GET ${what}`, ex.url, false, 0);
  }
  if (declared !== undefined && got !== declared) throw new RemoteError("REMOTE_IO", ex.url, `GET ${what}: answer ended after ${got} of ${declared} bytes`);
  return Buffer.concat(parts, got);
}

/** Exactly `length` bytes of body, else a retryable REMOTE_IO. */
async function readExact(ex: Exchange, what: string, length: number): Promise<Uint8Array> {
  const declared = contentLength(ex.headers);
  if (declared !== undefined && declared !== length) {
    discard(ex.body);
    throw new RemoteError("REMOTE_IO", ex.url, `${what}: answer has ${declared} bytes (Content-Length), asked for ${length}`);
  }
  const out = new Uint8Array(length);
  let got = 0;
  try {
    for await (const chunk of ex.body as AsyncIterable<Buffer>) {
      if (got + chunk.length > length) { discard(ex.body); throw new RemoteError("REMOTE_IO", ex.url, `${what}: answer is longer than ${length} bytes`); }
      out.set(chunk, got);
      got += chunk.length;
    }
  } catch (err) {
    throw toRemoteError(err, what, ex.url, false, 0);
  }
  if (got !== length) throw new RemoteError("REMOTE_IO", ex.url, `${what}: answer ended after ${got} of ${length} bytes`);
  return out;
}

/** The source read in 1 MiB pieces, as an upload body. */
async function* pieces(source: BlobSource): AsyncGenerator<Uint8Array> {
  const step = 1 << 20;
  for (let pos = 0; pos < source.size; pos += step) yield await source.read(pos, Math.min(step, source.size - pos));
}

async function digestOf(source: BlobSource): Promise<string> {
  const h = createHash("sha256");
  for await (const p of pieces(source)) h.update(p);
  return `sha256:${h.digest("hex")}`;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) { reject(signal.reason); return; }
    const onAbort = () => { clearTimeout(timer); reject(signal!.reason); };
    const timer = setTimeout(() => { signal?.removeEventListener("abort", onAbort); resolve(); }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
