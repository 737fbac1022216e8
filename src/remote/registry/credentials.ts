// Credentials the way docker keeps them: $DOCKER_CONFIG/config.json (default ~/.docker/config.json) with
// `auths` (base64 "user:pass" in `auth`, or `username`/`password`, or an `identitytoken`), and credential
// helpers: `credHelpers[registry]`, else `credsStore`, run as `docker-credential-<name> get` with the
// server URL on stdin and {Username, Secret} on stdout. A helper that is not installed, or has nothing for
// the registry, means anonymous (docker does the same); a malformed config.json is an error naming it.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { EodError } from "../../errors.ts";
import { DOCKER_HUB } from "./reference.ts";

export interface Credentials {
  username?: string;
  password?: string;
  /** An OAuth2 refresh token (docker's identitytoken), traded at the token realm by POST. */
  identityToken?: string;
}

/** Where credentials for a registry come from; `undefined` means anonymous. */
export interface CredentialStore {
  get(registry: string): Promise<Credentials | undefined>;
}

// docker.io's credentials are filed under the v1 index URL, for historical reasons.
const DOCKER_HUB_KEY = "https://index.docker.io/v1/";

/** A store over fixed credentials by registry ("127.0.0.1:5000" → creds), for callers and tests. */
export function staticCredentials(map: Record<string, Credentials>): CredentialStore {
  return { get: async (registry) => map[registry] };
}

/** The config.json docker would read: $DOCKER_CONFIG/config.json, else ~/.docker/config.json. */
export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.DOCKER_CONFIG || path.join(os.homedir(), ".docker"), "config.json");
}

interface DockerConfig {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
}

/**
 * Docker's credential store. The file is read once, on first use; helpers run per lookup and their answer
 * is kept for the store's life (a helper may prompt or be slow).
 *
 * @example
 * const store = dockerCredentials();                 // $DOCKER_CONFIG or ~/.docker
 * const creds = await store.get("127.0.0.1:5000");   // undefined: anonymous
 */
export function dockerCredentials(opts: { configPath?: string; env?: NodeJS.ProcessEnv; helperTimeoutMs?: number } = {}): CredentialStore {
  const file = opts.configPath ?? dockerConfigPath(opts.env);
  let config: DockerConfig | undefined;
  const cache = new Map<string, Promise<Credentials | undefined>>();
  const load = (): DockerConfig => {
    if (config) return config;
    let text: string;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return (config = {});
      throw new EodError("REGISTRY_AUTH", `Cannot read docker config ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`, { cause: err });
    }
    try {
      const parsed = JSON.parse(text);
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("not a JSON object");
      config = parsed as DockerConfig;
    } catch (err) {
      throw new EodError("REGISTRY_AUTH", `Cannot read docker config ${file}: ${(err as Error).message}`, { cause: err });
    }
    return config;
  };
  return {
    get(registry: string) {
      let p = cache.get(registry);
      if (!p) {
        p = lookup(load(), file, registry, opts.helperTimeoutMs ?? 30_000);
        cache.set(registry, p);
        p.catch(() => cache.delete(registry));
      }
      return p;
    },
  };
}

async function lookup(config: DockerConfig, file: string, registry: string, timeoutMs: number): Promise<Credentials | undefined> {
  const serverUrl = registry === DOCKER_HUB ? DOCKER_HUB_KEY : registry;
  const helper = config.credHelpers?.[registry] ?? (registry === DOCKER_HUB ? config.credHelpers?.[DOCKER_HUB_KEY] : undefined);
  if (helper) return runHelper(helper, serverUrl, timeoutMs);
  if (config.credsStore) {
    const found = await runHelper(config.credsStore, serverUrl, timeoutMs);
    if (found) return found;
  }
  const entry = findAuth(config.auths ?? {}, registry);
  if (!entry) return undefined;
  const creds: Credentials = {};
  if (entry.auth) {
    const plain = Buffer.from(entry.auth, "base64").toString("utf8");
    const colon = plain.indexOf(":");
    if (colon < 0) throw new EodError("REGISTRY_AUTH", `Cannot read docker config ${file}: auths["${registry}"].auth is not base64 of user:password`);
    creds.username = plain.slice(0, colon);
    creds.password = plain.slice(colon + 1);
  } else if (entry.username !== undefined) {
    creds.username = entry.username;
    creds.password = entry.password ?? "";
  }
  if (entry.identitytoken) creds.identityToken = entry.identitytoken;
  return creds.username !== undefined || creds.identityToken ? creds : undefined;
}

/** `auths` keys are "host[:port]" or URLs ("https://host/v1/"); match on the host part, as docker does. */
function findAuth(auths: NonNullable<DockerConfig["auths"]>, registry: string) {
  if (auths[registry]) return auths[registry];
  const wanted = registry === DOCKER_HUB ? ["index.docker.io", "docker.io", "registry-1.docker.io"] : [registry];
  for (const [key, entry] of Object.entries(auths)) {
    const host = key.replace(/^[a-z]+:\/\//i, "").split("/")[0].toLowerCase();
    if (wanted.includes(host)) return entry;
  }
  return undefined;
}

/**
 * `docker-credential-<name> get`: server URL on stdin, JSON {ServerURL, Username, Secret} on stdout. Not
 * installed, or "credentials not found" → undefined. A Username of "<token>" means Secret is an identity
 * token. Any other failure is REGISTRY_AUTH with the helper's message.
 */
export async function runHelper(name: string, serverUrl: string, timeoutMs = 30_000): Promise<Credentials | undefined> {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new EodError("REGISTRY_AUTH", `Credential helper name ${JSON.stringify(name)} is not valid`);
  const bin = `docker-credential-${name}`;
  const { code, stdout, stderr, missing } = await new Promise<{ code: number | null; stdout: string; stderr: string; missing: boolean }>((resolve) => {
    const child = spawn(bin, ["get"], { stdio: ["pipe", "pipe", "pipe"] });
    // Our own timer, not spawn's `timeout`: that one is left running when the binary does not exist.
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    let out = "", err = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => { out += d; });
    child.stderr.setEncoding("utf8").on("data", (d: string) => { err += d; });
    child.on("error", (e: NodeJS.ErrnoException) => { clearTimeout(timer); resolve({ code: null, stdout: "", stderr: e.message, missing: e.code === "ENOENT" }); });
    child.on("close", (c, signal) => { clearTimeout(timer); resolve({ code: c, stdout: out, stderr: signal ? `killed by ${signal} after ${timeoutMs} ms` : err, missing: false }); });
    child.stdin.on("error", () => {}); // a helper that exits without reading stdin
    child.stdin.end(serverUrl);
  });
  if (missing) return undefined;
  if (code !== 0) {
    const msg = (stdout + stderr).trim();
    if (/credentials not found/i.test(msg)) return undefined;
    throw new EodError("REGISTRY_AUTH", `Credential helper ${bin} failed for ${serverUrl}: ${msg || `exit ${code}`}`);
  }
  let answer: { Username?: string; Secret?: string };
  try {
    answer = JSON.parse(stdout);
  } catch {
    throw new EodError("REGISTRY_AUTH", `Credential helper ${bin} gave no JSON for ${serverUrl}`);
  }
  if (typeof answer?.Secret !== "string") return undefined;
  if (answer.Username === "<token>") return { identityToken: answer.Secret };
  return { username: answer.Username ?? "", password: answer.Secret };
}
