// The FUSE kernel protocol as far as a read-only filesystem of immutable files needs it: pure decode of the
// requests read from /dev/fuse and encode of the replies written to it. Names, values and layouts follow the
// kernel's include/uapi/linux/fuse.h (checked against protocol 7.38 from linux-libc-dev and torvalds/linux;
// the kernel here speaks 7.45). Every struct is host-endian; every supported host is little-endian.
//
// A request is `struct fuse_in_header` (40 bytes) followed by the opcode's argument struct (and a name for
// LOOKUP); a reply is `struct fuse_out_header` (16 bytes) followed by the opcode's out struct or data, written
// in one write(2). An error reply is the header alone with `error` = -errno. FORGET, BATCH_FORGET and
// INTERRUPT get no reply. A notification is a header with `unique` 0 and `error` = the notify code.

/** FUSE_KERNEL_VERSION: the major version; another one is refused. */
export const FUSE_KERNEL_VERSION = 7;
/** The minor version we speak: 7.31 has every struct we use in its final size (init_out 64 bytes). */
export const FUSE_KERNEL_MINOR_VERSION = 31;
/** The node ID of the root directory. */
export const FUSE_ROOT_ID = 1n;
/** read(2) of /dev/fuse needs a buffer at least this large (and at least in_header + write_in + max_write). */
export const FUSE_MIN_READ_BUFFER = 8192;

// enum fuse_opcode
export const FUSE_LOOKUP = 1;
export const FUSE_FORGET = 2;
export const FUSE_GETATTR = 3;
export const FUSE_OPEN = 14;
export const FUSE_READ = 15;
export const FUSE_STATFS = 17;
export const FUSE_RELEASE = 18;
export const FUSE_GETXATTR = 22;
export const FUSE_LISTXATTR = 23;
export const FUSE_FLUSH = 25;
export const FUSE_INIT = 26;
export const FUSE_OPENDIR = 27;
export const FUSE_READDIR = 28;
export const FUSE_RELEASEDIR = 29;
export const FUSE_ACCESS = 34;
export const FUSE_INTERRUPT = 36;
export const FUSE_DESTROY = 38;
export const FUSE_BATCH_FORGET = 42;

/** Opcode names for stats and logs. */
export const OPCODE_NAMES: ReadonlyMap<number, string> = new Map([
  [FUSE_LOOKUP, "LOOKUP"], [FUSE_FORGET, "FORGET"], [FUSE_GETATTR, "GETATTR"], [FUSE_OPEN, "OPEN"], [FUSE_READ, "READ"],
  [FUSE_STATFS, "STATFS"], [FUSE_RELEASE, "RELEASE"], [FUSE_GETXATTR, "GETXATTR"], [FUSE_LISTXATTR, "LISTXATTR"],
  [FUSE_FLUSH, "FLUSH"], [FUSE_INIT, "INIT"], [FUSE_OPENDIR, "OPENDIR"], [FUSE_READDIR, "READDIR"],
  [FUSE_RELEASEDIR, "RELEASEDIR"], [FUSE_ACCESS, "ACCESS"], [FUSE_INTERRUPT, "INTERRUPT"], [FUSE_DESTROY, "DESTROY"],
  [FUSE_BATCH_FORGET, "BATCH_FORGET"],
]);

// enum fuse_notify_code
/** Linux 6.9+ (7.40): the kernel queues every request it handed out and got no reply for again. */
export const FUSE_NOTIFY_RESEND = 7;
/** Set in `unique` of a request the kernel sends again after FUSE_NOTIFY_RESEND (FUSE_UNIQUE_RESEND). */
export const FUSE_UNIQUE_RESEND = 1n << 63n;

