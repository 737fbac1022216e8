// A raw DEFLATE (RFC 1951) and gzip (RFC 1952) decoder that tells where its deflate blocks start: the seek
// index of a gzip layer needs those places (a decoder can start there given the 32 KiB before), and node:zlib
// cannot report them. Push-based and table-driven: the input stays in one growing buffer, the output goes
// through one buffer that keeps the 32 KiB of history; nothing is allocated per symbol.
//
// Every push decodes all the symbols its input completes and hands back their output. Near the end of the
// input (the last SYMBOL_INPUT bytes) each symbol and block header is decoded "carefully": the state before
// it is kept, and if it turns out to need bits that have not arrived, it is undone and waits for the next
// push (or, at finish(), the stream is truncated).
import zlib from "node:zlib";
import { EodError } from "../errors.ts";
import { gzipHeaderLength } from "./gzip-header.ts";
import {
  buildTable, CLEN_ORDER, distEntry, FIXED_DIST, FIXED_LIT, KIND_BAD, KIND_EOB, KIND_LEN, KIND_LIT, KIND_MASK, KIND_SUB, litEntry, VALUE_SHIFT, type Table,
} from "./inflate-tables.ts";

/** Where a deflate block starts: enough to resume decoding there (with the history before it). */
export interface BlockStart {
  /** Input bit position of the block header (absolute: bytes pushed before × 8 + bit). */
  bit: number;
  /** Output bytes before it (absolute, over all members). */
  out: number;
  /** The first block of a gzip member (or of the raw stream): nothing before it is referenced. */
  memberStart: boolean;
  /** History available to the block: min(32768, output of its member before it). */
  history: number;
}

export interface InflateOptions {
  /** "gzip" (RFC 1952 members, concatenated, trailers checked) or "raw" (one RFC 1951 stream). */
  format: "gzip" | "raw";
  /** Called at the start of every block, before its header is read; inflater.window() is the history then. */
  onBlock?: (b: BlockStart) => void;
  /** Bytes of output per chunk handed back (default 256 KiB). */
  chunkSize?: number;
}

const WSIZE = 32768;
/** Input a symbol may need: 15 + 5 + 15 + 13 bits, plus what a refill reads ahead. */
const SYMBOL_INPUT = 16;
const MAX_MATCH = 258;
/** Bytes of zeros kept after the input, so a decode near its end never reads out of bounds (a dynamic block header is at most 3 + 14 + 19·3 + 320·7 bits, about 290 bytes). */
const SLACK = 512;

const MODE = { GZ_HEADER: 0, BLOCK: 1, STORED: 2, HUFF: 3, GZ_TRAILER: 4, BETWEEN_MEMBERS: 5, ZERO_PAD: 6, END: 7 } as const;
type Mode = (typeof MODE)[keyof typeof MODE];

/** A push-based raw DEFLATE / gzip decoder (see the file comment). */
export class Inflater {
  readonly #opts: InflateOptions;
  readonly #chunkSize: number;
  #mode: Mode;
  // input: in[ip, inLen) not yet read; bitBuf holds bitCnt bits read ahead; inBase = absolute offset of in[0]
  #in = new Uint8Array(64 * 1024 + SLACK);
  #inLen = 0;
  #ip = 0;
  #inBase = 0;
  #bitBuf = 0;
  #bitCnt = 0;
  // output: out[0, op) with the history; out[emitFrom, op) not yet handed back; outBase = absolute offset of out[0]
  #out: Uint8Array;
  #op = 0;
  #emitFrom = 0;
  #outBase = 0;
  #emitted: Uint8Array[] = [];
  // the current member and block
  #memberOut = 0;
  #memberBlocks = 0;
  #crc = 0;
  #crcFrom = 0;
  #lastBlock = false;
  /** onBlock was called for the block whose header is being read (a header undone for more input is not announced twice). */
  #announced = false;
  #storedLeft = 0;
  #lit: Table = FIXED_LIT;
  #dist: Table = FIXED_DIST;
  #members = 0;
  // watches: output positions whose producing symbol's end bit is wanted; history reach of recent blocks
  #watchAt = Infinity;
  readonly #watchQueue: number[] = [];
  readonly #watchBits: number[] = [];
  #reach: { out: number; reach: number }[] = [];
  #reachUntil = -Infinity;

