import { isIP } from 'node:net';
import { formatApproxDuration } from '../duration.js';
import { WeftError } from '../errors.js';
import type { Catalog } from './catalog.js';
import { effectiveMtls, type EffectiveMtls } from './mtls-mode.js';
import { MESH_NAMESPACE, type MeshSpec, type ServiceSpec } from './resources.js';
import type { Store } from './store/store.js';

/**
 * The migration view: who still calls each service in plaintext. Each inbound sidecar
 * sends, with its periodic health report (`PUT /v1/catalog/instances/ID/report`), the
 * callers it served since its previous report; the tracker adds them up per (namespace,
 * service) in time buckets over a sliding window, and `status` turns that into a verdict
 * per service ("ready for strict", "2 plaintext callers: …", "strict").
 *
 * Memory only: a server restart starts a new window (the status says how much of the
 * window it has observed), and replicas each see the reports sent to them. Memory is
 * bounded: at most `maxCallers` distinct callers per service (beyond that, new callers are
 * added to one overflow caller per kind, `other`), and WINDOW_BUCKETS + 1 buckets each.
 */

/** One caller as a sidecar reports it: counts since its previous report. */
export interface CallerReport {
  /** The caller's SPIFFE ID (mTLS callers), else null. */
  readonly identity: string | null;
  /** The caller's IP address, `other` (the sidecar's overflow bucket), or null. */
  readonly address: string | null;
  readonly tls: boolean;
  /** HTTP requests (0 for TCP services). */
  readonly requests: number;
  readonly connections: number;
  /** What a strict dry run let through that strict mode would refuse. */
  readonly wouldReject: number;
}

/** The overflow caller: the sidecar's own (address `other`), and the tracker's beyond `maxCallers`. */
export const OTHER = 'other';
/** At most this many entries in one report's `callers`. */
export const MAX_REPORTED_CALLERS = 1000;
/** The window is cut into this many buckets; a bucket leaves the window as a whole. */
export const WINDOW_BUCKETS = 10;
export const DEFAULT_WINDOW_MS = 10 * 60_000;

/**
 * Validates the `callers` of a report (untrusted JSON). Absent or null: none. Throws
 * WEFT_E_BAD_REQUEST (a 400) naming the entry and field at fault.
 */
export function parseCallers(raw: unknown): CallerReport[] {
  if (raw === undefined || raw === null) return [];
  const bad = (message: string) => new WeftError('WEFT_E_BAD_REQUEST', message);
  if (!Array.isArray(raw)) throw bad('"callers" must be an array of {identity, address, tls, requests, connections, wouldReject}');
  if (raw.length > MAX_REPORTED_CALLERS) {
    throw bad(`"callers" has ${raw.length} entries, at most ${MAX_REPORTED_CALLERS} are accepted: add the rest up into one entry with address "${OTHER}"`);
  }
  return raw.map((entry: unknown, i): CallerReport => {
    const at = `"callers[${i}]`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw bad(`${at}" must be an object`);
    const e = entry as Record<string, unknown>;
    const { identity, address, tls } = e;
    if (typeof tls !== 'boolean') throw bad(`${at}.tls" must be true or false`);
    if (identity !== null && (typeof identity !== 'string' || !identity.startsWith('spiffe://') || identity.length > 2048)) {
      throw bad(`${at}.identity" must be the caller's SPIFFE ID (spiffe://…, at most 2048 characters) or null`);
    }
    if (address !== null && (typeof address !== 'string' || (address !== OTHER && isIP(address) === 0))) {
      throw bad(`${at}.address" must be an IP address, "${OTHER}", or null`);
    }
    if (!tls && identity !== null) throw bad(`${at}": a plaintext caller (tls false) has no verified identity; send identity null`);
    if (identity === null && address === null) throw bad(`${at}" needs an identity or an address`);
    const count = (name: string): number => {
      const v = e[name];
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw bad(`${at}.${name}" must be a non-negative integer (a count since the previous report)`);
      return v;
    };
    return { identity, address, tls, requests: count('requests'), connections: count('connections'), wouldReject: count('wouldReject') };
  });
}

/** A service whose status is asked for, with its mTLS mode now. */
export interface ServiceMode {
  readonly namespace: string;
  readonly service: string;
  readonly mtls: EffectiveMtls;
}

/** Counts of one caller over the window. */
interface CallerCounts {
  readonly requests: number;
  readonly connections: number;
  readonly wouldReject: number;
  /** When the last report naming it arrived (ISO 8601), and how long ago. */
  readonly lastSeen: string;
  readonly lastSeenMsAgo: number;
}

/** An mTLS caller in the window (`identity` is `other` for the overflow). */
export type MtlsCaller = CallerCounts & { readonly identity: string };
/** A plaintext caller in the window (`address` is `other` for the overflow). */
export type PlaintextCaller = CallerCounts & { readonly address: string };