// INIT flags (fuse_init_in.flags / fuse_init_out.flags; bits 32.. travel in flags2 with FUSE_INIT_EXT)
/** Several READs of one file at once (else the kernel serialises them). */
export const FUSE_ASYNC_READ = 1 << 0;
export const FUSE_PARALLEL_DIROPS = 1 << 18;
/** init_out.max_pages holds the largest request in pages. */
export const FUSE_MAX_PAGES = 1 << 22;
export const FUSE_INIT_EXT = 1 << 30;
/** flags2 bit 7 (1ULL << 39): the kernel understands FUSE_NOTIFY_RESEND. */
export const FUSE_HAS_RESEND_FLAGS2 = 1 << (39 - 32);

// fuse_open_out.open_flags
export const FOPEN_DIRECT_IO = 1 << 0;
/** Keep the page cache of the file across opens: our files never change. */
export const FOPEN_KEEP_CACHE = 1 << 1;

// Struct sizes (asserted by the golden-byte tests)
export const FUSE_IN_HEADER_LEN = 40;
export const FUSE_OUT_HEADER_LEN = 16;
export const FUSE_INIT_IN_LEN = 64;
/** The 7.6 .. 7.35 fuse_init_in: major, minor, max_readahead, flags. */
export const FUSE_COMPAT_INIT_IN_LEN = 16;
export const FUSE_INIT_OUT_LEN = 64;
export const FUSE_ATTR_LEN = 88;
export const FUSE_ENTRY_OUT_LEN = 128;
export const FUSE_ATTR_OUT_LEN = 104;
export const FUSE_OPEN_OUT_LEN = 16;
export const FUSE_READ_IN_LEN = 40;
export const FUSE_KSTATFS_LEN = 80;
export const FUSE_DIRENT_HEADER_LEN = 24;

// d_type values of struct fuse_dirent.type (DT_* of dirent.h)
export const DT_DIR = 4;
export const DT_REG = 8;

/** struct fuse_in_header. */
export interface InHeader {
  len: number;
  opcode: number;
  unique: bigint;
  nodeid: bigint;
  uid: number;
  gid: number;
  pid: number;
}

export interface InitIn {
  major: number;
  minor: number;
  maxReadahead: number;
  /** flags | flags2 << 32, as a bigint (flags2 only with FUSE_INIT_EXT). */
  flags: bigint;
}

export interface ReadIn {
  fh: bigint;
  offset: number;
  size: number;
  flags: number;
}

/** A decoded request: the header plus what its opcode carries (nothing for opcodes we do not read). */
export type Request =
  | { header: InHeader; op: "init"; init: InitIn }
  | { header: InHeader; op: "lookup"; name: string }
  | { header: InHeader; op: "read"; read: ReadIn }
  | { header: InHeader; op: "readdir"; read: ReadIn }
  | { header: InHeader; op: "open" | "opendir"; openFlags: number }
  | { header: InHeader; op: "interrupt"; interrupted: bigint }
  | { header: InHeader; op: "forget" | "batch_forget" | "getattr" | "release" | "releasedir" | "flush" | "statfs" | "access" | "destroy" | "other" };

export class FuseProtocolError extends Error {
  /** The request's unique, when the header could be read: it should still get an (error) reply. */
  readonly unique: bigint | null;
  readonly opcode: number | null;
  constructor(message: string, unique: bigint | null = null, opcode: number | null = null) {
    super(message);
    this.name = "FuseProtocolError";
    this.unique = unique;
    this.opcode = opcode;
  }
}

export function decodeInHeader(buf: Buffer, n: number): InHeader {
  if (n < FUSE_IN_HEADER_LEN) throw new FuseProtocolError(`FUSE request of ${n} bytes is shorter than its header (${FUSE_IN_HEADER_LEN})`);
  const h: InHeader = {
    len: buf.readUInt32LE(0), opcode: buf.readUInt32LE(4), unique: buf.readBigUInt64LE(8), nodeid: buf.readBigUInt64LE(16),
    uid: buf.readUInt32LE(24), gid: buf.readUInt32LE(28), pid: buf.readUInt32LE(32),
  };
  if (h.len !== n) throw new FuseProtocolError(`FUSE request says ${h.len} bytes but ${n} were read`, h.unique, h.opcode);
  return h;
}

