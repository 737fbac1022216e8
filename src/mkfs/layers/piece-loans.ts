// Pieces of a byte stream that live in reused memory: the producer lends each one, and the consumer gives it
// back once it keeps no view of it (the tar reader does, as it moves past a piece). A piece never given back
// is simply left to the garbage collector; its producer makes a new buffer instead.
const loans = new WeakMap<Uint8Array, () => void>();

/** Marks `piece` as lent; `giveBack` runs (once) when its consumer is done with it. */
export function lend<T extends Uint8Array>(piece: T, giveBack: () => void): T {
  loans.set(piece, giveBack);
  return piece;
}

/** Done with `piece` (the very object the stream yielded): its memory may be reused. No-op if not lent. */
export function giveBack(piece: Uint8Array): void {
  const f = loans.get(piece);
  if (!f) return;
  loans.delete(piece);
  f();
}
