// Serializes what the snapshotter does with one lazy image: acquiring its mount and recording a snapshot over
// it, removing or committing the last such snapshot and releasing the mount, never interleave (the database's
// count of users and the mount stay in step). Cleanup's re-attach of every image runs alone.
export class ImageLocks {
  readonly #tails = new Map<string, Promise<void>>();
  #exclusive: Promise<void> = Promise.resolve();

  /** Runs `fn` after every earlier operation on `manifest` and any exclusive one. */
  run<T>(manifest: string, fn: () => Promise<T>): Promise<T> {
    const before = Promise.all([this.#tails.get(manifest), this.#exclusive]);
    const result = before.then(fn);
    const tail = result.then(() => {}, () => {});
    this.#tails.set(manifest, tail);
    void tail.then(() => { if (this.#tails.get(manifest) === tail) this.#tails.delete(manifest); });
    return result;
  }

  /** Runs `fn` after every operation queued so far, holding all later ones until it ends. */
  runExclusive<T>(fn: () => Promise<T>): Promise<T> {
    const result = Promise.all([...this.#tails.values(), this.#exclusive]).then(fn);
    this.#exclusive = result.then(() => {}, () => {});
    return result;
  }
}