/** Decodes one request: `buf[0..n)` as one read(2) of /dev/fuse returned it. */
export function decodeRequest(buf: Buffer, n: number): Request {
  const header = decodeInHeader(buf, n);
  const body = buf.subarray(FUSE_IN_HEADER_LEN, n);
  const need = (len: number, what: string) => {
    if (body.length < len) throw new FuseProtocolError(`FUSE ${what} carries ${body.length} bytes, needs ${len}`, header.unique, header.opcode);
  };
  switch (header.opcode) {
    case FUSE_INIT: {
      need(FUSE_COMPAT_INIT_IN_LEN, "INIT");
      const flags = body.readUInt32LE(12);
      const flags2 = body.length >= FUSE_INIT_IN_LEN && (flags & FUSE_INIT_EXT) !== 0 ? body.readUInt32LE(16) : 0;
      return { header, op: "init", init: { major: body.readUInt32LE(0), minor: body.readUInt32LE(4), maxReadahead: body.readUInt32LE(8), flags: BigInt(flags) | (BigInt(flags2) << 32n) } };
    }
    case FUSE_LOOKUP: {
      const end = body.indexOf(0);
      if (end < 0) throw new FuseProtocolError("FUSE LOOKUP name is not NUL-terminated", header.unique, header.opcode);
      return { header, op: "lookup", name: body.toString("latin1", 0, end) }; // our names are hex: latin1 keeps any byte distinct
    }
    case FUSE_READ:
    case FUSE_READDIR: { // (READDIRPLUS is never negotiated: it gets ENOSYS)
      need(FUSE_READ_IN_LEN, "READ");
      const offset = body.readBigUInt64LE(8);
      if (offset > BigInt(Number.MAX_SAFE_INTEGER)) throw new FuseProtocolError(`FUSE READ offset ${offset} beyond 2^53`, header.unique, header.opcode);
      const read = { fh: body.readBigUInt64LE(0), offset: Number(offset), size: body.readUInt32LE(16), flags: body.readUInt32LE(32) };
      return header.opcode === FUSE_READ ? { header, op: "read", read } : { header, op: "readdir", read };
    }
    case FUSE_OPEN:
    case FUSE_OPENDIR:
      need(8, "OPEN");
      return { header, op: header.opcode === FUSE_OPEN ? "open" : "opendir", openFlags: body.readUInt32LE(0) };
    case FUSE_INTERRUPT:
      need(8, "INTERRUPT");
      return { header, op: "interrupt", interrupted: body.readBigUInt64LE(0) };
    case FUSE_FORGET: return { header, op: "forget" };
    case FUSE_BATCH_FORGET: return { header, op: "batch_forget" };
    case FUSE_GETATTR: return { header, op: "getattr" };
    case FUSE_RELEASE: return { header, op: "release" };
    case FUSE_RELEASEDIR: return { header, op: "releasedir" };
    case FUSE_FLUSH: return { header, op: "flush" };
    case FUSE_STATFS: return { header, op: "statfs" };
    case FUSE_ACCESS: return { header, op: "access" };
    case FUSE_DESTROY: return { header, op: "destroy" };
    default: return { header, op: "other" };
  }
}

/** Whether a request gets no reply at all. */
export function expectsNoReply(r: Request): boolean {
  return r.op === "forget" || r.op === "batch_forget" || r.op === "interrupt";
}

/** struct fuse_out_header of a reply carrying `payloadLen` bytes after it; `errno` > 0 for an error reply. */
export function encodeOutHeader(unique: bigint, errno: number, payloadLen = 0): Buffer {
  const b = Buffer.alloc(FUSE_OUT_HEADER_LEN);
  b.writeUInt32LE(FUSE_OUT_HEADER_LEN + payloadLen, 0);
  b.writeInt32LE(-errno, 4);
  b.writeBigUInt64LE(unique, 8);
  return b;
}

