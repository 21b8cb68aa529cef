import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { WeftError } from '../errors.js';
import type { JsonValue, Store, StoredResource } from './store/store.js';

/**
 * The catalog: which instances of which service exist, and which are healthy. A sidecar
 * registers its instance (the address and mTLS port callers reach it on, and metadata such
 * as `version`); the registration is an `Instance` resource in the store, so it survives a
 * server restart. Liveness is the sidecar's reports: each carries the app's health, and an
 * instance whose sidecar stops reporting for `ttlMs` counts as critical. The time of the
 * last report lives in memory (a report every few seconds would otherwise be a store
 * revision every few seconds per instance); the app's health is written to the store only
 * when it changes. A new registration is `unknown` until its first report. After a server
 * restart an instance keeps its stored health, aging from the server's start: sidecars
 * that report within the TTL never leave their callers' endpoint sets (a restart of the
 * control plane must not empty the mesh). One that reports nothing for
 * `deregisterAfterMs` is removed (`sweep`), so addresses that went away do not stay.
 */

const KIND = 'Instance';
/** A bound on what one service's certificate can put into its callers' endpoint sets. */
export const MAX_INSTANCES_PER_SERVICE = 1000;

export type Health = 'passing' | 'critical' | 'unknown';

/** What a sidecar registers. */
export interface InstanceRegistration {
  readonly service: string;
  readonly namespace: string;
  readonly address: string;
  readonly port: number;
  readonly metadata: Readonly<Record<string, string>>;
}

/** An instance as the catalog reports it. */
export interface CatalogInstance extends InstanceRegistration {
  readonly id: string;
  readonly health: Health;
  /** Why it is critical (the app's check, or the missing reports). */
  readonly reason: string | null;
  /** Milliseconds since its sidecar last reported, or null if it has not since the server started. */
  readonly lastReportMsAgo: number | null;
}

interface Liveness {
  /** The last report, or the registration (or the server's start) before any report. */
  at: number;
  /** null: no report yet. */
  healthy: boolean | null;
  reason: string | null;
}

export class Catalog {
  readonly #store: Store;
  readonly #ttlMs: number;
  readonly #deregisterAfterMs: number;
  readonly #now: () => number;
  readonly #started: number;
  readonly #liveness = new Map<string, Liveness>();

  constructor(store: Store, options: { ttlMs: number; deregisterAfterMs: number; now?: () => number }) {
    this.#store = store;
    this.#ttlMs = options.ttlMs;
    this.#deregisterAfterMs = options.deregisterAfterMs;
    this.#now = options.now ?? (() => performance.now());
    this.#started = this.#now();
  }

