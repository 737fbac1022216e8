// What every HTTP answer from undici goes through, for the HTTP remote and the registry client alike:
// closing a body nobody reads, reading its headers, reading a whole body within a limit, and turning a
// status or a failure into a RemoteError whose code tells the retry loop (retry.ts) what to do, with a
// 429's or 503's Retry-After attached.
import type { Dispatcher } from "undici";
import { EodError, RemoteError } from "../errors.ts";
import { MAX_RETRY_AFTER_MS, retryAfterMs, setRetryAfter } from "./retry.ts";

export type Body = Dispatcher.ResponseData["body"];
export type Headers = Record<string, string | string[] | undefined>;

/** An answer as the readers of bodies see it. */
export interface Answer {
  status: number;
  headers: Headers;
  body: Body;
  /** The URL that answered (after redirects), for messages and errors. */
  url: string;
}

// undici error codes that mean "no answer in time" rather than a broken connection.
const TIMEOUT_CODES = new Set(["UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT", "UND_ERR_CONNECT_TIMEOUT"]);

/**
 * Closes a response body we will not read. undici's BodyReadable turns destroy() without an error into an
 * 'error' event (RequestAbortedError), emitted a tick later if the body was never read; with no listener
 * that is an uncaught exception, so listen first.
 */
export function discard(body: Body): void {
  body.on("error", () => {});
  body.destroy();
}

/** The first value of a header that may repeat. */
export function one(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

export function contentLength(headers: Headers): number | undefined {
  const v = one(headers["content-length"]);
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
}

/**
 * The error for an unexpected status; `detail` is what the server said (": …"), `who` names the server in
 * the message. A 429 or 503 carries its Retry-After for the retry loop; one longer than the loop waits for
 * is named in the message.
 */
export function statusError(what: string, url: string, status: number, headers: Headers, detail = "", who = "server"): RemoteError {
  const after = status === 429 || status === 503 ? retryAfterMs(one(headers["retry-after"])) : undefined;
  const tooLong = after !== undefined && after > MAX_RETRY_AFTER_MS ? `; the ${who} asks to wait ${Math.ceil(after / 1000)} s (Retry-After)` : "";
  const err = new RemoteError("REMOTE_STATUS", url, `${what}: HTTP ${status}${detail}${tooLong}`, { status });
  if (after !== undefined) setRetryAfter(err, after);
  return err;
}

/**
 * A whole body: at most `max` bytes (more is IMAGE_INVALID, not retried: a file that large is not one of ours
 * and will not shrink; `limit` names the limit in the message, e.g. "manifest "), and exactly its Content-Length when it has one
 * (another length is a broken answer, REMOTE_IO). The body is closed on a failure; errors of the connection
 * itself are thrown as undici raised them (the caller maps them).
 */
export async function readWholeBody(answer: Answer, what: string, max: number, limit = ""): Promise<Uint8Array> {
  const declared = contentLength(answer.headers);
  const tooBig = (size: number | string) => new EodError("IMAGE_INVALID", `${what}: ${size} bytes is more than the ${limit}limit of ${max}`);
  try {
    if (declared !== undefined && declared > max) throw tooBig(declared);
    const out = new Uint8Array(declared ?? 0); // filled in place when the length is known, else the pieces are joined
    const parts: Uint8Array[] = [];
    let got = 0;
    for await (const chunk of answer.body as AsyncIterable<Buffer>) {
      if (declared !== undefined && got + chunk.length > declared) throw new RemoteError("REMOTE_IO", answer.url, `${what}: answer is longer than ${declared} bytes`);
      if (got + chunk.length > max) throw tooBig(`more than ${got + chunk.length}`);
      if (declared !== undefined) out.set(chunk, got);
      else parts.push(chunk);
      got += chunk.length;
    }
    if (declared !== undefined && got !== declared) throw new RemoteError("REMOTE_IO", answer.url, `${what}: answer ended after ${got} of ${declared} bytes`);
    return declared !== undefined ? out : Buffer.concat(parts, got);
  } catch (err) {
    discard(answer.body);
    throw err;
  }
}

/** Maps whatever went wrong in an exchange to an error whose code tells the retry loop what to do. */
export function toRemoteError(err: unknown, what: string, url: string, timedOut: boolean, timeoutMs: number): EodError {
  if (err instanceof EodError) return err;
  const code = (err as { code?: string }).code ?? "";
  if (timedOut || TIMEOUT_CODES.has(code)) {
    return new RemoteError("REMOTE_TIMEOUT", url, `${what}: no complete answer within ${timeoutMs} ms`, { cause: err });
  }
  const detail = err instanceof Error ? `${err.message.split("\n")[0]}${code ? ` (${code})` : ""}` : String(err);
  return new RemoteError("REMOTE_IO", url, `${what}: ${detail}`, { cause: err });
}
