// One error class with a stable code; callers and tests match on `code`, never on message text.

export type ErrorCode =
  | "EROFS_CORRUPTED" // bytes break the format (kernel: -EFSCORRUPTED)
  | "EROFS_UNSUPPORTED" // valid image, feature not implemented (kernel: -EOPNOTSUPP)
  | "IMAGE_INVALID" // manifest, chunk table or image directory is malformed
  | "DIGEST_MISMATCH" // bytes do not hash to the digest that names them
  | "SOURCE_UNREADABLE" // a file or directory of the build input could not be read
  | "SOURCE_UNSUPPORTED" // the build input holds something the format cannot represent
  | "USAGE" // bad command line
  | "SYS"; // a system call failed (see SysError)

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
