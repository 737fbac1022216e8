// The bytes of the cachefiles on-demand protocol: messages read from /dev/cachefiles, the `copen`
// answer, and the keys erofs uses. Pure (no I/O). Layouts from include/uapi/linux/cachefiles.h
// (unchanged since 5.19); fields are in the host's byte order. One read() returns one whole message.
//
//   struct cachefiles_msg (16 bytes)          struct cachefiles_open (at 16)          struct cachefiles_read (at 16)
//     0  u32 msg_id     echo it in copen/ioctl  16  u32 volume_key_size  incl. its NUL   16  u64 off
//     4  u32 opcode     0 OPEN, 1 CLOSE, 2 READ 20  u32 cookie_key_size  no NUL          24  u64 len
//     8  u32 len        whole message           24  u32 fd   anon fd, already installed
//    12  u32 object_id  1..INT_MAX, cyclic      28  u32 flags  0
//                                               32  volume key, NUL-terminated; then the cookie key
//   OPEN: len = 32 + volume_key_size + cookie_key_size.   READ: len = 32.   CLOSE: len = 16.
//
// erofs (fs/erofs/fscache.c, 5.19 – 7.1): volume key "erofs,<domain_id or fsid>"; cookie key of the
// primary blob = the fsid, of extra device i = the i-th `device=` string (or its device slot tag).
import { EodError } from "../../errors.ts";
import { CACHEFILES_OP_CLOSE, CACHEFILES_OP_OPEN, CACHEFILES_OP_READ } from "../../sys/cachefiles.ts";

/** sizeof(struct cachefiles_msg). */
export const CACHEFILES_MSG_HEADER_LEN = 16;
/** Header + the fixed part of struct cachefiles_open: where the volume key starts. */
export const CACHEFILES_OPEN_FIXED_LEN = 32;
/** Header + struct cachefiles_read: the whole READ message. */
export const CACHEFILES_READ_MSG_LEN = 32;
/** Longest volume key the kernel creates a volume for (strlen, NAME_MAX). */
export const VOLUME_KEY_MAX = 255;
/** Lowest errno a `copen` may fail an OPEN with (the kernel takes -1..-4095; MAX_ERRNO). */
const MAX_ERRNO = 4095;

const MSG = { msg_id: 0, opcode: 4, len: 8, object_id: 12 } as const;
const OPEN = { volume_key_size: 16, cookie_key_size: 20, fd: 24, flags: 28, data: 32 } as const;
const READ = { off: 16, len: 24 } as const;

// Host byte order, worked out without I/O: the kernel writes these structs in native order.
const LE = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;
const UTF8 = new TextDecoder("utf-8"); // not fatal: a non-UTF-8 key decodes with U+FFFD, matching no blob name

export type CachefilesOpcode = "open" | "close" | "read";

/** An OPEN: a cookie (one erofs blob) wants its cache file. */
export interface CachefilesOpen {
  /** The volume key without its NUL: "erofs,<fsid or domain_id>". */
  volumeKey: string;
  /** The cookie key: for erofs, the fsid (primary blob) or a device= string / device tag. */
  cookieKey: string;
  /** The anon fd, already installed in this process: ours to close (on CLOSE, or at once on failure). */
  fd: number;
  /** Always 0 so far (no flags are defined). */
  flags: number;
}

/** A READ: the byte range [offset, offset + length) of the object is missing from its cache file. */
export interface CachefilesRead {
  offset: number;
  length: number;
}

/** One message read from /dev/cachefiles. */
export interface CachefilesMsg {
  msgId: number;
  opcode: CachefilesOpcode;
  /** The cache object (one per open cookie); READ and CLOSE name it. */
  objectId: number;
  /** Present exactly when opcode is "open". */
  open?: CachefilesOpen;
  /** Present exactly when opcode is "read". */
  read?: CachefilesRead;
}

