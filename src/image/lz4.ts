// Raw LZ4 blocks (the block format of lz4_Block_format.md: no frame, no size header), as the remote form of
// an `lz4` image stores its chunks (docs/format.md). Both directions in TypeScript: the decoder checks every
// length and offset against its input and output, so bad input throws and never reads or writes out of
// bounds; the encoder is greedy over a hash of 4-byte sequences (level 0), or walks a chain of earlier
// positions with the same hash, 2^(level-1) of them, for the longest match (levels 1..12, as LZ4HC's levels
// trade speed for size). Any LZ4 decoder reads what it makes; it reads what liblz4 made for older images.

const MIN_MATCH = 4;
/** The last 5 bytes of a block are literals, and the last match starts at least 12 bytes before its end. */
const LAST_LITERALS = 5;
const MF_LIMIT = 12;
const MAX_OFFSET = 65535;
const HASH_LOG = 16;
export const LZ4_MAX_LEVEL = 12;

/** The most a block of `n` input bytes can take. */
export function lz4Bound(n: number): number {
  return n + Math.floor(n / 255) + 16;
}

// Reused by every call on this thread: a position p is stored as `base + p`, so entries from earlier calls
// (below `base`) read as empty without clearing the tables.
const head = new Int32Array(1 << HASH_LOG);
const chain = new Int32Array(MAX_OFFSET + 1); // previous position with the same hash, by position & 0xffff
let base = 1;

function hash4(src: Uint8Array, i: number): number {
  const v = src[i] | (src[i + 1] << 8) | (src[i + 2] << 16) | (src[i + 3] << 24);
  return Math.imul(v, 2654435761) >>> (32 - HASH_LOG);
}

function same4(src: Uint8Array, a: number, b: number): boolean {
  return src[a] === src[b] && src[a + 1] === src[b + 1] && src[a + 2] === src[b + 2] && src[a + 3] === src[b + 3];
}

/**
 * One LZ4 block of `src`, as a view of `into` when given (at least lz4Bound(src.length) bytes: a caller that
 * copies the block out reuses it) or of a new buffer. `level` 0 is the fast greedy encoder, 1..12 search
 * more for smaller output.
 * @example lz4DecompressBlock(lz4CompressBlock(data), new Uint8Array(data.length)) // === data.length
 */
export function lz4CompressBlock(input: Uint8Array, level = 0, into?: Uint8Array): Uint8Array {
  const src = plainView(input);
  if (!Number.isInteger(level) || level < 0 || level > LZ4_MAX_LEVEL) throw new RangeError(`Cannot compress with LZ4 level ${level}: must be 0..${LZ4_MAX_LEVEL}`);
  const n = src.length;
  if (into && into.length < lz4Bound(n)) throw new RangeError(`Cannot compress ${n} bytes into ${into.length}: needs ${lz4Bound(n)}`);
  const out = into ? plainView(into) : new Uint8Array(lz4Bound(n));
  if (base > 0x3fffffff - n) {
    head.fill(0);
    chain.fill(0);
    base = 1;
  }
  const b = base;
  base += n + 1; // the next call's base is above every position stored by this one
  if (level === 0) return out.subarray(0, compressFast(src, out, b));
  const attempts = 2 ** (level - 1);
  const matchLimit = n - LAST_LITERALS; // a match ends here at the latest
  const lastStart = n - MF_LIMIT; // and starts here at the latest
  let op = 0;
  let anchor = 0;
  let ip = 0;
  const insert = (p: number) => {
    const h = hash4(src, p);
    chain[p & MAX_OFFSET] = head[h];
    head[h] = b + p;
  };
  while (ip <= lastStart) {
    // The longest match among the candidates.
    let bestLen = 0;
    let bestAt = 0;
    let cand = head[hash4(src, ip)] - b;
    insert(ip);
    for (let tries = attempts; tries > 0 && cand >= 0 && ip - cand <= MAX_OFFSET; tries--) {
      if (same4(src, cand, ip)) {
        let len = MIN_MATCH;
        while (ip + len < matchLimit && src[cand + len] === src[ip + len]) len++;
        if (len > bestLen) {
          bestLen = len;
          bestAt = cand;
        }
      }
      cand = chain[cand & MAX_OFFSET] - b;
    }
    if (bestLen < MIN_MATCH) {
      ip++;
      continue;
    }
    // Extend backwards over literals that match too.
    while (ip > anchor && bestAt > 0 && src[ip - 1] === src[bestAt - 1]) {
      ip--;
      bestAt--;
      bestLen++;
    }
    op = sequence(out, op, src, anchor, ip - anchor, ip - bestAt, bestLen);
    const end = ip + bestLen;
    for (let p = ip + 1; p < end && p <= lastStart; p++) insert(p);
    ip = anchor = end;
  }
  op = sequence(out, op, src, anchor, n - anchor, 0, 0);
  return out.subarray(0, op);
}