  constructor(opts: InflateOptions) {
    this.#opts = opts;
    this.#chunkSize = opts.chunkSize ?? 256 * 1024;
    this.#out = new Uint8Array(WSIZE + this.#chunkSize + MAX_MATCH);
    this.#mode = opts.format === "gzip" ? MODE.GZ_HEADER : MODE.BLOCK;
  }

  /** Absolute output bytes so far. */
  get outPos(): number {
    return this.#outBase + this.#op;
  }

  /** Absolute input bit position of the next unread bit. */
  get bitPos(): number {
    return (this.#inBase + this.#ip) * 8 - this.#bitCnt;
  }

  /** gzip members started so far. */
  get members(): number {
    return this.#members;
  }

  /** A copy of the last `len` bytes of output (at most the current BlockStart's `history`). */
  window(len: number): Uint8Array {
    if (len > Math.min(WSIZE, this.outPos - this.#memberOut)) throw new RangeError(`internal: window of ${len} bytes with less history`);
    return this.#out.slice(this.#op - len, this.#op);
  }

  /**
   * Asks for the input bit position just after the symbol that produces output byte `at - 1` (so a decoder
   * fed input up to there produces `at` bytes); `at` > outPos and past every watch asked before. Read the bits
   * with takeWatched() once outPos ≥ at.
   */
  watch(at: number): void {
    const last = this.#watchQueue.length ? this.#watchQueue[this.#watchQueue.length - 1] : this.#watchAt;
    if (at <= this.outPos || (last !== Infinity && at <= last)) throw new RangeError(`internal: watch at ${at}, output is at ${this.outPos}, last watch at ${last}`);
    if (this.#watchAt === Infinity) this.#watchAt = at;
    else this.#watchQueue.push(at);
  }

  /** The bit positions of the watches whose output is there, in the order they were asked; each given once. */
  takeWatched(): number[] {
    return this.#watchBits.splice(0);
  }

  /** Records the bit of the current watch and moves on to the next one. */
  #watchReached(bit: number): void {
    this.#watchBits.push(bit);
    this.#watchAt = this.#watchQueue.shift() ?? Infinity;
  }

  /**
   * Tracks how far back before output position `out` (a block start: the current outPos) the matches of the
   * next 32 KiB of output reach; the returned object's `reach` grows as they are decoded.
   */
  trackReach(out: number): { readonly reach: number } {
    const r = { out, reach: 0 };
    this.#reach.push(r);
    this.#reachUntil = out + WSIZE;
    return r;
  }

  /** Decodes what `input` completes; returns the output produced, in order. */
  push(input: Uint8Array): Uint8Array[] {
    this.#append(input);
    this.#run(false);
    this.#flush(false);
    return this.#take();
  }

  /** After the last push: decodes the rest; throws EodError when the stream is truncated. */
  finish(): Uint8Array[] {
    this.#run(true);
    const m = this.#mode;
    const done = this.#opts.format === "gzip" ? (m === MODE.BETWEEN_MEMBERS && this.#members > 0) || m === MODE.ZERO_PAD : m === MODE.END;
    if (!done) throw this.#bad(`truncated ${this.#opts.format === "gzip" ? "gzip" : "deflate"} stream (input ends ${this.#members ? "inside a member" : "before the first member"})`);
    this.#flush(false);
    return this.#take();
  }

  #take(): Uint8Array[] {
    const t = this.#emitted;
    this.#emitted = [];
    return t;
  }

  #append(input: Uint8Array): void {
    // Forget consumed input; bits already read ahead stay in bitBuf, whole bytes of it go back to the input.
    this.#unreadWholeBytes();
    const keep = this.#inLen - this.#ip;
    const need = keep + input.length + SLACK;
    if (need > this.#in.length) {
      const bigger = new Uint8Array(Math.max(need, this.#in.length * 2));
      bigger.set(this.#in.subarray(this.#ip, this.#inLen));
      this.#in = bigger;
    } else {
      this.#in.copyWithin(0, this.#ip, this.#inLen);
    }
    this.#inBase += this.#ip;
    this.#ip = 0;
    this.#in.set(input, keep);
    this.#inLen = keep + input.length;
    this.#in.fill(0, this.#inLen, this.#inLen + SLACK);
  }

  #unreadWholeBytes(): void {
    this.#ip -= this.#bitCnt >> 3;
    this.#bitCnt &= 7;
    this.#bitBuf &= (1 << this.#bitCnt) - 1;
  }

  #bad(why: string): EodError {
    return new EodError("SOURCE_INVALID", `Cannot inflate: ${why} (input byte ${Math.floor(this.bitPos / 8)}, output byte ${this.outPos})`);
  }

  /** Input bytes left (not counting bitBuf). */
  #avail(): number {
    return this.#inLen - this.#ip;
  }

  /** Whether the bits read so far run past the input (into the zeros after it). */
  #overrun(): boolean {
    return this.#ip * 8 - this.#bitCnt > this.#inLen * 8;
  }