/** One service's migration status. */
export interface ServiceMigration {
  readonly namespace: string;
  readonly service: string;
  /** `strict`, `permissive` or `strict (dry run)`. */
  readonly mode: 'strict' | 'permissive' | 'strict (dry run)';
  readonly mtls: EffectiveMtls;
  /** How many distinct mTLS and plaintext callers the window holds. */
  readonly mtlsCallers: number;
  readonly plaintextCallers: number;
  /** Requests and connections a strict dry run reported strict mode would refuse, in the window. */
  readonly wouldReject: number;
  /** The callers, busiest first. */
  readonly callers: { readonly mtls: readonly MtlsCaller[]; readonly plaintext: readonly PlaintextCaller[] };
  /** True when no plaintext caller was seen in the window (or the service is strict already). */
  readonly ready: boolean;
  readonly verdict: string;
}

/** The answer of `GET /v1/migration`. */
export interface MigrationStatus {
  /** The window callers are counted over. */
  readonly windowMs: number;
  /** How much of it this server has seen: less than the window for a while after a start. */
  readonly observedMs: number;
  readonly services: readonly ServiceMigration[];
}

interface Bucket {
  index: number;
  requests: number;
  connections: number;
  wouldReject: number;
}

interface CallerEntry {
  readonly tls: boolean;
  /** The identity (mTLS) or address (plaintext). */
  readonly name: string;
  /** Oldest first; at most WINDOW_BUCKETS + 1 once pruned. */
  readonly buckets: Bucket[];
  lastSeen: number;
}

/** Callers per (namespace, service) over a sliding window, in memory (see the module comment). */
export class MigrationTracker {
  readonly #windowMs: number;
  readonly #bucketMs: number;
  readonly #maxCallers: number;
  readonly #now: () => number;
  readonly #started: number;
  /** `namespace/service` → caller key (`m|identity`, `p|address`) → entry. */
  readonly #services = new Map<string, Map<string, CallerEntry>>();