/** Level 0: greedy, one candidate per position, 4 bytes compared at a time; returns the block's length. */
function compressFast(src: Uint8Array, out: Uint8Array, b: number): number {
  const n = src.length;
  const dv = new DataView(src.buffer, src.byteOffset, n);
  const matchLimit = n - LAST_LITERALS;
  const lastStart = n - MF_LIMIT;
  let op = 0;
  let anchor = 0;
  let ip = 0;
  let misses = 0;
  while (ip <= lastStart) {
    const seq = dv.getUint32(ip, true);
    const h = Math.imul(seq, 2654435761) >>> (32 - HASH_LOG);
    let at = head[h] - b;
    head[h] = b + ip;
    if (at < 0 || ip - at > MAX_OFFSET || dv.getUint32(at, true) !== seq) {
      ip += 1 + (misses++ >> 6); // step ahead faster the longer nothing matched, as liblz4 does
      continue;
    }
    misses = 0;
    let len = MIN_MATCH;
    while (ip + len + 4 <= matchLimit && dv.getUint32(at + len, true) === dv.getUint32(ip + len, true)) len += 4;
    while (ip + len < matchLimit && src[at + len] === src[ip + len]) len++;
    while (ip > anchor && at > 0 && src[ip - 1] === src[at - 1]) { // extend backwards over matching literals
      ip--;
      at--;
      len++;
    }
    op = sequence(out, op, src, anchor, ip - anchor, ip - at, len);
    ip = anchor = ip + len;
    if (ip - 2 <= lastStart) head[hash4(src, ip - 2)] = b + ip - 2;
  }
  return sequence(out, op, src, anchor, n - anchor, 0, 0);
}

/** Writes one sequence (literals, then a match unless `matchLen` is 0: the block's last); returns the new end. */
function sequence(out: Uint8Array, op: number, src: Uint8Array, litAt: number, litLen: number, offset: number, matchLen: number): number {
  const token = op++;
  out[token] = (litLen >= 15 ? 15 : litLen) << 4;
  if (litLen >= 15) op = length(out, op, litLen - 15);
  if (litLen > 32) out.set(src.subarray(litAt, litAt + litLen), op);
  else for (let k = 0; k < litLen; k++) out[op + k] = src[litAt + k];
  op += litLen;
  if (matchLen === 0) return op;
  out[op++] = offset & 0xff;
  out[op++] = offset >>> 8;
  const ml = matchLen - MIN_MATCH;
  out[token] |= ml >= 15 ? 15 : ml;
  if (ml >= 15) op = length(out, op, ml - 15);
  return op;
}

function length(out: Uint8Array, op: number, rest: number): number {
  for (; rest >= 255; rest -= 255) out[op++] = 255;
  out[op++] = rest;
  return op;
}

/**
 * Decodes one LZ4 block into `dst`; returns the bytes written.
 * @throws RangeError when the block is malformed or expands past `dst` (with the input position)
 */
export function lz4DecompressBlock(input: Uint8Array, output: Uint8Array): number {
  const src = plainView(input);
  const dst = plainView(output);
  const n = src.length;
  let ip = 0;
  let op = 0;
  const bad = (why: string) => new RangeError(`malformed LZ4 block at input byte ${ip}: ${why}`);
  for (;;) {
    if (ip >= n) throw bad("ends before its last literals");
    const token = src[ip++];
    let lit = token >>> 4;
    if (lit === 15) {
      for (let x = 255; x === 255; lit += x) {
        if (ip >= n) throw bad("ends inside a literal length");
        x = src[ip++];
      }
    }
    if (lit > n - ip) throw bad(`${lit} literals, ${n - ip} bytes left`);
    if (lit > dst.length - op) throw bad(`expands past ${dst.length} bytes`);
    if (lit > 16) dst.set(src.subarray(ip, ip + lit), op);
    else for (let k = 0; k < lit; k++) dst[op + k] = src[ip + k];
    ip += lit;
    op += lit;
    if (ip === n) return op; // the last sequence has literals only
    if (n - ip < 2) throw bad("ends inside an offset");
    const offset = src[ip] | (src[ip + 1] << 8);
    ip += 2;
    if (offset === 0 || offset > op) throw bad(`offset ${offset} at output byte ${op}`);
    let len = token & 15;
    if (len === 15) {
      for (let x = 255; x === 255; len += x) {
        if (ip >= n) throw bad("ends inside a match length");
        x = src[ip++];
      }
    }
    len += MIN_MATCH;
    if (len > dst.length - op) throw bad(`expands past ${dst.length} bytes`);
    copyMatch(dst, op, offset, len);
    op += len;
  }
}

/** Copies `len` bytes from `offset` back; a match may overlap the bytes it produces (offset < len repeats them). */
function copyMatch(dst: Uint8Array, op: number, offset: number, len: number): void {
  if (len <= 16) {
    for (let from = op - offset, k = 0; k < len; k++) dst[op + k] = dst[from + k];
    return;
  }
  // The pattern doubles with each copy: every copy reads only bytes already written.
  for (let done = 0, span = offset; done < len; span *= 2) {
    const n = Math.min(span, len - done);
    dst.copyWithin(op + done, op - offset, op - offset + n);
    done += n;
  }
}

/** A plain Uint8Array over the same bytes: the loops above then see one kind of array (a Buffer is another). */
function plainView(a: Uint8Array): Uint8Array {
  return Object.getPrototypeOf(a) === Uint8Array.prototype ? a : new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
