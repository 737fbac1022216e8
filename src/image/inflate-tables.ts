// DEFLATE's Huffman decoding tables (RFC 1951 3.2.5-3.2.7) for inflate.ts: one-level lookup tables indexed
// by the next input bits, whose entries say what a code means, and the fixed tables of BTYPE 01.

// Table entries (Int32): bits 0-3 code length (bits to drop), 4-7 extra bits (of a subtable: its index bits),
// 8-10 kind, 11.. value (literal, base length or distance; of a subtable: where it starts).
export const KIND_MASK = 7 << 8;
export const KIND_LIT = 0 << 8;
export const KIND_LEN = 1 << 8;
export const KIND_EOB = 2 << 8;
export const KIND_BAD = 3 << 8;
/** The code is longer than the root table's index: look the rest up in a subtable. */
export const KIND_SUB = 4 << 8;
export const VALUE_SHIFT = 11;
const LEN_BASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258];
const LEN_EXTRA = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
const DIST_BASE = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577];
const DIST_EXTRA = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];
export const CLEN_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];

export interface Table {
  entries: Int32Array;
  mask: number;
}

export function litEntry(sym: number): number {
  if (sym < 256) return KIND_LIT | (sym << VALUE_SHIFT);
  if (sym === 256) return KIND_EOB;
  if (sym > 285) return KIND_BAD;
  return KIND_LEN | (LEN_EXTRA[sym - 257] << 4) | (LEN_BASE[sym - 257] << VALUE_SHIFT);
}

export function distEntry(sym: number): number {
  return sym < 30 ? KIND_LEN | (DIST_EXTRA[sym] << 4) | (DIST_BASE[sym] << VALUE_SHIFT) : KIND_BAD;
}

/**
 * A decoding table indexed by the next `rootBits` input bits (LSB first, so by the bit-reversed code), as
 * zlib's inflate_table() does: codes up to that long are found there, longer ones through a subtable (kept
 * small, so the tables stay in the cache). Over-subscribed or (except a lone code) incomplete sets are
 * refused, as zlib does.
 */
export function buildTable(lens: ArrayLike<number>, n: number, entryOf: (sym: number) => number, what: string, rootBits = 10): Table {
  const count = new Uint16Array(16);
  let max = 0;
  for (let s = 0; s < n; s++) {
    count[lens[s]]++;
    if (lens[s] > max) max = lens[s];
  }
  count[0] = 0;
  if (max === 0 && what !== "code length") return { entries: new Int32Array(2).fill(KIND_BAD | 1), mask: 1 }; // no codes: any use is an error
  let left = 1;
  for (let len = 1; len <= 15; len++) {
    left = left * 2 - count[len];
    if (left < 0) throw new Error(`invalid ${what} code lengths: over-subscribed`);
  }
  if (left > 0 && !(max === 1 && what !== "code length")) throw new Error(`invalid ${what} code lengths: incomplete set`);
  const bits = Math.max(Math.min(max, rootBits), 1);
  const root = 1 << bits;
  const next = new Uint16Array(16);
  for (let len = 1, code = 0; len <= 15; len++) {
    code = (code + count[len - 1]) << 1;
    next[len] = code;
  }
  const rev = new Uint16Array(n);
  const subLen = new Uint8Array(root); // the longest code under each root index, when longer than the root
  for (let s = 0; s < n; s++) {
    const len = lens[s];
    if (!len) continue;
    let code = next[len]++;
    let r = 0;
    for (let k = 0; k < len; k++, code >>= 1) r = (r << 1) | (code & 1);
    rev[s] = r;
    if (len > bits && len > subLen[r & (root - 1)]) subLen[r & (root - 1)] = len;
  }
  const subAt = new Uint32Array(root);
  let size = root;
  for (let r = 0; r < root; r++) {
    if (!subLen[r]) continue;
    subAt[r] = size;
    size += 1 << (subLen[r] - bits);
  }
  const entries = new Int32Array(size).fill(KIND_BAD | 1);
  entries.fill(KIND_BAD | bits, 0, root);
  for (let r = 0; r < root; r++) if (subLen[r]) entries[r] = KIND_SUB | ((subLen[r] - bits) << 4) | (subAt[r] << VALUE_SHIFT) | bits;
  for (let s = 0; s < n; s++) {
    const len = lens[s];
    if (!len) continue;
    if (len <= bits) {
      const e = entryOf(s) | len;
      for (let i = rev[s]; i < root; i += 1 << len) entries[i] = e;
      continue;
    }
    const r = rev[s] & (root - 1);
    const e = entryOf(s) | (len - bits);
    for (let i = rev[s] >>> bits; i < 1 << (subLen[r] - bits); i += 1 << (len - bits)) entries[subAt[r] + i] = e;
  }
  return { entries, mask: root - 1 };
}

export const FIXED_LIT = buildTable(Array.from({ length: 288 }, (_, s) => (s < 144 ? 8 : s < 256 ? 9 : s < 280 ? 7 : 8)), 288, litEntry, "literal/length");
export const FIXED_DIST = buildTable(new Array(32).fill(5), 32, distEntry, "distance"); // codes 30 and 31 exist but are invalid