/** A notification without payload (FUSE_NOTIFY_RESEND): unique 0, error = the code. */
export function encodeNotify(code: number): Buffer {
  const b = Buffer.alloc(FUSE_OUT_HEADER_LEN);
  b.writeUInt32LE(FUSE_OUT_HEADER_LEN, 0);
  b.writeInt32LE(code, 4);
  return b;
}

/** What we ask of the kernel in INIT. */
export interface InitWish {
  /** Largest READ, in bytes; the kernel caps the pages by /proc/sys/fs/fuse/max_pages_limit. */
  maxRead: number;
  /** max_write: sizes the read buffer the kernel demands (we never get a WRITE: the mount is read-only). */
  maxWrite: number;
  /** max_background: READs of readahead and RELEASEs the kernel sends without waiting. */
  maxBackground: number;
}

export interface InitOut {
  major: number;
  minor: number;
  maxReadahead: number;
  flags: bigint;
  maxBackground: number;
  congestionThreshold: number;
  maxWrite: number;
  timeGran: number;
  maxPages: number;
  mapAlignment: number;
}

const PAGE = 4096;
/** Flags we want when the kernel offers them. */
const WANTED_FLAGS = BigInt(FUSE_ASYNC_READ | FUSE_MAX_PAGES | FUSE_PARALLEL_DIROPS);

/**
 * The INIT reply: the minor version both speak, the kernel's whole readahead, only flags the kernel offered,
 * max_pages for `wish.maxRead` (the kernel takes min(it, max_pages_limit)). A kernel of another major version
 * gets our major alone (fuse.h: it then sends INIT again, or gives up).
 */
export function negotiateInit(init: InitIn, wish: InitWish): InitOut {
  const out: InitOut = {
    major: FUSE_KERNEL_VERSION, minor: Math.min(init.minor, FUSE_KERNEL_MINOR_VERSION), maxReadahead: init.maxReadahead,
    flags: init.flags & WANTED_FLAGS, maxBackground: wish.maxBackground, congestionThreshold: Math.floor(wish.maxBackground * 3 / 4),
    maxWrite: wish.maxWrite, timeGran: 1, maxPages: Math.min(0xffff, Math.ceil(wish.maxRead / PAGE)), mapAlignment: 0,
  };
  if (init.major !== FUSE_KERNEL_VERSION) return { ...out, minor: FUSE_KERNEL_MINOR_VERSION, flags: 0n, maxReadahead: 0 };
  return out;
}

/** struct fuse_init_out (64 bytes). */
export function encodeInitOut(o: InitOut): Buffer {
  const b = Buffer.alloc(FUSE_INIT_OUT_LEN);
  b.writeUInt32LE(o.major, 0);
  b.writeUInt32LE(o.minor, 4);
  b.writeUInt32LE(o.maxReadahead, 8);
  b.writeUInt32LE(Number(o.flags & 0xffff_ffffn), 12);
  b.writeUInt16LE(o.maxBackground, 16);
  b.writeUInt16LE(o.congestionThreshold, 18);
  b.writeUInt32LE(o.maxWrite, 20);
  b.writeUInt32LE(o.timeGran, 24);
  b.writeUInt16LE(o.maxPages, 28);
  b.writeUInt16LE(o.mapAlignment, 30);
  b.writeUInt32LE(Number(o.flags >> 32n), 32); // flags2: read by the kernel only with FUSE_INIT_EXT in flags
  return b;
}

/** struct fuse_attr, as we describe a node: no times (the files never change), owned by root. */
export interface Attr {
  ino: bigint;
  size: number;
  /** st_mode, type bits included. */
  mode: number;
  nlink: number;
}

