// Wake-ups for the holds of image mounts made at a pull (snapshotter.mount_on_pull): one timer per image, set to
// when its hold runs out. Only a reminder: the database's images.held_until says what is held, and the one woken
// checks it again under the image's lock. Unref'd, so a hold never keeps the process alive.
export class HoldTimers {
  readonly #timers = new Map<string, NodeJS.Timeout>();

  /** Calls `fire` at `atMs` (ms since the epoch), replacing the image's earlier timer. */
  set(manifest: string, atMs: number, fire: () => void): void {
    this.cancel(manifest);
    // setTimeout's limit is 2^31-1 ms (~24.8 days): a later hold wakes up then, finds time left and sets again
    const timer = setTimeout(() => { this.#timers.delete(manifest); fire(); }, Math.min(Math.max(0, atMs - Date.now()), 0x7fffffff));
    timer.unref();
    this.#timers.set(manifest, timer);
  }

  cancel(manifest: string): void {
    clearTimeout(this.#timers.get(manifest));
    this.#timers.delete(manifest);
  }

  clear(): void {
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
  }
}
