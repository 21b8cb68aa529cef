/**
 * Round robin over `size` endpoints. `next()` returns the index to try first; callers
 * that fail to connect move on with `(first + attempt) % size`.
 */
export class RoundRobin {
  #next = 0;
  readonly size: number;

  constructor(size: number) {
    this.size = size;
  }

  next(): number {
    const i = this.#next;
    this.#next = i + 1 === this.size ? 0 : i + 1;
    return i;
  }
}
