// The bytes of the fanotify permission protocol: events read from the group fd, responses written to it.
// Pure (no I/O). Layouts from include/uapi/linux/fanotify.h; fields are in the host's byte order.
//
//   struct fanotify_event_metadata (24 bytes)       struct fanotify_event_info_range (24 bytes)
//     0  u32 event_len   this event, records incl.    0  u8  info_type  FAN_EVENT_INFO_TYPE_RANGE (6)
//     4  u8  vers        FANOTIFY_METADATA_VERSION    1  u8  pad
//     5  u8  reserved                                 2  u16 len        24
//     6  u16 metadata_len  where the records start    4  u32 pad
//     8  u64 mask                                     8  u64 offset     page aligned
//    16  s32 fd          FAN_NOFD on overflow        16  u64 count      page aligned; 0 for truncate
//    20  s32 pid
//
//   struct fanotify_response (8 bytes): 0 s32 fd, 4 u32 response (FAN_ALLOW, FAN_DENY | errno << 24)
//
// One read() returns whole events only. Info records follow the metadata; each starts with
// { u8 info_type; u8 pad; u16 len } and `len` covers the whole record. Records of other types (a
// pidfd record with FAN_REPORT_PIDFD, …) are skipped.
import { EodError } from "../../errors.ts";
import {
  FAN_ALLOW,
  FAN_EVENT_INFO_TYPE_RANGE,
  FAN_EVENT_METADATA_LEN,
  FANOTIFY_METADATA_VERSION,
  fanDenyErrno,
} from "../../sys/fanotify.ts";

/** sizeof(struct fanotify_event_info_header). */
export const FAN_EVENT_INFO_HEADER_LEN = 4;
/** sizeof(struct fanotify_event_info_range). */
export const FAN_EVENT_INFO_RANGE_LEN = 24;
/** sizeof(struct fanotify_response). */
export const FANOTIFY_RESPONSE_LEN = 8;

const META = { event_len: 0, vers: 4, metadata_len: 6, mask: 8, fd: 16, pid: 20 } as const;
const INFO = { info_type: 0, len: 2 } as const;
const RANGE = { offset: 8, count: 16 } as const;
const RESPONSE = { fd: 0, response: 4 } as const;

// Host byte order, worked out without I/O: the kernel writes these structs in native order.
const LE = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/** One event read from a fanotify group. */
export interface PreAccessEvent {
  /** The event's fd (FMODE_NONOTIFY, opened with the group's event_f_flags); the listener must answer and close it. FAN_NOFD (-1) on an overflow event. */
  fd: number;
  /** The process (or thread, with FAN_REPORT_TID) that made the access. */
  pid: number;
  /** Event bits: FAN_PRE_ACCESS, FAN_Q_OVERFLOW, … */
  mask: bigint;
  /** The byte range about to be read or written (FAN_EVENT_INFO_TYPE_RANGE); absent on other events. */
  range?: { offset: number; count: number };
}

/**
 * A malformed event buffer. `parsed` holds the well-formed events before the bad one and `badFd`
 * the fd of the bad event when its header could be trusted: the caller still owns both, and must
 * answer (deny) and close them, or their readers stay blocked until the group is closed.
 */
export class FanotifyParseError extends EodError {
  readonly parsed: PreAccessEvent[];
  readonly badFd: number | null;
  constructor(message: string, parsed: PreAccessEvent[], badFd: number | null) {
    super("KERNEL_UNSUPPORTED", message);
    this.name = "FanotifyParseError";
    this.parsed = parsed;
    this.badFd = badFd;
  }
}

/**
 * Parses the first `length` bytes of `buf` (one read() of the group fd) into events. Every length
 * field is checked against the bytes that are there before anything is sliced.
 * @throws FanotifyParseError (code KERNEL_UNSUPPORTED) on an unknown `vers` or any length that does
 * not fit; nothing after the bad event is parsed
 * @example
 * const n = fs.readSync(fan, buf);
 * for (const ev of parseEvents(buf, n)) { … fs.writeSync(fan, encodeResponse(ev.fd, "allow")); fs.closeSync(ev.fd); }
 */