/**
 * A message that does not follow the layout. The header fields are given when the 16-byte header was
 * there, and `fd` when an OPEN was long enough to hold it, because the kernel is still waiting: the
 * caller must answer an OPEN (`copen <msgId>,-EINVAL`, then close `fd`) and complete a READ on its
 * object's fd (the reader then gets EIO), or the mount or reader stays blocked.
 */
export class CachefilesParseError extends EodError {
  readonly msgId: number | null;
  readonly opcode: number | null;
  readonly objectId: number | null;
  readonly fd: number | null;
  constructor(message: string, header: { msgId: number; opcode: number; objectId: number } | null, fd: number | null) {
    super("KERNEL_UNSUPPORTED", message);
    this.name = "CachefilesParseError";
    this.msgId = header?.msgId ?? null;
    this.opcode = header?.opcode ?? null;
    this.objectId = header?.objectId ?? null;
    this.fd = fd;
  }
}

/**
 * Parses one message: the first `length` bytes of `buf` (what one read() of the device returned).
 * Every size field is checked against the bytes read before anything is sliced: `len` must equal
 * `length`, an OPEN's key sizes must add up to `len` and its volume key must end with its NUL, a READ
 * must end below 2^53.
 * @throws CachefilesParseError (code KERNEL_UNSUPPORTED) for an unknown opcode or a bad size;
 * RangeError if `length` does not fit `buf`
 * @example
 * const n = cachefilesRead(dev, buf);
 * if (n > 0) { const msg = parseMessage(buf, n); … }
 */
