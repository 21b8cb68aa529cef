import type { LbEndpoint, Picker } from './types.js';

/** Ring points per unit of weight. */
export const VNODES_PER_WEIGHT = 100;
/** The ring never has more points than this; larger weights are scaled down (each endpoint keeps at least one point). */
export const MAX_RING_POINTS = 65_536;

const INDEX_BITS = 2 ** 20;

/**
 * Consistent hashing on a ring (a "ketama" ring): each endpoint gets
 * VNODES_PER_WEIGHT × weight points at hashes of its `key` (its index when it has none),
 * and a request goes to the owner of the first point at or after the hash of its
 * `hashKey`. An ejected owner passes the request to the next point's owner on the ring
 * (so only the ejected endpoint's keys move); when every endpoint is ejected the first
 * owner is used (panic mode). A null `hashKey` (the header is absent) lands on a random
 * point, so such requests spread in proportion to weight.
 *
 * The ring is built on the first call for an endpoint list (a different array rebuilds
 * it): O(P log P) for P points, then O(log P) per pick.
 */
export class ConsistentHashPicker implements Picker {
  readonly #random: () => number;
  #list: readonly LbEndpoint[] | null = null;
  #n = 0;
  #hashes = new Uint32Array(0);
  #owners = new Int32Array(0);

  constructor(random: () => number = Math.random) {
    this.#random = random;
  }

  pick(endpoints: readonly LbEndpoint[], hashKey: string | null): number {
    const n = endpoints.length;
    if (n <= 1) return n - 1;
    if (endpoints !== this.#list || n !== this.#n) this.#build(endpoints);
    const h = hashKey === null ? Math.floor(this.#random() * 0x1_0000_0000) >>> 0 : hashString(hashKey);
    const hashes = this.#hashes;
    const owners = this.#owners;
    const size = hashes.length;
    let lo = 0;
    let hi = size;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (hashes[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    const first = lo === size ? 0 : lo;
    for (let k = 0; k < size; k++) {
      const at = first + k < size ? first + k : first + k - size;
      const owner = owners[at]!;
      if (!endpoints[owner]!.ejected) return owner;
    }
    return owners[first]!;
  }

  #build(endpoints: readonly LbEndpoint[]): void {
    const n = endpoints.length;
    if (n >= INDEX_BITS) throw new RangeError(`a consistent-hash ring holds at most ${INDEX_BITS - 1} endpoints`);
    let totalWeight = 0;
    for (let i = 0; i < n; i++) totalWeight += endpoints[i]!.weight;
    const scale = Math.min(VNODES_PER_WEIGHT, MAX_RING_POINTS / totalWeight);
    const counts = new Int32Array(n);
    let size = 0;
    for (let i = 0; i < n; i++) {
      counts[i] = Math.max(1, Math.floor(endpoints[i]!.weight * scale));
      size += counts[i]!;
    }
    // Pack hash and owner in one double (hash × 2^20 + index) so a plain numeric sort orders both.
    const packed = new Float64Array(size);
    let p = 0;
    for (let i = 0; i < n; i++) {
      const key = endpoints[i]!.key;
      const base = fnv1a(key ?? `#${i}`);
      for (let v = 0; v < counts[i]!; v++) packed[p++] = fmix32((base + Math.imul(v + 1, 0x9e3779b9)) | 0) * INDEX_BITS + i;
    }
    packed.sort();
    this.#hashes = new Uint32Array(size);
    this.#owners = new Int32Array(size);
    for (let j = 0; j < size; j++) {
      const value = packed[j]!;
      const owner = value % INDEX_BITS;
      this.#owners[j] = owner;
      this.#hashes[j] = (value - owner) / INDEX_BITS;
    }
    this.#list = endpoints;
    this.#n = n;
  }
}

/** The 32-bit hash a request's key is placed on the ring with (FNV-1a, then murmur3's finalizer). */
export function hashString(text: string): number {
  return fmix32(fnv1a(text));
}

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** murmur3's 32-bit finalizer: every input bit affects every output bit. */
function fmix32(x: number): number {
  let h = x;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
