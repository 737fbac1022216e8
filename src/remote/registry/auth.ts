// Registry authentication (docker's token spec): a 401 carries `WWW-Authenticate: Bearer realm=…,
// service=…[,scope=…]` or `Basic realm=…`. For Bearer we GET a token from the realm (basic credentials
// when we have them, anonymous otherwise; POST with a refresh token for an identity token) and cache it per
// registry and scope until it expires. For Basic we send the credentials, and keep doing so for that
// registry. Credentials only ever go to the registry itself or to the realm it named.
import type { Agent } from "undici";
import { EodError } from "../../errors.ts";
import type { CredentialStore, Credentials } from "./credentials.ts";
import { isLoopback } from "./reference.ts";

export interface Challenge {
  scheme: string; // lowercase: "bearer", "basic"
  params: Record<string, string>;
}

/** Parses a WWW-Authenticate header into challenges (auth-params with quoted strings, several schemes). */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  const token = /[A-Za-z0-9!#$%&'*+.^_`|~-]+/y;
  let i = 0;
  const skip = (chars: string) => { while (i < header.length && chars.includes(header[i])) i++; };
  while (i < header.length) {
    skip(" \t,");
    token.lastIndex = i;
    const m = token.exec(header);
    if (!m) break;
    i = token.lastIndex;
    skip(" \t");
    if (header[i] !== "=" || header[i + 1] === "=") { // a scheme (token68 values such as "abc==" are skipped)
      if (header[i] === "=") { skip("="); continue; }
      out.push({ scheme: m[0].toLowerCase(), params: {} });
      continue;
    }
    i++;
    skip(" \t");
    let value = "";
    if (header[i] === '"') {
      for (i++; i < header.length && header[i] !== '"'; i++) value += header[i] === "\\" ? header[++i] ?? "" : header[i];
      i++;
    } else {
      while (i < header.length && header[i] !== "," && header[i] !== " ") value += header[i++];
    }
    const last = out.at(-1);
    if (last) last.params[m[0].toLowerCase()] = value;
  }
  return out;
}

/** One registry's state: how it wants to be spoken to and the tokens we hold for it. */
interface HostAuth {
  basic?: boolean;
  tokens: Map<string, { header: string; expiresAt: number }>;
}

export interface AuthOptions {
  credentials?: CredentialStore;
  /** Registries named as insecure: their token realm may be plain HTTP. */
  insecure: (registry: string) => boolean;
  /** The agent token requests are sent with (made at first use, see transport.ts). */
  dispatcher: () => Promise<Agent>;
  timeoutMs: number;
  now?: () => number;
}

/** Authorization headers per registry and scope. */
export class Authenticator {
  readonly #hosts = new Map<string, HostAuth>();
  readonly #pending = new Map<string, Promise<string>>();
  readonly #opts: AuthOptions;

  constructor(opts: AuthOptions) {
    this.#opts = opts;
  }

