// What every registry request goes through: the transport (scheme, undici, redirects), the authenticator
// (tokens per scope, basic), one authorised exchange that answers a 401 challenge once, the mapping of
// statuses to errors (404 → REGISTRY_NOT_FOUND, 401/403 → REGISTRY_AUTH, others REMOTE_STATUS), and the
// project's one retry loop (retry.ts). client.ts (reads) and upload.ts (pushes) are written on top of it.
import { EodError, RemoteError } from "../../errors.ts";
import { contentLength, discard, one, readWholeBody, statusError, toRemoteError, type Body } from "../answer.ts";
import { DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT_MS, positiveInt, type RemoteStats } from "../remote.ts";
import { checkRetries, retrying, RetryLoop, type RetryOptions } from "../retry.ts";
import { Authenticator, detail } from "./auth.ts";
import { dockerCredentials, type CredentialStore } from "./credentials.ts";
import { checkDigest } from "./digest.ts";
import { checkRepository } from "./reference.ts";
import { Transport, type Exchange } from "./transport.ts";

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

export type Scope = "pull" | "push";

export interface ExchangeOptions {
  headers?: Record<string, string>;
  /** Called for each attempt, so a body can be sent again after a 401. */
  body?: () => Uint8Array | AsyncIterable<Uint8Array>;
  signal?: AbortSignal;
  deadlineMs?: number;
  /** A cross-repository mount: the token also needs pull on this repository. */
  mountFrom?: string;
}

export class Session {
  readonly timeoutMs: number;
  /** Requests, bytes received, retries and failed attempts since the session was made. */
  readonly stats: RemoteStats = { requests: 0, bytes: 0, retries: 0, errors: 0 };
  readonly #transport: Transport;
  readonly #auth: Authenticator;
  readonly #retry: RetryOptions;

