// The READs the daemon has taken and not yet answered, and what a FUSE_INTERRUPT of one gets (fuse.rst,
// "Interrupting filesystem operations"; fs/fuse/dev.c). A process whose synchronous READ is in userspace waits
// for its answer and nothing else, a fatal signal included (request_wait_answer); on any signal the kernel
// sends one INTERRUPT so the filesystem may end the READ early with EINTR. We do that only for a reader that is
// dying (SIGKILL pending): an EINTR for a caught signal would reach an erofs reader as EIO (erofs fails the
// page its FUSE read failed), where waiting gives it the right bytes. An interrupted READ whose reader is not
// dying yet is watched (the kernel sends no second INTERRUPT) and ended once it is. An ended READ's own reply,
// when its fill ends, is not written: one reply per request. The fill goes on in the cache core either way.
//
// An INTERRUPT of a request we do not hold: if the kernel has answered it, an EAGAIN reply finds nothing and
// is ignored (the write fails with ENOENT); if the kernel still holds it on its processing list, EAGAIN
// queues the INTERRUPT again, ahead of every other request. That helps a server that may read an INTERRUPT
// before the request it names; this one reads requests in order on one thread, so a request it does not
// hold now (one a dead predecessor took and left out of its journal) never comes: each INTERRUPT gets EAGAIN
// once, and is dropped when it comes back, or the two would go round forever.
//
// Bookkeeping only: the service writes the replies; whether a reader is dying is asked of `dying`.

/** What an INTERRUPT gets: EINTR for the READ it names, EAGAIN for itself, or no reply (now). */
export type InterruptAnswer = { reply: "eintr"; unique: bigint } | { reply: "eagain" } | { reply: "none" };

interface OpenRead {
  /** The reader's thread id (fuse_in_header.pid). */
  pid: number;
  /** An INTERRUPT came for it while its reader was not dying: watched. */
  interrupted: boolean;
}

export class OpenReads {
  readonly #open = new Map<bigint, OpenRead>();
  /** INTERRUPTs (by their own unique) the kernel queued again after our EAGAIN. */
  readonly #requeued = new Set<bigint>();
  readonly #dying: (pid: number) => boolean;
  #watched = 0;

  constructor(dying: (pid: number) => boolean) {
    this.#dying = dying;
  }

  get size(): number {
    return this.#open.size;
  }

  /** Interrupted READs whose reader was not dying when their INTERRUPT came, still open. */
  get watched(): number {
    return this.#watched;
  }

  /** A READ was taken: it awaits its one reply. */
  open(unique: bigint, pid: number): void {
    this.#open.set(unique, { pid, interrupted: false });
  }

  /** The READ's own reply is due: whether to write it (false: it was ended with EINTR already). */
  close(unique: bigint): boolean {
    const r = this.#open.get(unique);
    if (!r) return false;
    this.#open.delete(unique);
    if (r.interrupted) this.#watched--;
    return true;
  }

  /** An INTERRUPT (`unique`, its own) of the request `interrupted`. */
  interrupt(unique: bigint, interrupted: bigint): InterruptAnswer {
    const r = this.#open.get(interrupted);
    if (r) {
      if (this.#dying(r.pid)) { this.close(interrupted); return { reply: "eintr", unique: interrupted }; }
      if (!r.interrupted) { r.interrupted = true; this.#watched++; }
      return { reply: "none" };
    }
    if (this.#requeued.delete(unique)) return { reply: "none" }; // back after our EAGAIN: still unknown, never known
    return { reply: "eagain" };
  }

  /** The kernel took our EAGAIN for this INTERRUPT: it comes again. */
  requeued(unique: bigint): void {
    this.#requeued.add(unique);
  }

  /** The watched READs whose reader is dying now, closed: each gets EINTR. */
  takeDying(): bigint[] {
    const dying: bigint[] = [];
    for (const [unique, r] of this.#open) if (r.interrupted && this.#dying(r.pid)) dying.push(unique);
    for (const unique of dying) this.close(unique);
    return dying;
  }
}