  #host(registry: string): HostAuth {
    let h = this.#hosts.get(registry);
    if (!h) this.#hosts.set(registry, (h = { tokens: new Map() }));
    return h;
  }

  /** The header to send before any challenge: a live cached token for the scope, or basic once asked for. */
  async cached(registry: string, scope: string): Promise<string | undefined> {
    const h = this.#host(registry);
    const t = h.tokens.get(scope);
    if (t && t.expiresAt > this.#now()) return t.header;
    if (t) h.tokens.delete(scope);
    if (h.basic) return basicHeader(await this.#creds(registry));
    return undefined;
  }

  /**
   * Answers a 401's challenge (`refused`: what the request had sent): returns the header to retry with, or
   * throws REGISTRY_AUTH when there is no way in (basic wanted, no credentials; token server refused).
   */
  async answer(registry: string, scope: string, header: string | undefined, refused: string | undefined, signal?: AbortSignal): Promise<string> {
    // A token another request got meanwhile is used; the one this request was refused with is dropped.
    const tokens = this.#host(registry).tokens;
    const held = tokens.get(scope);
    if (held && held.header !== refused && held.expiresAt > this.#now()) return held.header;
    if (held && held.header === refused) tokens.delete(scope);
    const challenges = parseChallenges(header ?? "");
    const bearer = challenges.find((c) => c.scheme === "bearer");
    const basic = challenges.find((c) => c.scheme === "basic");
    const creds = await this.#creds(registry);
    if (bearer?.params.realm) {
      // Requests that start together (a cold cache reading many ranges) share one token request.
      const key = `${registry} ${scope}`;
      let p = this.#pending.get(key);
      if (!p) {
        p = this.#token(registry, scope, bearer.params, creds, signal).finally(() => this.#pending.delete(key));
        this.#pending.set(key, p);
      }
      return p;
    }
    if (basic) {
      const h = basicHeader(creds);
      if (!h) throw new EodError("REGISTRY_AUTH", `authentication required for ${registry}: it asks for a user name and password and none is configured (docker login, or DOCKER_CONFIG)`);
      this.#host(registry).basic = true;
      return h;
    }
    throw new EodError("REGISTRY_AUTH", `authentication required for ${registry}: unsupported challenge ${JSON.stringify(header ?? "")}`);
  }

  async #creds(registry: string): Promise<Credentials | undefined> {
    return this.#opts.credentials?.get(registry);
  }

  #now(): number {
    return (this.#opts.now ?? Date.now)();
  }

  async #token(registry: string, scope: string, params: Record<string, string>, creds: Credentials | undefined, signal?: AbortSignal): Promise<string> {
    let realm: URL;
    try {
      realm = new URL(params.realm);
    } catch {
      throw new EodError("REGISTRY_AUTH", `authentication failed for ${registry}: token realm ${JSON.stringify(params.realm)} is not a URL`);
    }
    if (realm.protocol !== "https:" && !(realm.protocol === "http:" && (isLoopback(realm.host) || this.#opts.insecure(registry)))) {
      throw new EodError("REGISTRY_AUTH", `authentication failed for ${registry}: token realm ${realm.href} is not HTTPS`);
    }
    const form = new URLSearchParams();
    if (params.service) form.set("service", params.service);
    for (const s of scope.split(" ")) form.append("scope", s);
    const headers: Record<string, string> = { "user-agent": "erofs-ondemand" };
    let method = "GET";
    let body: string | undefined;
    if (creds?.identityToken) {
      // OAuth2 refresh-token grant, as docker does with an identitytoken.
      method = "POST";
      form.set("grant_type", "refresh_token");
      form.set("refresh_token", creds.identityToken);
      form.set("client_id", "erofs-ondemand");
      body = form.toString();
      headers["content-type"] = "application/x-www-form-urlencoded";
    } else {
      const b = basicHeader(creds);
      if (b) headers.authorization = b;
      if (creds?.username) form.set("account", creds.username);
      realm.search = form.toString();
    }
    const what = `authentication failed for ${registry}`;
    let status: number;
    let text: string;
    try {
      const res = await (await this.#opts.dispatcher()).request({
        origin: realm.origin, path: realm.pathname + realm.search, method, headers, body,
        signal: signal ?? AbortSignal.timeout(this.#opts.timeoutMs), headersTimeout: this.#opts.timeoutMs, bodyTimeout: this.#opts.timeoutMs,
      });
      status = res.statusCode;
      text = (await res.body.text()).slice(0, 64 * 1024);
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      throw new EodError("REGISTRY_AUTH", `${what}: token server ${realm.origin} did not answer: ${(err as Error).message}`, { cause: err });
    }
    if (status !== 200) {
      const who = creds ? (creds.username ? `user ${creds.username}` : "identity token") : "anonymous";
      throw new EodError("REGISTRY_AUTH", `${what}: token server ${realm.origin}${realm.pathname} refused ${who} for ${scope} (HTTP ${status}${detail(text)})`);
    }
    let answer: { token?: string; access_token?: string; expires_in?: number };
    try {
      answer = JSON.parse(text);
    } catch {
      throw new EodError("REGISTRY_AUTH", `${what}: token server answer is not JSON`);
    }
    const token = answer.token || answer.access_token;
    if (typeof token !== "string" || token === "" || /[\r\n]/.test(token)) throw new EodError("REGISTRY_AUTH", `${what}: token server answer has no token`);
    // The spec's default lifetime is 60 s; keep a margin so a token does not expire on the way.
    const lifetime = Number.isFinite(answer.expires_in) && answer.expires_in! > 0 ? answer.expires_in! : 60;
    const header = `Bearer ${token}`;
    this.#host(registry).tokens.set(scope, { header, expiresAt: this.#now() + Math.max(1, lifetime - 10) * 1000 });
    return header;
  }
}

function basicHeader(creds: Credentials | undefined): string | undefined {
  if (!creds || creds.username === undefined) return undefined;
  return `Basic ${Buffer.from(`${creds.username}:${creds.password ?? ""}`).toString("base64")}`;
}

/** A short excerpt of an error body for messages: the registry's error message when it is JSON. */
export function detail(text: string): string {
  try {
    const doc = JSON.parse(text);
    const msgs = Array.isArray(doc?.errors)
      ? doc.errors.map((e: { code?: string; message?: string }) => [e.code, e.message].filter(Boolean).join(": "))
      : [doc?.details ?? doc?.error_description ?? doc?.error ?? doc?.message].filter(Boolean);
    if (msgs.length) return `: ${msgs.join("; ").slice(0, 300)}`;
  } catch { /* not JSON */ }
  const t = text.trim().replace(/\s+/g, " ");
  return t ? `: ${t.slice(0, 200)}` : "";
}
