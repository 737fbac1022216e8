// What to do with one pre-access event, decided without I/O: fill a range of a known blob, allow at once,
// or deny. Kept pure so the policy is testable without a kernel.
import type { PreAccessEvent } from "./protocol.ts";

export type Decision =
  | { kind: "fill"; offset: number; count: number }
  | { kind: "allow"; reason: "own-access" | "no-range" | "complete" | "present" }
  | { kind: "deny"; reason: "unknown-file" };

export interface BlobView {
  complete: boolean;
  isPresent(offset: number, length: number): boolean;
}

/**
 * @param blob the blob whose cache file the event is about (undefined: not a file we serve)
 * @param selfPid our own pid: our own accesses are allowed at once, we would otherwise wait on ourselves
 */
export function decide(ev: PreAccessEvent, blob: BlobView | undefined, selfPid: number): Decision {
  if (ev.pid === selfPid) return { kind: "allow", reason: "own-access" };
  if (!blob) return { kind: "deny", reason: "unknown-file" };
  if (blob.complete) return { kind: "allow", reason: "complete" };
  if (!ev.range || ev.range.count === 0) return { kind: "allow", reason: "no-range" }; // truncate, or no position
  if (blob.isPresent(ev.range.offset, ev.range.count)) return { kind: "allow", reason: "present" };
  return { kind: "fill", offset: ev.range.offset, count: ev.range.count };
}