  /**
   * @param options.windowMs the window (default 10 minutes); it moves in steps of a tenth of it.
   * @param options.maxCallers distinct callers kept per service (default 1000), beyond: `other`.
   * @param options.now the clock, in epoch milliseconds (tests inject one).
   */
  constructor(options: { windowMs?: number; maxCallers?: number; now?: () => number } = {}) {
    this.#windowMs = options.windowMs ?? DEFAULT_WINDOW_MS;
    if (!Number.isFinite(this.#windowMs) || this.#windowMs < 1000) throw new WeftError('WEFT_E_USAGE', 'the migration window must be at least 1s');
    this.#bucketMs = Math.ceil(this.#windowMs / WINDOW_BUCKETS);
    this.#maxCallers = options.maxCallers ?? 1000;
    this.#now = options.now ?? Date.now;
    this.#started = this.#now();
  }

  get windowMs(): number {
    return this.#windowMs;
  }

  /** Adds one report's callers to `service`'s window. Entries with no traffic are ignored. */
  record(namespace: string, service: string, callers: readonly CallerReport[]): void {
    const now = this.#now();
    const index = Math.floor(now / this.#bucketMs);
    const key = `${namespace}/${service}`;
    let entries = this.#services.get(key);
    if (entries !== undefined) this.#prune(entries, now); // so that callers gone from the window free their place
    for (const c of callers) {
      if (c.requests + c.connections + c.wouldReject === 0) continue;
      if (entries === undefined) {
        entries = new Map();
        this.#services.set(key, entries);
      }
      let name = (c.tls ? c.identity : c.address) ?? OTHER;
      let entry = entries.get(`${c.tls ? 'm' : 'p'}|${name}`);
      if (entry === undefined) {
        if (name !== OTHER && entries.size >= this.#maxCallers) {
          name = OTHER; // the other entries do not count against the cap: at most maxCallers + 2
          entry = entries.get(`${c.tls ? 'm' : 'p'}|${name}`);
        }
        if (entry === undefined) {
          entry = { tls: c.tls, name, buckets: [], lastSeen: now };
          entries.set(`${c.tls ? 'm' : 'p'}|${name}`, entry);
        }
      }
      let last = entry.buckets.at(-1);
      // A clock that went back counts into the newest bucket rather than reordering them.
      if (last === undefined || last.index < index) entry.buckets.push((last = { index, requests: 0, connections: 0, wouldReject: 0 }));
      last.requests += c.requests;
      last.connections += c.connections;
      last.wouldReject += c.wouldReject;
      entry.lastSeen = Math.max(entry.lastSeen, now);
      if (entry.buckets.length > WINDOW_BUCKETS + 1) entry.buckets.shift();
    }
  }

  /** The services that had callers in the window. */
  tracked(): { namespace: string; service: string }[] {
    this.prune();
    return [...this.#services.keys()].map((k) => {
      const [namespace, service] = k.split('/') as [string, string];
      return { namespace, service };
    });
  }

  /** Drops what left the window (also done as reports and status calls come). */
  prune(): void {
    const now = this.#now();
    for (const [key, entries] of this.#services) {
      this.#prune(entries, now);
      if (entries.size === 0) this.#services.delete(key);
    }
  }

  /** The status of each of `services` (in the order given), from the callers in the window. */
  status(services: readonly ServiceMode[]): MigrationStatus {
    this.prune();
    const now = this.#now();
    const observedMs = Math.max(0, Math.min(this.#windowMs, now - this.#started));
    return { windowMs: this.#windowMs, observedMs, services: services.map((s) => this.#serviceStatus(s, now, observedMs)) };
  }

  #serviceStatus(s: ServiceMode, now: number, observedMs: number): ServiceMigration {
    const mtls: MtlsCaller[] = [];
    const plaintext: PlaintextCaller[] = [];
    let wouldReject = 0;
    for (const entry of this.#services.get(`${s.namespace}/${s.service}`)?.values() ?? []) {
      const sum = { requests: 0, connections: 0, wouldReject: 0 };
      for (const b of entry.buckets) {
        sum.requests += b.requests;
        sum.connections += b.connections;
        sum.wouldReject += b.wouldReject;
      }
      wouldReject += sum.wouldReject;
      const counts = { ...sum, lastSeen: new Date(entry.lastSeen).toISOString(), lastSeenMsAgo: Math.max(0, now - entry.lastSeen) };
      if (entry.tls) mtls.push({ identity: entry.name, ...counts });
      else plaintext.push({ address: entry.name, ...counts });
    }
    const busiest = (a: CallerCounts, b: CallerCounts) => b.requests + b.connections - (a.requests + a.connections);
    mtls.sort((a, b) => busiest(a, b) || a.identity.localeCompare(b.identity));
    plaintext.sort((a, b) => busiest(a, b) || a.address.localeCompare(b.address, 'en', { numeric: true }));
    const mode = s.mtls.mode === 'permissive' ? 'permissive' : s.mtls.enforce ? 'strict' : 'strict (dry run)';
    const { ready, verdict } = this.#verdict(mode, mtls.length, plaintext, observedMs);
    return { namespace: s.namespace, service: s.service, mode, mtls: s.mtls, mtlsCallers: mtls.length, plaintextCallers: plaintext.length, wouldReject, callers: { mtls, plaintext }, ready, verdict };
  }

  #verdict(mode: ServiceMigration['mode'], mtlsCallers: number, plaintext: readonly PlaintextCaller[], observedMs: number): { ready: boolean; verdict: string } {
    // Strict refuses plaintext at the door, and refusals are not reported: nothing to judge.
    if (mode === 'strict') return { ready: true, verdict: 'strict' };
    if (plaintext.length > 0) {
      const shown = plaintext.slice(0, 5).map((p) => p.address);
      const more = plaintext.length > shown.length ? `, and ${plaintext.length - shown.length} more` : '';
      return { ready: false, verdict: `${plaintext.length} plaintext caller${plaintext.length === 1 ? '' : 's'}: ${shown.join(', ')}${more}` };
    }
    const window = formatApproxDuration(this.#windowMs);
    const partial = observedMs < this.#windowMs;
    if (mtlsCallers === 0) {
      return { ready: true, verdict: partial ? `ready for strict (no traffic seen since the server started ${formatApproxDuration(observedMs)} ago)` : `ready for strict (no traffic seen in the last ${window})` };
    }
    return { ready: true, verdict: partial ? `ready for strict (only mTLS callers since the server started ${formatApproxDuration(observedMs)} ago)` : 'ready for strict' };
  }

  #prune(entries: Map<string, CallerEntry>, now: number): void {
    // A bucket stays while any of it is inside the window: [now - window, now].
    const oldest = Math.floor((now - this.#windowMs) / this.#bucketMs);
    for (const [key, entry] of entries) {
      let drop = 0;
      while (drop < entry.buckets.length && entry.buckets[drop]!.index < oldest) drop++;
      if (drop > 0) entry.buckets.splice(0, drop);
      if (entry.buckets.length === 0) entries.delete(key);
    }
  }
}

/**
 * Every service known by a Service resource, a registered instance, or `extra` (the
 * tracker's), with its mTLS mode now (the Mesh's and its Service's, see effectiveMtls);
 * sorted by namespace, then name.
 */
export async function serviceModes(store: Store, catalog: Catalog, extra: readonly { namespace: string; service: string }[] = []): Promise<ServiceMode[]> {
  const mesh = (await store.get('Mesh', MESH_NAMESPACE, 'default'))?.spec as unknown as MeshSpec | undefined;
  const specs = new Map<string, ServiceSpec>();
  const names = new Map<string, { namespace: string; service: string }>();
  for (const r of await store.list('Service')) {
    specs.set(`${r.namespace}/${r.name}`, r.spec as unknown as ServiceSpec);
    names.set(`${r.namespace}/${r.name}`, { namespace: r.namespace, service: r.name });
  }
  for (const i of await catalog.instances()) names.set(`${i.namespace}/${i.service}`, { namespace: i.namespace, service: i.service });
  for (const e of extra) names.set(`${e.namespace}/${e.service}`, e);
  return [...names.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, n]) => ({ ...n, mtls: effectiveMtls(mesh, specs.get(key)) }));
}
