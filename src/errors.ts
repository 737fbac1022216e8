// One error class with a stable code; callers and tests match on `code`, never on message text.

export type ErrorCode =
  | "EROFS_CORRUPTED" // bytes break the format (kernel: -EFSCORRUPTED)
  | "EROFS_UNSUPPORTED" // valid image, feature not implemented (kernel: -EOPNOTSUPP)
  | "IMAGE_INVALID" // manifest, chunk table or image directory is malformed
  | "DIGEST_MISMATCH" // bytes do not hash to the digest that names them
  | "SOURCE_UNREADABLE" // a file or directory of the build input could not be read
  | "SOURCE_UNSUPPORTED" // the build input holds something the format cannot represent
  | "SOURCE_INVALID" // the build input is malformed or unsafe (a bad or truncated tar, a path leaving the tree, a bomb)
  | "USAGE" // bad command line
  | "SYS" // a system call failed (see SysError)
  | "REMOTE_STATUS" // the remote answered with an unexpected HTTP status (see RemoteError)
  | "REMOTE_IO" // connection refused or reset, or a short or overlong answer: worth retrying
  | "REMOTE_TIMEOUT" // the remote did not answer in time: worth retrying
  | "REGISTRY_AUTH" // a registry refused our credentials, or needs some and we have none (the message says which)
  | "REGISTRY_NOT_FOUND" // a registry has no such repository, tag, manifest or blob
  | "DAEMON" // the cache daemon is unreachable or refused a request
  | "SNAPSHOT" // the containerd snapshotter refuses a request (see SnapshotError: its gRPC status)
  | "KERNEL_UNSUPPORTED"; // the kernel lacks a feature a frontend needs (the message lists what)

export class EodError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options); // options.cause chains the lower-level error
    this.name = "EodError";
    this.code = code;
  }
}

/** A failed system call made through src/sys; `errno` is the symbolic name (ENOENT, EBUSY, …). */
export class SysError extends EodError {
  readonly errno: string;
  readonly errnoNumber: number;
  readonly syscall: string;
  constructor(syscall: string, errnoNumber: number, errno: string, detail?: string) {
    super("SYS", `${syscall}${detail ? ` ${detail}` : ""} failed: ${errno}`);
    this.name = "SysError";
    this.errno = errno;
    this.errnoNumber = errnoNumber;
    this.syscall = syscall;
  }
}

/** A remote read that failed; `status` is the HTTP status when there was one, `url` what was asked. */
export class RemoteError extends EodError {
  readonly url: string;
  readonly status?: number;
  constructor(code: "REMOTE_STATUS" | "REMOTE_IO" | "REMOTE_TIMEOUT", url: string, message: string, options?: ErrorOptions & { status?: number }) {
    super(code, message, options);
    this.name = "RemoteError";
    this.url = url;
    if (options?.status !== undefined) this.status = options.status;
  }

  /** Whether trying again may help: timeouts, resets, short bodies, 5xx, 429. */
  get retryable(): boolean {
    return this.code !== "REMOTE_STATUS" || this.status === undefined || this.status >= 500 || this.status === 429;
  }
}