  constructor(opts: RegistryClientOptions = {}) {
    this.timeoutMs = positiveInt(opts.timeoutMs, DEFAULT_TIMEOUT_MS, "timeoutMs");
    this.#retry = { retries: checkRetries(opts.retries), baseMs: opts.backoff?.baseMs, capMs: opts.backoff?.capMs };
    this.#transport = new Transport({
      timeoutMs: this.timeoutMs,
      concurrency: positiveInt(opts.concurrency, DEFAULT_CONCURRENCY, "concurrency"),
      insecureRegistries: (opts.insecureRegistries ?? []).map((h) => h.toLowerCase()),
    });
    this.#auth = new Authenticator({
      credentials: opts.credentials ?? dockerCredentials(),
      insecure: (r) => this.#transport.isInsecure(r),
      dispatcher: async () => (await this.#transport.agents()).verified,
      timeoutMs: this.timeoutMs,
    });
  }

  async close(): Promise<void> {
    await this.#transport.close();
  }

  /**
   * One authorised exchange: the cached token or basic header for the scope; on 401 the challenge is
   * answered and the request sent once more; a second 401 means the credentials were refused.
   */
  async exchange(repo: Repo, scope: Scope, method: string, pathOrUrl: string, opts: ExchangeOptions): Promise<Exchange> {
    checkRepository(repo.repository);
    if (opts.mountFrom) checkRepository(opts.mountFrom);
    const origin = await this.#transport.origin(repo.registry, opts.signal);
    const url = /^https?:\/\//.test(pathOrUrl) ? pathOrUrl : origin + pathOrUrl;
    let scopes = `repository:${repo.repository}:${scope === "push" ? "pull,push" : "pull"}`;
    if (opts.mountFrom) scopes += ` repository:${opts.mountFrom}:pull`;
    let authorization = await this.#auth.cached(repo.registry, scopes);
    for (let round = 0; ; round++) {
      this.stats.requests++;
      const ex = await this.#transport.send(url, authorization, { method, headers: opts.headers, body: opts.body?.(), signal: opts.signal, deadlineMs: opts.deadlineMs });
      if ((ex.status === 401 || ex.status === 403) && new URL(ex.url).origin !== new URL(url).origin) {
        // A redirect target (object storage) refused: its challenge is not the registry's to answer and our
        // credentials are not for it. Retryable: a new redirect brings a newly signed URL.
        const at = new URL(ex.url).origin;
        throw new RemoteError("REMOTE_IO", ex.url, `${method} ${url}: redirected to ${at}, which refused it (HTTP ${ex.status}${detail(await readText(ex.body))}); credentials are never sent there`, { status: ex.status });
      }
      if (ex.status !== 401) return ex;
      if (authorization?.startsWith("Basic ")) {
        throw new EodError("REGISTRY_AUTH", `authentication failed for ${repo.registry}: user name or password refused (HTTP 401${detail(await readText(ex.body))})`);
      }
      if (round === 1) return ex; // a fresh token refused: statusError() says so
      await readText(ex.body); // drained, so the connection is reused
      // Several WWW-Authenticate lines are several challenges (RFC 9110): all of them count.
      const h = ex.headers["www-authenticate"];
      const challenge = Array.isArray(h) ? h.join(", ") : h;
      authorization = await this.#auth.answer(repo.registry, scopes, challenge, authorization, opts.signal);
    }
  }

  /** The error for an unexpected status, with the registry's own error message. */
  async statusError(ex: Exchange, what: string, repo: Repo, missing?: string): Promise<EodError> {
    const text = ex.status >= 300 ? await readText(ex.body) : (discard(ex.body), "");
    if (ex.status === 404 && missing) return new EodError("REGISTRY_NOT_FOUND", `${missing} not found in ${name(repo)} (${what}: HTTP 404${detail(text)})`);
    if (ex.status === 404) return new EodError("REGISTRY_NOT_FOUND", `${what}: HTTP 404${detail(text)}`);
    if (ex.status === 401) return new EodError("REGISTRY_AUTH", `authentication failed for ${repo.registry}: ${what}: HTTP 401${detail(text)}`);
    if (ex.status === 403) return new EodError("REGISTRY_AUTH", `access denied by ${repo.registry}: ${what}: HTTP 403${detail(text)}`);
    return statusError(what, ex.url, ex.status, ex.headers, detail(text), "registry");
  }

  /** retry.ts's loop around one operation, counted in this session's stats. */
  retry<T>(signal: AbortSignal | undefined, once: () => Promise<T>): Promise<T> {
    return retrying(this.#retry, signal, once, this.stats);
  }

  /** The same loop for an operation that cannot be one callback (a resumed stream). */
  retryLoop(signal?: AbortSignal): RetryLoop {
    return new RetryLoop(this.#retry, signal, this.stats);
  }
}

export const name = (repo: Repo) => `${repo.registry}/${repo.repository}`;

export async function readText(body: Body): Promise<string> {
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

/** The whole body (answer.ts's reader), refusing more than `max` bytes (IMAGE_INVALID: a manifest that large is not one). */
export async function readAll(ex: Exchange, what: string, max: number, kind: string): Promise<Uint8Array> {
  try {
    return await readWholeBody(ex, `GET ${what}`, max, `${kind} `);
  } catch (err) {
    throw toRemoteError(err, `GET ${what}`, ex.url, false, 0);
  }
}

/**
 * Size of a blob (HEAD), or undefined when the repository does not have it (reads and pushes ask). A
 * registry that refuses HEAD (405, 501) or answers it without Content-Length is asked by a one-byte GET.
 */
export async function headBlob(s: Session, repo: Repo, digest: string, opts: CallOptions = {}): Promise<number | undefined> {
  checkDigest(digest);
  const what = `HEAD blob ${name(repo)}@${digest}`;
  const path = `/v2/${repo.repository}/blobs/${digest}`;
  return s.retry(opts.signal, async () => {
    const ex = await s.exchange(repo, "pull", "HEAD", path, { signal: opts.signal, deadlineMs: s.timeoutMs });
    await ex.body.dump().catch(() => {});
    if (ex.status === 404) return undefined;
    const n = ex.status === 200 ? contentLength(ex.headers) : undefined;
    if (n !== undefined) return n;
    if (ex.status !== 200 && ex.status !== 405 && ex.status !== 501) throw await s.statusError(ex, what, repo);
    return sizeByGet(s, repo, path, `GET blob ${name(repo)}@${digest} (size)`, opts.signal);
  });
}

/** A blob's size from `GET Range: bytes=0-0`: Content-Range's total (206), Content-Length (200), 0 (416). */
async function sizeByGet(s: Session, repo: Repo, path: string, what: string, signal?: AbortSignal): Promise<number | undefined> {
  const ex = await s.exchange(repo, "pull", "GET", path, { headers: { range: "bytes=0-0" }, signal, deadlineMs: s.timeoutMs });
  if (ex.status === 404) { discard(ex.body); return undefined; }
  if (ex.status === 416) { discard(ex.body); return 0; } // no byte 0: an empty blob
  if (ex.status === 206) {
    discard(ex.body);
    const total = /^bytes \d+-\d+\/(\d+)$/.exec((one(ex.headers["content-range"]) ?? "").trim())?.[1];
    if (total === undefined) throw new RemoteError("REMOTE_IO", ex.url, `${what}: no total size in Content-Range ${JSON.stringify(one(ex.headers["content-range"]))}`);
    return Number(total);
  }
  if (ex.status !== 200) throw await s.statusError(ex, what, repo);
  const n = contentLength(ex.headers);
  if (n !== undefined) { discard(ex.body); return n; }
  let total = 0; // neither: count the body (last resort, bounded by the blob)
  try {
    for await (const chunk of ex.body as AsyncIterable<Buffer>) total += chunk.length;
  } catch (err) {
    throw toRemoteError(err, what, ex.url, false, 0);
  }
  return total;
}
