// What every registry request goes through: the transport (scheme, undici, redirects), the authenticator
// (tokens per scope, basic), one authorised exchange that answers a 401 challenge once, the mapping of
// statuses to errors (404 → REGISTRY_NOT_FOUND, 401/403 → REGISTRY_AUTH, others REMOTE_STATUS), and the
// project's retry policy (retry.ts). client.ts (reads) and upload.ts (pushes) are written on top of it.
import { EodError, RemoteError } from "../../errors.ts";
import { DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT_MS, positiveInt, type RemoteStats } from "../remote.ts";
import { backoffMs, DEFAULT_RETRIES, isRetryable, sleep } from "../retry.ts";
import { Authenticator, detail } from "./auth.ts";
import { dockerCredentials, type CredentialStore } from "./credentials.ts";
import { checkDigest } from "./digest.ts";
import { checkRepository } from "./reference.ts";
import { discard, toRemoteError, Transport, type Body, type Exchange, type Headers } from "./transport.ts";

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
  readonly retries: number;
  /** Requests, bytes received, retries and failed attempts since the session was made. */
  readonly stats: RemoteStats = { requests: 0, bytes: 0, retries: 0, errors: 0 };
  readonly #transport: Transport;
  readonly #auth: Authenticator;
  readonly #backoff: { baseMs?: number; capMs?: number };

  constructor(opts: RegistryClientOptions = {}) {
    this.timeoutMs = positiveInt(opts.timeoutMs, DEFAULT_TIMEOUT_MS, "timeoutMs");
    this.retries = opts.retries ?? DEFAULT_RETRIES;
    if (!Number.isInteger(this.retries) || this.retries < 0) throw new RangeError(`retries must be a non-negative integer, got ${opts.retries}`);
    this.#backoff = opts.backoff ?? {};
    this.#transport = new Transport({
      timeoutMs: this.timeoutMs,
      concurrency: positiveInt(opts.concurrency, DEFAULT_CONCURRENCY, "concurrency"),
      insecureRegistries: (opts.insecureRegistries ?? []).map((h) => h.toLowerCase()),
    });
    this.#auth = new Authenticator({
      credentials: opts.credentials ?? dockerCredentials(),
      insecure: (r) => this.#transport.isInsecure(r),
      dispatcher: this.#transport.agent,
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
      if (ex.status !== 401) return ex;
      if (authorization?.startsWith("Basic ")) {
        throw new EodError("REGISTRY_AUTH", `authentication failed for ${repo.registry}: user name or password refused (HTTP 401${detail(await readText(ex.body))})`);
      }
      if (round === 1) return ex; // a fresh token refused: statusError() says so
      await readText(ex.body); // drained, so the connection is reused
      const challenge = one(ex.headers["www-authenticate"]);
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
    return new RemoteError("REMOTE_STATUS", ex.url, `${what}: HTTP ${ex.status}${detail(text)}`, { status: ex.status });
  }

  /** The project's retry policy around one operation. */
  async retry<T>(signal: AbortSignal | undefined, once: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await once();
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        this.stats.errors++;
        if (attempt >= this.retries || !isRetryable(err)) throw err;
        await this.backoff(attempt, signal);
      }
    }
  }

  /** Waits before retry number `attempt` (retry.ts's backoff) and counts the retry. */
  async backoff(attempt: number, signal?: AbortSignal): Promise<void> {
    await sleep(backoffMs(attempt, this.#backoff), signal);
    this.stats.retries++;
  }
}

export const name = (repo: Repo) => `${repo.registry}/${repo.repository}`;

export function one(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

export function contentLength(headers: Headers): number | undefined {
  const v = one(headers["content-length"]);
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
}

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

/** The whole body, refusing more than `max` bytes (IMAGE_INVALID: a manifest that large is not one). */
export async function readAll(ex: Exchange, what: string, max: number, kind: string): Promise<Uint8Array> {
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
export async function readExact(ex: Exchange, what: string, length: number): Promise<Uint8Array> {
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

/** Size of a blob (HEAD), or undefined when the repository does not have it (reads and pushes ask). */
export async function headBlob(s: Session, repo: Repo, digest: string, opts: CallOptions = {}): Promise<number | undefined> {
  checkDigest(digest);
  const what = `HEAD blob ${name(repo)}@${digest}`;
  return s.retry(opts.signal, async () => {
    const ex = await s.exchange(repo, "pull", "HEAD", `/v2/${repo.repository}/blobs/${digest}`, { signal: opts.signal, deadlineMs: s.timeoutMs });
    await ex.body.dump().catch(() => {});
    if (ex.status === 404) return undefined;
    if (ex.status !== 200) throw await s.statusError(ex, what, repo);
    const n = contentLength(ex.headers);
    if (n === undefined) throw new RemoteError("REMOTE_IO", ex.url, `${what}: no Content-Length`);
    return n;
  });
}
