/**
 * Work done one piece at a time, the lowest key first among those waiting.
 *
 * A prefetch window downloads several WAL objects at once, and they arrive in
 * any order; decompressing and verifying them all at once only shares the
 * CPU between them, so that the segment recovery needs next is ready last.
 * One at a time, lowest name first, it is ready first, and the others follow
 * as soon as the CPU is free.
 */
export class InOrder {
  #busy = false;
  readonly #waiting: Array<{ key: string; start: () => void }> = [];

  async run<T>(key: string, work: () => Promise<T>): Promise<T> {
    if (this.#busy) {
      await new Promise<void>((start) => {
        this.#waiting.push({ key, start });
        this.#waiting.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      });
    }
    this.#busy = true;
    try {
      return await work();
    } finally {
      // Handed over busy: the next one runs before anyone arriving meanwhile.
      const next = this.#waiting.shift();
      if (next) next.start();
      else this.#busy = false;
    }
  }
}
