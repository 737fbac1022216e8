// The READs the daemon has taken and not yet answered, and what a FUSE_INTERRUPT of one gets (fuse.rst,
// "Interrupting filesystem operations"; fs/fuse/dev.c). A process whose READ is in userspace waits for its
// answer and nothing else, a fatal signal included (request_wait_answer); the kernel sends INTERRUPT so the
// filesystem may end it early. An interrupted READ is answered EINTR at once and its own reply, when its
// fill ends, is not written: one reply per request. The fill goes on in the cache core either way.
//
// An INTERRUPT of a request we do not hold: if the kernel has answered it, an EAGAIN reply finds nothing and
// is ignored (the write fails with ENOENT); if the kernel still holds it on its processing list, EAGAIN
// queues the INTERRUPT again, ahead of every other request. That helps a server that may read an INTERRUPT
// before the request it names; this one reads requests in order on one thread, so a request it does not
// hold now (one a dead predecessor took and left out of its journal) never comes: each INTERRUPT gets EAGAIN
// once, and is dropped when it comes back, or the two would go round forever.
//
// Pure bookkeeping: the service writes the replies.

/** What an INTERRUPT gets: EINTR for the READ it names, EAGAIN for itself, or no reply. */
export type InterruptAnswer = { reply: "eintr"; unique: bigint } | { reply: "eagain" } | { reply: "none" };

export class OpenReads {
  readonly #open = new Set<bigint>();
  /** INTERRUPTs (by their own unique) the kernel queued again after our EAGAIN. */
  readonly #requeued = new Set<bigint>();

  get size(): number {
    return this.#open.size;
  }

  /** A READ was taken: it awaits its one reply. */
  open(unique: bigint): void {
    this.#open.add(unique);
  }

  /** The READ's own reply is due: whether to write it (false: an INTERRUPT answered it already). */
  close(unique: bigint): boolean {
    return this.#open.delete(unique);
  }

  /** An INTERRUPT (`unique`, its own) of the request `interrupted`. */
  interrupt(unique: bigint, interrupted: bigint): InterruptAnswer {
    if (this.#open.delete(interrupted)) return { reply: "eintr", unique: interrupted };
    if (this.#requeued.delete(unique)) return { reply: "none" }; // back after our EAGAIN: still unknown, never known
    return { reply: "eagain" };
  }

  /** The kernel took our EAGAIN for this INTERRUPT: it comes again. */
  requeued(unique: bigint): void {
    this.#requeued.add(unique);
  }
}