  #bits(n: number): number {
    while (this.#bitCnt < n) {
      this.#bitBuf |= this.#in[this.#ip++] << this.#bitCnt;
      this.#bitCnt += 8;
    }
    const v = this.#bitBuf & ((1 << n) - 1);
    this.#bitBuf >>>= n;
    this.#bitCnt -= n;
    return v;
  }

  #run(final: boolean): void {
    for (;;) {
      switch (this.#mode) {
        case MODE.GZ_HEADER: {
          if (final && this.#avail() === 0 && this.#members > 0) throw this.#bad("truncated gzip member header");
          if (final && this.#avail() === 0) return;
          const len = gzipHeaderLength(this.#in.subarray(this.#ip, this.#inLen), final, this.#inBase + this.#ip);
          if (len < 0) return;
          this.#ip += len;
          this.#startMember();
          this.#mode = MODE.BLOCK;
          break;
        }
        case MODE.BLOCK:
          if (!this.#blockHeader(final)) return;
          break;
        case MODE.STORED:
          if (!this.#stored(final)) return;
          break;
        case MODE.HUFF:
          if (!this.#huffman(final)) return;
          break;
        case MODE.GZ_TRAILER:
          if (this.#avail() < 8) {
            if (final) throw this.#bad("truncated gzip trailer");
            return;
          }
          this.#trailer();
          break;
        case MODE.BETWEEN_MEMBERS:
          if (this.#avail() === 0) return;
          if (this.#in[this.#ip] === 0x1f) this.#mode = MODE.GZ_HEADER;
          else if (this.#in[this.#ip] === 0) this.#mode = MODE.ZERO_PAD;
          else throw this.#bad(`trailing garbage after gzip member ${this.#members} (0x${this.#in[this.#ip].toString(16)})`);
          break;
        case MODE.ZERO_PAD:
          // Zeros after the last member (tape or block padding) are ignored, as gzip(1) does; anything else is garbage.
          for (; this.#ip < this.#inLen; this.#ip++) if (this.#in[this.#ip]) throw this.#bad("trailing garbage after zero padding");
          return;
        case MODE.END: // a raw stream ends with its last block; what follows is not ours (zlib ignores it too)
          return;
      }
    }
  }

  #startMember(): void {
    this.#flushCrc();
    this.#crc = 0;
    this.#memberOut = this.outPos;
    this.#memberBlocks = 0;
    this.#members++;
  }

  /** Reads a block header; false (nothing read) when its bits have not all arrived yet. */
  #blockHeader(final: boolean): boolean {
    if (this.#opts.format === "raw" && this.#members === 0) this.#startMember();
    if (!this.#announced) {
      const history = Math.min(WSIZE, this.outPos - this.#memberOut);
      this.#opts.onBlock?.({ bit: this.bitPos, out: this.outPos, memberStart: this.#memberBlocks === 0, history });
      this.#announced = true;
    }
    const ip = this.#ip;
    const bitBuf = this.#bitBuf;
    const bitCnt = this.#bitCnt;
    try {
      this.#readBlockHeader();
    } catch (err) {
      if (!this.#overrun()) throw err;
    }
    if (this.#overrun()) {
      if (final) throw this.#bad("truncated deflate stream");
      this.#ip = ip;
      this.#bitBuf = bitBuf;
      this.#bitCnt = bitCnt;
      this.#mode = MODE.BLOCK;
      return false;
    }
    this.#announced = false;
    this.#memberBlocks++;
    return true;
  }

  #readBlockHeader(): void {
    this.#lastBlock = this.#bits(1) === 1;
    const type = this.#bits(2);
    if (type === 0) {
      this.#bitBuf >>>= this.#bitCnt & 7; // to a byte boundary
      this.#bitCnt -= this.#bitCnt & 7;
      const len = this.#bits(16);
      const nlen = this.#bits(16);
      if (this.#overrun()) return;
      if ((len ^ 0xffff) !== nlen) throw this.#bad(`stored block length ${len} does not match its complement ${nlen}`);
      this.#unreadWholeBytes();
      this.#storedLeft = len;
      this.#mode = MODE.STORED;
    } else if (type === 1) {
      this.#lit = FIXED_LIT;
      this.#dist = FIXED_DIST;
      this.#mode = MODE.HUFF;
    } else if (type === 2) {
      this.#dynamicTables();
      this.#mode = MODE.HUFF;
    } else {
      throw this.#bad("invalid block type 3");
    }
  }

  #dynamicTables(): void {
    const nlit = this.#bits(5) + 257;
    const ndist = this.#bits(5) + 1;
    const nclen = this.#bits(4) + 4;
    if (nlit > 286 || ndist > 30) throw this.#bad(`dynamic block with ${nlit} literal/length and ${ndist} distance codes (at most 286 and 30)`);
    const clens = new Uint8Array(19);
    for (let i = 0; i < nclen; i++) clens[CLEN_ORDER[i]] = this.#bits(3);
    const clTable = this.#table(clens, 19, (s) => s << VALUE_SHIFT, "code length");
    const lens = new Uint8Array(nlit + ndist);
    for (let i = 0; i < nlit + ndist;) {
      const e = this.#decode(clTable);
      const sym = e >>> VALUE_SHIFT;
      if (sym < 16) {
        lens[i++] = sym;
        continue;
      }
      let rep: number;
      let val = 0;
      if (sym === 16) {
        if (i === 0) throw this.#bad("repeat of a code length with no previous one");
        val = lens[i - 1];
        rep = 3 + this.#bits(2);
      } else if (sym === 17) rep = 3 + this.#bits(3);
      else rep = 11 + this.#bits(7);
      if (i + rep > nlit + ndist) throw this.#bad("code lengths repeat past their end");
      lens.fill(val, i, i + rep);
      i += rep;
      if (this.#overrun()) return;
    }
    if (lens[256] === 0) throw this.#bad("dynamic block without an end-of-block code");
    this.#lit = this.#table(lens.subarray(0, nlit), nlit, litEntry, "literal/length", 10);
    this.#dist = this.#table(lens.subarray(nlit), ndist, distEntry, "distance", 8);
  }

  #table(lens: ArrayLike<number>, n: number, entryOf: (sym: number) => number, what: string, rootBits = 10): Table {
    try {
      return buildTable(lens, n, entryOf, what, rootBits);
    } catch (err) {
      throw this.#bad((err as Error).message);
    }
  }

  /** One symbol through a table (header decoding; the block data has its own inlined loop). */
  #decode(t: Table): number {
    while (this.#bitCnt < 15) {
      this.#bitBuf |= this.#in[this.#ip++] << this.#bitCnt;
      this.#bitCnt += 8;
    }
    let e = t.entries[this.#bitBuf & t.mask];
    if ((e & KIND_MASK) === KIND_SUB) {
      this.#bitBuf >>>= e & 15;
      this.#bitCnt -= e & 15;
      e = t.entries[(e >>> VALUE_SHIFT) + (this.#bitBuf & ((1 << ((e >>> 4) & 15)) - 1))];
    }
    if ((e & KIND_MASK) === KIND_BAD) throw this.#bad("invalid code");
    const len = e & 15;
    this.#bitBuf >>>= len;
    this.#bitCnt -= len;
    return e;
  }

  /** Copies a stored block's bytes; false when it needs more input. */
  #stored(final: boolean): boolean {
    while (this.#storedLeft > 0) {
      const n = Math.min(this.#storedLeft, this.#inLen - this.#ip, this.#out.length - MAX_MATCH - this.#op);
      if (n <= 0) {
        if (this.#ip >= this.#inLen) {
          if (final) throw this.#bad("truncated stored block");
          return false;
        }
        this.#flush(true);
        continue;
      }
      while (this.#outBase + this.#op + n >= this.#watchAt) this.#watchReached((this.#inBase + this.#ip + (this.#watchAt - this.#outBase - this.#op)) * 8);
      this.#out.set(this.#in.subarray(this.#ip, this.#ip + n), this.#op);
      this.#ip += n;
      this.#op += n;
      this.#storedLeft -= n;
    }
    this.#endBlock();
    return true;
  }

  #endBlock(): void {
    if (!this.#lastBlock) {
      this.#mode = MODE.BLOCK;
      return;
    }
    if (this.#opts.format === "raw") {
      this.#mode = MODE.END;
      return;
    }
    this.#bitBuf >>>= this.#bitCnt & 7;
    this.#bitCnt -= this.#bitCnt & 7;
    this.#unreadWholeBytes();
    this.#mode = MODE.GZ_TRAILER;
  }

  #trailer(): void {
    this.#flushCrc();
    const b = this.#in;
    const p = this.#ip;
    const crc = (b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24)) >>> 0;
    const isize = (b[p + 4] | (b[p + 5] << 8) | (b[p + 6] << 16) | (b[p + 7] << 24)) >>> 0;
    const size = (this.outPos - this.#memberOut) % 2 ** 32;
    if (crc !== this.#crc) throw this.#bad(`gzip member ${this.#members}: CRC32 0x${crc.toString(16)} in the trailer, the data has 0x${this.#crc.toString(16)}`);
    if (isize !== size) throw this.#bad(`gzip member ${this.#members}: ISIZE ${isize} in the trailer, the data has ${size} bytes (mod 2^32)`);
    this.#ip += 8;
    this.#mode = MODE.BETWEEN_MEMBERS;
  }

  #flushCrc(): void {
    if (this.#op > this.#crcFrom) this.#crc = zlib.crc32(this.#out.subarray(this.#crcFrom, this.#op), this.#crc);
    this.#crcFrom = this.#op;
  }

  /** Hands back the output not yet handed back; with `room`, moves the last 32 KiB (the history) to the front. */
  #flush(room: boolean): void {
    this.#flushCrc();
    if (this.#op > this.#emitFrom) this.#emitted.push(this.#out.slice(this.#emitFrom, this.#op));
    this.#emitFrom = this.#op;
    if (!room || this.#op <= WSIZE) return;
    const drop = this.#op - WSIZE;
    this.#out.copyWithin(0, drop, this.#op);
    this.#outBase += drop;
    this.#op = this.#emitFrom = this.#crcFrom = WSIZE;
  }

  /**
   * Decodes symbols of a Huffman block until its end (true), or until more input is needed (false). The
   * loop keeps the bit reader and output position in locals; output is flushed when less than a match's
   * worth of room is left. In the last SYMBOL_INPUT bytes of the input it is careful (file comment).
   */
  #huffman(final: boolean): boolean {
    const inp = this.#in;
    const inBits = this.#inLen * 8;
    const limit = this.#inLen - SYMBOL_INPUT;
    const lit = this.#lit.entries;
    const litMask = this.#lit.mask;
    const dist = this.#dist.entries;
    const distMask = this.#dist.mask;
    let out = this.#out;
    let outEnd = out.length - MAX_MATCH;
    let ip = this.#ip;
    let bitBuf = this.#bitBuf;
    let bitCnt = this.#bitCnt;
    let op = this.#op;
    let outBase = this.#outBase;
    let watchOp = this.#watchAt - outBase;
    let reachOp = this.#reachUntil - outBase;
    let memberOp = this.#memberOut - outBase;
    // the state before the current symbol, kept when careful
    let careful = false;
    let sIp = ip;
    let sBitBuf = bitBuf;
    let sBitCnt = bitCnt;
    let sOp = op;
    let why = "";
    let ended = false;
    for (;;) {
      if (op >= outEnd) {
        this.#save(ip, bitBuf, bitCnt, op);
        this.#flush(true);
        out = this.#out;
        outEnd = out.length - MAX_MATCH;
        op = this.#op;
        outBase = this.#outBase;
        watchOp = this.#watchAt - outBase;
        reachOp = this.#reachUntil - outBase;
        memberOp = this.#memberOut - outBase;
      }
      if (ip > limit) {
        careful = true;
        sIp = ip;
        sBitBuf = bitBuf;
        sBitCnt = bitCnt;
        sOp = op;
      }
      while (bitCnt < 24) {
        bitBuf |= inp[ip++] << bitCnt;
        bitCnt += 8;
      }
      let e = lit[bitBuf & litMask];
      let n = e & 15;
      bitBuf >>>= n;
      bitCnt -= n;
      if ((e & KIND_MASK) === KIND_SUB) {
        e = lit[(e >>> VALUE_SHIFT) + (bitBuf & ((1 << ((e >>> 4) & 15)) - 1))];
        n = e & 15;
        bitBuf >>>= n;
        bitCnt -= n;
      }
      const kind = e & KIND_MASK;
      if (kind === KIND_LIT) {
        out[op++] = e >>> VALUE_SHIFT;
      } else if (kind === KIND_LEN) {
        n = (e >>> 4) & 15;
        const len = (e >>> VALUE_SHIFT) + (bitBuf & ((1 << n) - 1));
        bitBuf >>>= n;
        bitCnt -= n;
        while (bitCnt < 16) {
          bitBuf |= inp[ip++] << bitCnt;
          bitCnt += 8;
        }
        e = dist[bitBuf & distMask];
        n = e & 15;
        bitBuf >>>= n;
        bitCnt -= n;
        if ((e & KIND_MASK) === KIND_SUB) {
          e = dist[(e >>> VALUE_SHIFT) + (bitBuf & ((1 << ((e >>> 4) & 15)) - 1))];
          n = e & 15;
          bitBuf >>>= n;
          bitCnt -= n;
        }
        if ((e & KIND_MASK) !== KIND_LEN) {
          why = "invalid distance code";
          break;
        }
        n = (e >>> 4) & 15;
        while (bitCnt < n) {
          bitBuf |= inp[ip++] << bitCnt;
          bitCnt += 8;
        }
        const d = (e >>> VALUE_SHIFT) + (bitBuf & ((1 << n) - 1));
        bitBuf >>>= n;
        bitCnt -= n;
        if (d > op - memberOp) {
          why = `distance ${d} too far back (${op - memberOp} bytes of history)`;
          break;
        }
        if (careful && ip * 8 - bitCnt > inBits) break;
        if (op < reachOp) this.#noteReach(d, outBase + op);
        let from = op - d;
        const end = op + len;
        if (d >= len && len > 16) {
          out.copyWithin(op, from, from + len);
          op = end;
        } else {
          while (op < end) out[op++] = out[from++];
        }
      } else if (kind === KIND_EOB) {
        ended = true;
        break;
      } else {
        why = "invalid literal/length code";
        break;
      }
      if (careful && ip * 8 - bitCnt > inBits) break;
      while (op >= watchOp) { // one symbol makes at most 258 bytes, but watches may be closer than that
        this.#watchReached((this.#inBase + ip) * 8 - bitCnt);
        watchOp = this.#watchAt - outBase;
      }
    }
    if (careful && ip * 8 - bitCnt > inBits) {
      // The symbol needs bits that are not there: undo it; at the end of the input the stream is truncated.
      this.#save(sIp, sBitBuf, sBitCnt, sOp);
      if (final) throw this.#bad("truncated deflate stream");
      return false;
    }
    this.#save(ip, bitBuf, bitCnt, op);
    if (why) throw this.#bad(why);
    if (ended) this.#endBlock();
    return ended;
  }

  #save(ip: number, bitBuf: number, bitCnt: number, op: number): void {
    this.#ip = ip;
    this.#bitBuf = bitBuf;
    this.#bitCnt = bitCnt;
    this.#op = op;
  }

  #noteReach(d: number, at: number): void {
    for (const r of this.#reach) {
      const back = d - (at - r.out);
      if (back > r.reach) r.reach = back;
    }
    while (this.#reach.length && this.#reach[0].out + WSIZE <= at) this.#reach.shift();
  }
}

/** Inflates a whole raw DEFLATE stream (tests, small inputs). */
export function inflateRaw(data: Uint8Array): Uint8Array {
  return joined(new Inflater({ format: "raw" }), data);
}

/** Decodes a whole gzip file: every member, trailers checked. */
export function gunzip(data: Uint8Array): Uint8Array {
  return joined(new Inflater({ format: "gzip" }), data);
}

function joined(inf: Inflater, data: Uint8Array): Uint8Array {
  return Buffer.concat([...inf.push(data), ...inf.finish()]);
}
