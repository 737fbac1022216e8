// src/remote: where image bytes come from. Everything above (cache, daemon, CLI) reads through the one
// `Remote` interface — whole files (manifest, bootstrap, chunk tables) and exact byte ranges of blobs — and
// does not know whether the image is a local directory, a URL or a registry. The remote does not verify
// digests of ranges: that is the cache's job, so it is done once, where the bytes are kept.
//
//   remote.ts        the Remote interface, options and defaults, shared argument checks
//   open-remote.ts   openRemote(): the implementation for a location, wrapped in the retry loop
//   dir-remote.ts    a local image directory: positional reads on cached FileHandles
//   http-remote.ts   an HTTP(S) base URL: undici Pool, Range requests, exact lengths
//   answer.ts        what every undici answer goes through: whole bodies, status and failure → RemoteError, Retry-After
//   range-reader.ts  the one reader of Range answers (HTTP remote and registry): checks, streaming, 200 policy
//   retry.ts         the one retry loop: retryable RemoteErrors, exponential backoff, full jitter, Retry-After
//   throttle.ts      a shared bandwidth limit (eod serve --rate, background fetch)
//   registry/        the OCI registry client and RegistryRemote (a repository's blobs by digest); import it
//                    from ./registry/index.ts
export {
  checkRelPath, DEFAULT_CONCURRENCY, DEFAULT_MAX_FILE_BYTES, DEFAULT_TIMEOUT_MS,
  type ReadOptions, type Remote, type RemoteOptions, type RemoteStats,
} from "./remote.ts";
export { openRemote } from "./open-remote.ts";
export { DirRemote } from "./dir-remote.ts";
export { HttpRemote } from "./http-remote.ts";
export { backoffMs, DEFAULT_BACKOFF_BASE_MS, DEFAULT_BACKOFF_CAP_MS, DEFAULT_RETRIES, isRetryable, withRetry, type RetryOptions } from "./retry.ts";