export function parseMessage(buf: Uint8Array, length: number): CachefilesMsg {
  if (!Number.isSafeInteger(length) || length < 0 || length > buf.byteLength) {
    throw new RangeError(`Cannot parse ${length} bytes of a ${buf.byteLength}-byte buffer`);
  }
  if (length < CACHEFILES_MSG_HEADER_LEN) {
    throw new CachefilesParseError(`Cannot parse a cachefiles message of ${length} bytes: the header needs ${CACHEFILES_MSG_HEADER_LEN}`, null, null);
  }
  const view = new DataView(buf.buffer, buf.byteOffset, length);
  const header = {
    msgId: view.getUint32(MSG.msg_id, LE),
    opcode: view.getUint32(MSG.opcode, LE),
    objectId: view.getUint32(MSG.object_id, LE),
  };
  const len = view.getUint32(MSG.len, LE);
  const fd = header.opcode === CACHEFILES_OP_OPEN && length >= CACHEFILES_OPEN_FIXED_LEN ? view.getInt32(OPEN.fd, LE) : null;
  const bad = (what: string): CachefilesParseError =>
    new CachefilesParseError(
      `Cannot parse cachefiles message ${header.msgId} (opcode ${header.opcode}, object ${header.objectId}, ${length} bytes): ${what}`,
      header,
      fd !== null && fd >= 0 ? fd : null,
    );
  if (len !== length) throw bad(`len says ${len} bytes, read returned ${length}`);
  const msg: CachefilesMsg = { msgId: header.msgId, opcode: "open", objectId: header.objectId };
  switch (header.opcode) {
    case CACHEFILES_OP_OPEN: {
      if (length < CACHEFILES_OPEN_FIXED_LEN) throw bad(`an OPEN needs at least ${CACHEFILES_OPEN_FIXED_LEN} bytes`);
      const vks = view.getUint32(OPEN.volume_key_size, LE);
      const cks = view.getUint32(OPEN.cookie_key_size, LE);
      if (CACHEFILES_OPEN_FIXED_LEN + vks + cks !== length) {
        throw bad(`volume_key_size ${vks} + cookie_key_size ${cks} do not add up to ${length - CACHEFILES_OPEN_FIXED_LEN} key bytes`);
      }
      if (fd === null || fd < 0) throw bad(`fd ${fd} is not a file descriptor`);
      if (vks < 1) throw bad("volume_key_size 0: the volume key must hold at least its NUL");
      const volStart = OPEN.data;
      const volEnd = volStart + vks - 1; // the NUL
      if (view.getUint8(volEnd) !== 0) {
        throw bad(`the volume key (${vks} bytes with its NUL) does not end with a NUL`);
      }
      const volume = new Uint8Array(buf.buffer, buf.byteOffset + volStart, vks - 1);
      const nul = volume.indexOf(0);
      if (nul >= 0) throw bad(`the volume key has a NUL at byte ${nul} of ${vks - 1}`);
      const cookie = new Uint8Array(buf.buffer, buf.byteOffset + volEnd + 1, cks);
      msg.open = { volumeKey: UTF8.decode(volume), cookieKey: UTF8.decode(cookie), fd, flags: view.getUint32(OPEN.flags, LE) };
      return msg;
    }
    case CACHEFILES_OP_CLOSE:
      if (length !== CACHEFILES_MSG_HEADER_LEN) throw bad(`a CLOSE is ${CACHEFILES_MSG_HEADER_LEN} bytes`);
      msg.opcode = "close";
      return msg;
    case CACHEFILES_OP_READ: {
      if (length !== CACHEFILES_READ_MSG_LEN) throw bad(`a READ is ${CACHEFILES_READ_MSG_LEN} bytes`);
      const off = view.getBigUint64(READ.off, LE);
      const n = view.getBigUint64(READ.len, LE);
      if (off + n > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(`READ [${off}, +${n}) ends beyond 2^53`);
      msg.opcode = "read";
      msg.read = { offset: Number(off), length: Number(n) };
      return msg;
    }
    default:
      throw bad(`unknown opcode ${header.opcode} (known: 0 OPEN, 1 CLOSE, 2 READ)`);
  }
}

/**
 * The answer to OPEN `msgId`: `copen <msgId>,<size>`. A size ≥ 0 opens the object with that many
 * bytes; report the same size for the same blob every time, or the kernel discards its cache file.
 * A negative errno (-1..-4095) fails the OPEN, and the erofs mount with it. Write it with
 * cachefilesCommand().
 * @throws RangeError for a msgId outside u32, a size beyond 2^53 or an errno outside -4095..-1
 * @example
 * cachefilesCommand(dev, encodeCopen(msg.msgId, blobSize));
 * cachefilesCommand(dev, encodeCopen(msg.msgId, -os.constants.errno.ENOENT));
 */
export function encodeCopen(msgId: number, sizeOrNegErrno: number): string {
  if (!Number.isInteger(msgId) || msgId < 0 || msgId > 0xffff_ffff) {
    throw new RangeError(`Cannot answer cachefiles OPEN ${msgId}: msg_id is a u32`);
  }
  if (!Number.isSafeInteger(sizeOrNegErrno) || sizeOrNegErrno < -MAX_ERRNO) {
    throw new RangeError(`Cannot answer cachefiles OPEN ${msgId} with ${sizeOrNegErrno}: a size 0..2^53 or an errno -1..-${MAX_ERRNO}`);
  }
  return `copen ${msgId},${sizeOrNegErrno}`;
}

/**
 * The fscache volume key erofs uses for a mount: `"erofs," + (domain_id ?? fsid)`. Its cache files live
 * in `<dir>/cache/I<volume key>/`.
 * @throws RangeError for an empty name, one with a comma or NUL (not expressible as a mount option),
 * or a key longer than 255 bytes (the kernel would not create the volume)
 * @example
 * volumeKeyOf("myimage"); // "erofs,myimage"
 */
export function volumeKeyOf(fsidOrDomain: string): string {
  if (fsidOrDomain.length === 0 || /[,\0]/.test(fsidOrDomain)) {
    throw new RangeError(`Cannot use ${JSON.stringify(fsidOrDomain)} as an erofs fsid or domain_id: non-empty, no comma or NUL`);
  }
  const key = `erofs,${fsidOrDomain}`;
  if (Buffer.byteLength(key, "utf8") > VOLUME_KEY_MAX) {
    throw new RangeError(`Cannot use ${JSON.stringify(fsidOrDomain)} as an erofs fsid or domain_id: volume key longer than ${VOLUME_KEY_MAX} bytes`);
  }
  return key;
}
