// The snapshotter's refusals, each with the gRPC status containerd's errdefs maps back to its own errors
// (ErrNotFound, ErrAlreadyExists, ErrFailedPrecondition, ErrInvalidArgument): containerd branches on them.
import { EodError } from "../errors.ts";

export type SnapshotStatus = "NOT_FOUND" | "ALREADY_EXISTS" | "FAILED_PRECONDITION" | "INVALID_ARGUMENT";

export class SnapshotError extends EodError {
  readonly status: SnapshotStatus;
  constructor(status: SnapshotStatus, message: string, options?: ErrorOptions) {
    super("SNAPSHOT", message, options);
    this.name = "SnapshotError";
    this.status = status;
  }
}
