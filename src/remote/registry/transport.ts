// One HTTP exchange with a registry, through undici: which scheme a registry is spoken to over (plain HTTP
// on loopback, verified HTTPS elsewhere, unverified HTTPS falling back to HTTP for --insecure-registry),
// redirects followed by hand so that an Authorization header never leaves the origin it was meant for,
// and undici's failures mapped to RemoteErrors whose `retryable` tells the retry loop what to do.
import { Readable } from "node:stream";
import type { Agent } from "undici";
import { EodError, RemoteError } from "../../errors.ts";
import { toRemoteError as toGenericError, type Answer } from "../answer.ts";
import { apiHost, isLoopback } from "./reference.ts";

/** A registry's answer; `url` is the one that answered, after redirects. */
export type Exchange = Answer;

export interface SendOptions {
  method: string;
  headers?: Record<string, string>;
  /** Sent once; a redirected request with a body is refused (registries redirect GETs only). */
  body?: Uint8Array | AsyncIterable<Uint8Array> | string;
  signal?: AbortSignal;
  /** Whole-exchange deadline (headers and body); undefined: only undici's silence timeouts apply. */
  deadlineMs?: number;
}

const MAX_REDIRECTS = 5;

export interface TransportOptions {
  timeoutMs: number;
  concurrency: number;
  /** Registries ("host[:port]") to speak to without TLS verification, or plain HTTP if TLS fails. */
  insecureRegistries: string[];
}

export class Transport {
  readonly #opts: TransportOptions;
  readonly #origins = new Map<string, Promise<string>>();
  #agents: Promise<{ verified: Agent; insecure: Agent }> | null = null;
  #closed = false;

  constructor(opts: TransportOptions) {
    this.#opts = opts;
  }

