// The one reader of answers to a Range request, for the HTTP remote and the registry alike: the answer is
// checked before a body byte is believed, the bytes are handed to `onData` as they arrive (the cache core
// uses the first chunks of a long range before the rest is in), and a server that ignores Range (200 with
// the whole file) gets one policy: its answer is used only as far as the bytes asked for, from offset 0.
import { EodError, RemoteError } from "../errors.ts";
import { contentLength, discard, one, type Answer } from "./answer.ts";
import type { ReadOptions } from "./remote.ts";

/**
 * Exactly `length` bytes at `offset` from an answer to `Range: bytes=<offset>-<offset+length-1>`; the caller
 * has turned every status but 206 and 200 into its own error.
 *
 * - 206: Content-Range must be the range asked for and the body exactly `length` bytes, else REMOTE_IO
 *   (retryable: a proxy or a cut connection, not the file).
 * - 200, the server ignored Range and sends the whole file: from offset 0 the first `length` bytes are taken
 *   and the connection is closed after them; a file shorter than that is IMAGE_INVALID. From any other
 *   offset it is refused before a body byte is read (REMOTE_STATUS 200, not retried: asking again will not
 *   change the server, and reading up to the offset could mean a whole blob for one chunk).
 *
 * The body is closed on every failure. Errors of the connection itself are thrown as undici raised them:
 * the caller maps them (it knows whether its deadline fired).
 */
export async function readRangeAnswer(answer: Answer, what: string, offset: number, length: number, onData?: ReadOptions["onData"]): Promise<Uint8Array> {
  const declared = contentLength(answer.headers);
  try {
    if (answer.status === 206) {
      const cr = one(answer.headers["content-range"]) ?? "";
      const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(cr.trim());
      if (!m || Number(m[1]) !== offset || Number(m[2]) !== offset + length - 1) {
        throw new RemoteError("REMOTE_IO", answer.url, `${what}: answer is for another range (Content-Range ${JSON.stringify(cr)})`);
      }
      if (declared !== undefined && declared !== length) {
        throw new RemoteError("REMOTE_IO", answer.url, `${what}: answer has ${declared} bytes (Content-Length), asked for ${length}`);
      }
    } else if (answer.status === 200) {
      if (offset !== 0) {
        const size = declared !== undefined ? ` of ${declared} bytes` : "";
        throw new RemoteError("REMOTE_STATUS", answer.url, `${what}: HTTP 200, the server ignored the range and sends the whole file${size}; eod reads only the bytes it needs and does not download the ${offset} bytes before them`, { status: 200 });
      }
      if (declared !== undefined && declared < length) throw pastTheEnd(what, declared);
    } else {
      throw new TypeError(`readRangeAnswer() reads 206 and 200 answers, not ${answer.status}`);
    }
    return await readBytes(answer, what, length, answer.status === 200 && declared !== length, onData);
  } catch (err) {
    discard(answer.body);
    throw err;
  }
}

/** `length` bytes of the body; `prefix`: the body may go on (a whole file) and is closed after them. */
async function readBytes(answer: Answer, what: string, length: number, prefix: boolean, onData?: ReadOptions["onData"]): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let got = 0;
  for await (const chunk of answer.body as AsyncIterable<Buffer>) {
    if (got + chunk.length > length && !prefix) throw new RemoteError("REMOTE_IO", answer.url, `${what}: answer is longer than ${length} bytes`);
    const piece = chunk.subarray(0, length - got);
    out.set(piece, got);
    got += piece.length;
    onData?.(out, got);
    if (prefix && got === length) {
      discard(answer.body);
      return out;
    }
  }
  // A whole file that ended cleanly is shorter than the range (undici fails a body cut off before its length).
  if (prefix) throw pastTheEnd(what, got);
  if (got !== length) throw new RemoteError("REMOTE_IO", answer.url, `${what}: answer ended after ${got} of ${length} bytes`);
  return out;
}

function pastTheEnd(what: string, size: number): EodError {
  return new EodError("IMAGE_INVALID", `${what}: the range is past the end of the file (${size} bytes)`);
}