export function parseEvents(buf: Uint8Array, length: number): PreAccessEvent[] {
  if (!Number.isSafeInteger(length) || length < 0 || length > buf.byteLength) {
    throw new RangeError(`Cannot parse ${length} bytes of a ${buf.byteLength}-byte buffer`);
  }
  const view = new DataView(buf.buffer, buf.byteOffset, length);
  const events: PreAccessEvent[] = [];
  let at = 0;
  while (at < length) {
    const bad = (what: string, fd: number | null): FanotifyParseError =>
      new FanotifyParseError(`Cannot parse fanotify event at byte ${at} of ${length}: ${what}`, events, fd);
    if (length - at < FAN_EVENT_METADATA_LEN) {
      throw bad(`only ${length - at} bytes left, metadata needs ${FAN_EVENT_METADATA_LEN}`, null);
    }
    const vers = view.getUint8(at + META.vers);
    if (vers !== FANOTIFY_METADATA_VERSION) {
      // An unknown layout: even the fd field cannot be trusted.
      throw bad(`metadata version ${vers}, expected ${FANOTIFY_METADATA_VERSION}`, null);
    }
    const eventLen = view.getUint32(at + META.event_len, LE);
    const metadataLen = view.getUint16(at + META.metadata_len, LE);
    const fd = view.getInt32(at + META.fd, LE);
    const trusted = fd >= 0 ? fd : null;
    if (eventLen < FAN_EVENT_METADATA_LEN || eventLen > length - at) {
      throw bad(`event_len ${eventLen} outside [${FAN_EVENT_METADATA_LEN}, ${length - at}]`, trusted);
    }
    if (metadataLen < FAN_EVENT_METADATA_LEN || metadataLen > eventLen) {
      throw bad(`metadata_len ${metadataLen} outside [${FAN_EVENT_METADATA_LEN}, event_len ${eventLen}]`, trusted);
    }
    const ev: PreAccessEvent = { fd, pid: view.getInt32(at + META.pid, LE), mask: view.getBigUint64(at + META.mask, LE) };
    const end = at + eventLen;
    for (let rec = at + metadataLen; rec < end; ) {
      if (end - rec < FAN_EVENT_INFO_HEADER_LEN) {
        throw bad(`${end - rec} trailing bytes cannot hold an info record header`, trusted);
      }
      const type = view.getUint8(rec + INFO.info_type);
      const recLen = view.getUint16(rec + INFO.len, LE);
      if (recLen < FAN_EVENT_INFO_HEADER_LEN || recLen > end - rec) {
        throw bad(`info record type ${type} at byte ${rec} has len ${recLen}, ${end - rec} bytes left`, trusted);
      }
      if (type === FAN_EVENT_INFO_TYPE_RANGE) {
        if (recLen < FAN_EVENT_INFO_RANGE_LEN) {
          throw bad(`range record at byte ${rec} has len ${recLen}, needs ${FAN_EVENT_INFO_RANGE_LEN}`, trusted);
        }
        if (ev.range) throw bad(`second range record at byte ${rec}`, trusted);
        const offset = view.getBigUint64(rec + RANGE.offset, LE);
        const count = view.getBigUint64(rec + RANGE.count, LE);
        if (offset + count > BigInt(Number.MAX_SAFE_INTEGER)) {
          throw bad(`range [${offset}, +${count}) ends beyond 2^53`, trusted);
        }
        ev.range = { offset: Number(offset), count: Number(count) };
      }
      rec += recLen;
    }
    events.push(ev);
    at = end;
  }
  return events;
}

/**
 * struct fanotify_response for the event with fd `fd`: FAN_ALLOW, or a deny that makes the access
 * fail with `denyErrno` (FAN_DENY_ERRNO; 0 gives plain FAN_DENY, i.e. EPERM). Write it to the group
 * fd, then close `fd`.
 * @throws RangeError for a negative fd or an errno the kernel does not accept (FAN_DENY_ERRNOS)
 * @example
 * fs.writeSync(fan, encodeResponse(ev.fd, { denyErrno: os.constants.errno.EIO }));
 */
export function encodeResponse(fd: number, verdict: "allow" | { denyErrno: number }): Buffer {
  if (!Number.isInteger(fd) || fd < 0 || fd > 0x7fff_ffff) {
    throw new RangeError(`Cannot answer fanotify event fd ${fd}: only events with an fd take a response`);
  }
  const response = verdict === "allow" ? FAN_ALLOW : fanDenyErrno(verdict.denyErrno);
  const out = Buffer.alloc(FANOTIFY_RESPONSE_LEN);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  view.setInt32(RESPONSE.fd, fd, LE);
  view.setUint32(RESPONSE.response, response, LE);
  return out;
}