  /** Registers (or updates) an instance; its id is stable for the same service, address and port. */
  async register(reg: InstanceRegistration): Promise<string> {
    const id = instanceId(reg);
    if ((await this.#store.get(KIND, reg.namespace, id)) === undefined) {
      const count = (await this.#store.list(KIND, reg.namespace)).filter((r) => (r.spec as { service?: string }).service === reg.service).length;
      if (count >= MAX_INSTANCES_PER_SERVICE) {
        throw new WeftError('WEFT_E_TOO_MANY_INSTANCES', `${reg.namespace}/${reg.service} already has ${count} instances (the most one service may register); deregister stale ones or wait for them to expire`);
      }
    }
    const spec: Record<string, JsonValue> = { service: reg.service, address: reg.address, port: reg.port, metadata: { ...reg.metadata }, healthy: null };
    await this.#store.put({ kind: KIND, namespace: reg.namespace, name: id, spec });
    this.#liveness.set(key(reg.namespace, id), { at: this.#now(), healthy: null, reason: null });
    return id;
  }

  /**
   * Records a report from an instance's sidecar: the app's health. Returns false when the
   * instance is not registered (the sidecar must register again).
   */
  async report(namespace: string, id: string, service: string, healthy: boolean, reason: string | null): Promise<boolean> {
    const stored = await this.#store.get(KIND, namespace, id);
    if (stored === undefined || (stored.spec as { service?: string }).service !== service) return false;
    this.#liveness.set(key(namespace, id), { at: this.#now(), healthy, reason: healthy ? null : reason });
    if ((stored.spec as { healthy?: boolean | null }).healthy !== healthy) {
      // Health changes are rare: keep them, so a restarted server starts from them.
      await this.#store.put({ kind: KIND, namespace, name: id, spec: { ...(stored.spec as Record<string, JsonValue>), healthy } }).catch(() => {});
    }
    return true;
  }

  /** Removes an instance (its sidecar shuts down). */
  async deregister(namespace: string, id: string, service: string): Promise<boolean> {
    if (!(await this.#owns(namespace, id, service))) return false;
    this.#liveness.delete(key(namespace, id));
    return this.#store.delete(KIND, namespace, id);
  }

  /** Whether instance `id` is registered, and registered for `service` (its caller's). */
  async #owns(namespace: string, id: string, service: string): Promise<boolean> {
    const stored = await this.#store.get(KIND, namespace, id);
    return stored !== undefined && (stored.spec as { service?: string }).service === service;
  }

  /** Removes the instances that have reported nothing for `deregisterAfterMs`; returns their ids. */
  async sweep(): Promise<string[]> {
    const now = this.#now();
    const removed: string[] = [];
    for (const r of await this.#store.list(KIND)) {
      const since = this.#liveness.get(key(r.namespace, r.name))?.at ?? this.#started;
      if (now - since <= this.#deregisterAfterMs) continue;
      this.#liveness.delete(key(r.namespace, r.name));
      if (await this.#store.delete(KIND, r.namespace, r.name)) removed.push(`${r.namespace}/${r.name}`);
    }
    return removed;
  }

  /** Every instance (of one namespace when given), with its health now. */
  async instances(namespace?: string): Promise<CatalogInstance[]> {
    const now = this.#now();
    return (await this.#store.list(KIND, namespace)).map((r) => this.#view(r, now));
  }

  /** Instances grouped by service (sorted by namespace/service, then address:port), with the count passing. */
  async services(): Promise<{ service: string; namespace: string; passing: number; instances: CatalogInstance[] }[]> {
    const services = new Map<string, { service: string; namespace: string; passing: number; instances: CatalogInstance[] }>();
    for (const i of await this.instances()) {
      const k = `${i.namespace}/${i.service}`;
      let entry = services.get(k);
      if (entry === undefined) services.set(k, (entry = { service: i.service, namespace: i.namespace, passing: 0, instances: [] }));
      entry.instances.push(i);
      if (i.health === 'passing') entry.passing++;
    }
    const list = [...services.values()].sort((a, b) => `${a.namespace}/${a.service}`.localeCompare(`${b.namespace}/${b.service}`));
    for (const entry of list) entry.instances.sort((a, b) => `${a.address}:${a.port}`.localeCompare(`${b.address}:${b.port}`, 'en', { numeric: true }));
    return list;
  }

  #view(r: StoredResource, now: number): CatalogInstance {
    const spec = r.spec as { service: string; address: string; port: number; metadata: Record<string, string>; healthy?: boolean | null };
    // Not heard of since this server started: the stored health, aging from the start.
    const live = this.#liveness.get(key(r.namespace, r.name)) ?? (typeof spec.healthy === 'boolean' ? { at: this.#started, healthy: spec.healthy, reason: null } : undefined);
    const age = live === undefined || live.healthy === null ? null : now - live.at;
    let health: Health;
    let reason: string | null = null;
    if (live === undefined || live.healthy === null) health = 'unknown';
    else if (age! > this.#ttlMs) {
      health = 'critical';
      reason = `no report from its sidecar for ${Math.round(age! / 1000)}s`;
    } else if (!live.healthy) {
      health = 'critical';
      reason = live.reason ?? 'the app failed its health check';
    } else health = 'passing';
    return {
      id: r.name,
      service: spec.service,
      namespace: r.namespace,
      address: spec.address,
      port: spec.port,
      metadata: spec.metadata,
      health,
      reason,
      lastReportMsAgo: age === null ? null : Math.round(age),
    };
  }
}

/** A registration from untrusted JSON, or the problem with it. */
export function registrationProblem(body: Record<string, unknown>): string | null {
  const { address, port, metadata } = body;
  if (typeof address !== 'string' || isIP(address) === 0) return '"address" must be the IP address callers reach the instance on';
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) return '"port" must be the mTLS port (1-65535)';
  if (metadata !== undefined) {
    if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) return '"metadata" must be an object of strings';
    const entries = Object.entries(metadata);
    if (entries.length > 32 || entries.some(([k, v]) => typeof v !== 'string' || !/^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/i.test(k) || v.length > 253)) {
      return '"metadata": at most 32 entries, names of letters, digits, ".", "_" or "-", string values up to 253 characters';
    }
  }
  return null;
}

function instanceId(reg: InstanceRegistration): string {
  return `${reg.service}-${createHash('sha256').update(`${reg.address}:${reg.port}`).digest('hex').slice(0, 12)}`;
}

function key(namespace: string, id: string): string {
  return `${namespace}/${id}`;
}