function writeAttr(b: Buffer, at: number, a: Attr): void {
  b.writeBigUInt64LE(a.ino, at);
  b.writeBigUInt64LE(BigInt(a.size), at + 8);
  b.writeBigUInt64LE(BigInt(Math.ceil(a.size / 512)), at + 16); // blocks: 512-byte units
  // atime, mtime, ctime (+24, +32, +40) and their nsec (+48..+60): 0
  b.writeUInt32LE(a.mode, at + 60);
  b.writeUInt32LE(a.nlink, at + 64);
  // uid, gid, rdev (+68, +72, +76): 0
  b.writeUInt32LE(PAGE, at + 80); // blksize
  // flags (+84): 0
}

/** How long the kernel may trust a name or attributes without asking again. */
export interface Validity {
  seconds: number;
}

/** struct fuse_entry_out (128 bytes): LOOKUP's reply. */
export function encodeEntryOut(nodeid: bigint, generation: bigint, valid: Validity, a: Attr): Buffer {
  const b = Buffer.alloc(FUSE_ENTRY_OUT_LEN);
  b.writeBigUInt64LE(nodeid, 0);
  b.writeBigUInt64LE(generation, 8);
  b.writeBigUInt64LE(BigInt(valid.seconds), 16); // entry_valid
  b.writeBigUInt64LE(BigInt(valid.seconds), 24); // attr_valid
  writeAttr(b, 40, a);
  return b;
}

/** struct fuse_attr_out (104 bytes): GETATTR's reply. */
export function encodeAttrOut(valid: Validity, a: Attr): Buffer {
  const b = Buffer.alloc(FUSE_ATTR_OUT_LEN);
  b.writeBigUInt64LE(BigInt(valid.seconds), 0);
  writeAttr(b, 16, a);
  return b;
}

/** struct fuse_open_out (16 bytes): OPEN's and OPENDIR's reply. */
export function encodeOpenOut(fh: bigint, openFlags: number): Buffer {
  const b = Buffer.alloc(FUSE_OPEN_OUT_LEN);
  b.writeBigUInt64LE(fh, 0);
  b.writeUInt32LE(openFlags, 8);
  return b;
}

export interface Kstatfs {
  blocks: number;
  files: number;
  bsize: number;
  namelen: number;
}

/** struct fuse_statfs_out = struct fuse_kstatfs (80 bytes): nothing free on a read-only filesystem. */
export function encodeStatfsOut(s: Kstatfs): Buffer {
  const b = Buffer.alloc(FUSE_KSTATFS_LEN);
  b.writeBigUInt64LE(BigInt(s.blocks), 0);
  // bfree, bavail (+8, +16): 0
  b.writeBigUInt64LE(BigInt(s.files), 24);
  // ffree (+32): 0
  b.writeUInt32LE(s.bsize, 40);
  b.writeUInt32LE(s.namelen, 44);
  b.writeUInt32LE(s.bsize, 48); // frsize
  return b;
}

export interface Dirent {
  ino: bigint;
  name: string;
  type: number;
}

/**
 * READDIR's reply: struct fuse_dirent records (24-byte header, the name, zero padding to 8 bytes) of
 * `entries` from index `offset` on, as many as fit in `size` bytes; each record's `off` is the index of the
 * next entry, which the kernel sends back as the offset of its next READDIR.
 */
export function encodeDirents(entries: readonly Dirent[], offset: number, size: number): Buffer {
  const parts: Buffer[] = [];
  let used = 0;
  for (let k = offset; k < entries.length; k++) {
    const name = Buffer.from(entries[k].name, "latin1");
    const len = (FUSE_DIRENT_HEADER_LEN + name.length + 7) & ~7;
    if (used + len > size) break;
    const b = Buffer.alloc(len);
    b.writeBigUInt64LE(entries[k].ino, 0);
    b.writeBigUInt64LE(BigInt(k + 1), 8);
    b.writeUInt32LE(name.length, 16);
    b.writeUInt32LE(entries[k].type, 20);
    name.copy(b, FUSE_DIRENT_HEADER_LEN);
    parts.push(b);
    used += len;
  }
  return Buffer.concat(parts, used);
}
