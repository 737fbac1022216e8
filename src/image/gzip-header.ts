// The gzip member header (RFC 1952 2.3): magic 1f 8b, CM 8 (deflate), FLG, MTIME, XFL, OS, then as FLG says
// FEXTRA (u16 length + bytes), FNAME and FCOMMENT (zero-terminated), FHCRC (the low 16 bits of the CRC32 of
// the header before it). Shared by the indexer's inflater and the span decoder (a span may cross members).
import zlib from "node:zlib";
import { EodError } from "../errors.ts";

const FHCRC = 2;
const FEXTRA = 4;
const FNAME = 8;
const FCOMMENT = 16;
const FRESERVED = 0xe0;

/**
 * The length of the gzip header at the start of `b`, or -1 when `b` ends inside it and more may come
 * (`final` false). `at` is its offset in the layer, for messages.
 * @throws EodError SOURCE_INVALID when it is no gzip header, or ends inside one and `final` is set
 */
export function gzipHeaderLength(b: Uint8Array, final: boolean, at: number): number {
  const bad = (why: string) => new EodError("SOURCE_INVALID", `Cannot read the gzip header at byte ${at}: ${why}`);
  const more = (): number => {
    if (final) throw bad(`truncated after ${b.length} bytes`);
    return -1;
  };
  if (b.length < 10) {
    if (b.length >= 1 && b[0] !== 0x1f) throw bad(`not gzip (first byte 0x${b[0].toString(16)})`);
    return more();
  }
  if (b[0] !== 0x1f || b[1] !== 0x8b) throw bad(`not gzip (magic ${hex(b[0])} ${hex(b[1])})`);
  if (b[2] !== 8) throw bad(`compression method ${b[2]} (only 8, deflate, exists)`);
  const flg = b[3];
  if (flg & FRESERVED) throw bad(`reserved flag bits set (FLG 0x${flg.toString(16)})`);
  let p = 10;
  if (flg & FEXTRA) {
    if (b.length < p + 2) return more();
    p += 2 + (b[p] | (b[p + 1] << 8));
    if (b.length < p) return more();
  }
  for (const f of [FNAME, FCOMMENT]) {
    if (!(flg & f)) continue;
    const nul = b.indexOf(0, p);
    if (nul < 0) return more();
    p = nul + 1;
  }
  if (flg & FHCRC) {
    if (b.length < p + 2) return more();
    const want = zlib.crc32(b.subarray(0, p)) & 0xffff;
    const got = b[p] | (b[p + 1] << 8);
    if (want !== got) throw bad(`header CRC 0x${got.toString(16)}, the header has 0x${want.toString(16)}`);
    p += 2;
  }
  return p;
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(2, "0")}`;
}
