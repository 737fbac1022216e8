// Hand-built tar archives for layer tests: ustar headers written byte by byte, with PAX records (long names,
// nanosecond times, SCHILY.xattr.*, anything else a test wants) and GNU long names/links, so tests can make
// the odd and the hostile cases that tar writers refuse to make. Independent of src/mkfs/layers.

export type TarType = "file" | "dir" | "symlink" | "link" | "fifo" | "chardev" | "blockdev";

export interface TarSpec {
  path: string | Buffer;
  type?: TarType;
  /** Permission bits (default 0644 for files, 0755 for directories). */
  mode?: number;
  uid?: number;
  gid?: number;
  /** Seconds, or a PAX decimal time such as "1700000000.123456789" (then written as a PAX mtime record). */
  mtime?: number | string;
  data?: Buffer;
  linkpath?: string | Buffer;
  devMajor?: number;
  devMinor?: number;
  xattrs?: Record<string, Buffer | string>;
  /** How a path or link target longer than 100 bytes is stored (default "pax"). */
  long?: "pax" | "gnu";
  /** Extra PAX records. */
  pax?: Record<string, Buffer | string>;
}

const TYPE_CODE: Record<TarType, string> = { file: "0", link: "1", symlink: "2", chardev: "3", blockdev: "4", dir: "5", fifo: "6" };
const DEFAULT_MTIME = 1_700_000_000;

/** One entry: its extended headers, its header, its body and padding. */
export function tarEntry(s: TarSpec): Buffer {
  const type = s.type ?? "file";
  const path = Buffer.from(s.path);
  const link = s.linkpath === undefined ? Buffer.alloc(0) : Buffer.from(s.linkpath);
  const data = s.data ?? Buffer.alloc(0);
  const parts: Buffer[] = [];
  const pax: Array<[string, Buffer]> = [];
  const long = s.long ?? "pax";
  let name = path;
  let linkname = link;
  if (path.length > 100) {
    if (long === "gnu") parts.push(gnuLong("L", path));
    else pax.push(["path", path]);
    name = path.subarray(0, 100);
  }
  if (link.length > 100) {
    if (long === "gnu") parts.push(gnuLong("K", link));
    else pax.push(["linkpath", link]);
    linkname = link.subarray(0, 100);
  }
  let mtime = typeof s.mtime === "number" ? s.mtime : DEFAULT_MTIME;
  if (typeof s.mtime === "string") {
    pax.push(["mtime", Buffer.from(s.mtime)]);
    mtime = Math.floor(Number(s.mtime));
  }
  for (const [k, v] of Object.entries(s.xattrs ?? {})) pax.push([`SCHILY.xattr.${k}`, Buffer.from(v)]);
  for (const [k, v] of Object.entries(s.pax ?? {})) pax.push([k, Buffer.from(v)]);
  if (pax.length) parts.push(paxHeader(pax));
  parts.push(header({
    name, mode: s.mode ?? (type === "dir" ? 0o755 : 0o644), uid: s.uid ?? 0, gid: s.gid ?? 0,
    size: type === "file" ? data.length : 0, mtime: Math.max(0, mtime), typeflag: TYPE_CODE[type], linkname,
    devMajor: s.devMajor ?? 0, devMinor: s.devMinor ?? 0, gnu: long === "gnu" && (path.length > 100 || link.length > 100),
  }));
  if (type === "file") parts.push(data, Buffer.alloc(pad(data.length)));
  return Buffer.concat(parts);
}

/** A whole archive: the entries and the two zero blocks that end it. */
export function tarArchive(specs: TarSpec[]): Buffer {
  return Buffer.concat([...specs.map(tarEntry), Buffer.alloc(1024)]);
}

export function pad(n: number): number {
  return (512 - (n % 512)) % 512;
}

/** A PAX 'x' header with its body. */
export function paxHeader(records: Array<[string, Buffer]>): Buffer {
  const body = Buffer.concat(records.map(([k, v]) => paxRecord(k, v)));
  return Buffer.concat([
    header({ name: Buffer.from("PaxHeaders/x"), mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: 0, typeflag: "x", linkname: Buffer.alloc(0), devMajor: 0, devMinor: 0 }),
    body, Buffer.alloc(pad(body.length)),
  ]);
}

function paxRecord(key: string, value: Buffer): Buffer {
  const rest = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from("\n")]);
  let len = rest.length + 1;
  while (String(len).length + rest.length !== len) len = String(len).length + rest.length;
  return Buffer.concat([Buffer.from(String(len)), rest]);
}

function gnuLong(typeflag: "L" | "K", name: Buffer): Buffer {
  const body = Buffer.concat([name, Buffer.alloc(1)]);
  return Buffer.concat([
    header({ name: Buffer.from("././@LongLink"), mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: 0, typeflag, linkname: Buffer.alloc(0), devMajor: 0, devMinor: 0, gnu: true }),
    body, Buffer.alloc(pad(body.length)),
  ]);
}

interface HeaderFields {
  name: Buffer; mode: number; uid: number; gid: number; size: number; mtime: number; typeflag: string;
  linkname: Buffer; devMajor: number; devMinor: number; gnu?: boolean;
}

/** A 512-byte ustar (or GNU) header with its checksum. */
export function header(h: HeaderFields): Buffer {
  const b = Buffer.alloc(512);
  h.name.copy(b, 0, 0, Math.min(100, h.name.length));
  octal(b, 100, 8, h.mode);
  octal(b, 108, 8, h.uid);
  octal(b, 116, 8, h.gid);
  octal(b, 124, 12, h.size);
  octal(b, 136, 12, h.mtime);
  b.write(h.typeflag, 156, "latin1");
  h.linkname.copy(b, 157, 0, Math.min(100, h.linkname.length));
  b.write(h.gnu ? "ustar  \0" : "ustar\u000000", 257, "latin1");
  b.write("root", 265, "latin1");
  b.write("root", 297, "latin1");
  octal(b, 329, 8, h.devMajor);
  octal(b, 337, 8, h.devMinor);
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
  return b;
}

function octal(b: Buffer, at: number, len: number, v: number): void {
  b.write(`${v.toString(8).padStart(len - 1, "0")}\0`, at, "latin1");
}