  /**
   * undici's agents (TLS verified, and not for --insecure-registry), made at the first request: undici is
   * loaded then, so a command that imports the client but talks to no registry does not pay for it.
   */
  agents(): Promise<{ verified: Agent; insecure: Agent }> {
    // An EodError, not a RemoteError: the retry loop does not repeat it.
    if (this.#closed) return Promise.reject(new EodError("REMOTE_IO", "the registry client is closed"));
    this.#agents ??= import("undici").then(({ Agent }) => {
      const o = this.#opts;
      const common = { connections: o.concurrency, pipelining: 1, connectTimeout: o.timeoutMs, headersTimeout: o.timeoutMs, bodyTimeout: o.timeoutMs };
      return { verified: new Agent(common), insecure: new Agent({ ...common, connect: { rejectUnauthorized: false } }) };
    });
    return this.#agents;
  }

  isInsecure(registry: string): boolean {
    return this.#opts.insecureRegistries.includes(registry);
  }

  /** "http://127.0.0.1:5000" or "https://host": the origin the registry's API is spoken to at. */
  origin(registry: string, signal?: AbortSignal): Promise<string> {
    let p = this.#origins.get(registry);
    if (!p) {
      p = this.#pickOrigin(registry, signal);
      this.#origins.set(registry, p);
      p.catch(() => this.#origins.delete(registry));
    }
    return p;
  }

  async #pickOrigin(registry: string, signal?: AbortSignal): Promise<string> {
    const host = apiHost(registry);
    if (isLoopback(host)) return `http://${host}`;
    if (!this.isInsecure(registry)) return `https://${host}`;
    // Like docker: try HTTPS (any certificate), and plain HTTP if no TLS answers there.
    try {
      const res = await (await this.agents()).insecure.request({ origin: `https://${host}`, path: "/v2/", method: "GET", signal: signal ?? AbortSignal.timeout(this.#opts.timeoutMs) });
      await res.body.dump();
      return `https://${host}`;
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      return `http://${host}`;
    }
  }

  /**
   * Sends one request to `url`, following redirects; `authorization` goes only to `url`'s origin. The
   * caller owns the body of the answer (read it, dump it, or `discard()` it).
   */
  async send(url: string, authorization: string | undefined, opts: SendOptions): Promise<Exchange> {
    const authOrigin = new URL(url).origin;
    let target = new URL(url);
    let method = opts.method;
    const ac = new AbortController();
    const onAbort = () => ac.abort(opts.signal!.reason);
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    const what = `${opts.method} ${url}`;
    const timeoutMs = opts.deadlineMs ?? this.#opts.timeoutMs;
    // The deadline's reason is the error the caller sees, from the request or from reading the body.
    const timer = opts.deadlineMs
      ? setTimeout(() => ac.abort(new RemoteError("REMOTE_TIMEOUT", url, `${what}: no complete answer within ${timeoutMs} ms`)), opts.deadlineMs)
      : undefined;
    const cleanup = () => {
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
    };
    try {
      for (let hop = 0; ; hop++) {
        const headers: Record<string, string> = { "user-agent": "erofs-ondemand", ...opts.headers };
        // Credentials for the registry stay with the registry: storage redirects get none.
        if (authorization && target.origin === authOrigin) headers.authorization = authorization;
        const insecure = target.origin === authOrigin && target.protocol === "https:" && this.isInsecure(registryOf(url));
        const agents = await this.agents();
        const res = await (insecure ? agents.insecure : agents.verified).request({
          origin: target.origin, path: target.pathname + target.search, method, headers,
          body: hop === 0 ? toBody(opts.body) : undefined, signal: ac.signal,
        });
        const location = res.headers.location;
        if (res.statusCode >= 300 && res.statusCode < 400 && res.statusCode !== 304 && typeof location === "string") {
          res.body.dump({ limit: 64 * 1024 }).catch(() => {});
          if (hop >= MAX_REDIRECTS) throw new RemoteError("REMOTE_STATUS", url, `${what}: more than ${MAX_REDIRECTS} redirects`, { status: res.statusCode });
          if (opts.body !== undefined && res.statusCode !== 303) throw new RemoteError("REMOTE_STATUS", url, `${what}: redirected a request with a body`, { status: res.statusCode });
          const next = new URL(location, target);
          if (next.protocol !== "http:" && next.protocol !== "https:") throw new RemoteError("REMOTE_STATUS", url, `${what}: redirect to ${next.protocol} URL`, { status: res.statusCode });
          if (target.protocol === "https:" && next.protocol === "http:" && !isLoopback(next.host)) {
            throw new RemoteError("REMOTE_STATUS", url, `${what}: refusing a redirect from HTTPS to ${next.origin}`, { status: res.statusCode });
          }
          if (res.statusCode === 303 && method !== "HEAD") method = "GET";
          target = next;
          continue;
        }
        // The deadline and the caller's signal cover the body too, which the caller reads: keep them
        // armed until it closes.
        res.body.once("close", cleanup);
        return { status: res.statusCode, headers: res.headers, body: res.body, url: target.href };
      }
    } catch (err) {
      cleanup();
      if (opts.signal?.aborted) throw opts.signal.reason;
      throw toRemoteError(err, what, url, ac.signal.aborted, timeoutMs);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    const agents = await this.#agents;
    if (agents) await Promise.all([agents.verified.destroy(), agents.insecure.destroy()]);
  }
}

function toBody(body: SendOptions["body"]): string | Uint8Array | Readable | undefined {
  if (body === undefined || typeof body === "string" || body instanceof Uint8Array) return body;
  return Readable.from(body, { objectMode: false });
}

function registryOf(url: string): string {
  return new URL(url).host;
}

/** Maps whatever went wrong to an error whose code tells the retry loop what to do; a TLS failure names the way out. */
export function toRemoteError(err: unknown, what: string, url: string, timedOut: boolean, timeoutMs: number): EodError {
  if (err instanceof EodError) return err;
  const code = (err as { code?: string }).code ?? "";
  if (!timedOut && /^ERR_SSL_|^ERR_TLS_|CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(code)) {
    // Not a RemoteError, so not retried: the handshake will fail the same way again.
    const host = new URL(url).host;
    const detail = err instanceof Error ? `${err.message.split("\n")[0]} (${code})` : String(err);
    const reason = /SSL routines:[^:]*:([^:]+)/.exec(detail)?.[1]; // OpenSSL's "…:SSL routines:func:reason:file:line:"
    const why = code === "ERR_SSL_WRONG_VERSION_NUMBER" ? `no TLS answer, the server may speak plain HTTP (${code})` : reason ? `${reason} (${code})` : detail;
    return new EodError("REMOTE_IO", `${what}: TLS failed: ${why}. If you trust ${host} without a verified certificate (or without TLS), name it with --insecure-registry ${host}`, { cause: err });
  }
  return toGenericError(err, what, url, timedOut, timeoutMs);
}
